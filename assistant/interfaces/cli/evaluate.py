"""The measuring commands of `assistant`: `eval` (answers), `eval-retrieval` (hit@k) and `gate` (the
quality gate of `quality_gate.toml`). `main` parses their flags; each prints JSON or a table and
returns the exit code (the gate: 1 when a metric breaches its threshold).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigurationError

if TYPE_CHECKING:
    from assistant.core import Assistant


def cmd_eval(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.quality.evaluate import answer_metrics, read_items, run_answers, sample

    items = read_items(Path(args.file))
    if args.sample:
        items = sample(items, args.sample)
    if args.index:
        _update_index(assistant)
    with open(args.out, "w", encoding="utf-8") if args.out else contextlib.nullcontext() as out:

        def report(n: int, record: dict[str, Any]) -> None:
            if out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
            print(f"[{n}/{len(items)}] {record['id']} {record['latency_s']:.1f}s", file=sys.stderr)

        results = run_answers(assistant, items, fast=args.fast, on_result=report)
    print(json.dumps(answer_metrics(results), ensure_ascii=False, indent=2))
    return 0


def cmd_gate(assistant: Assistant, args: argparse.Namespace) -> int:
    """Run each suite over its own corpus and index; exit 1 if any metric breaches its threshold."""
    from assistant.factory import build_assistant
    from assistant.quality.gate import check, default_index_root, load_suites, run_suite, suite_settings, table
    from assistant.settings import environment_overrides

    suites = load_suites(Path(args.config))
    if args.suite:
        unknown = set(args.suite) - {s.name for s in suites}
        if unknown:
            raise ConfigurationError(f"no suite {sorted(unknown)} in {args.config}: it has {[s.name for s in suites]}")
        suites = [s for s in suites if s.name in args.suite]
    if args.seed is not None:
        suites = [dataclasses.replace(s, seed=args.seed) for s in suites]
    index_root = Path(args.index_dir) if args.index_dir else default_index_root()  # each suite's own index
    ignored = environment_overrides("llm", "embeddings", "embeddings_url", "openai_base_url", "chroma_url")
    if ignored:
        print(f"the gate pins its models and index: ignoring {ignored} from the environment "
              "(--llm / --embeddings measure other models, and the report names them)", file=sys.stderr)  # fmt: skip
    rows, report = [], {}
    for suite in suites:
        runner = build_assistant(suite_settings(suite, index_root, embeddings=args.embeddings, llm=args.llm))
        runner.build_index()
        print(f"suite {suite.name}: {suite.eval_file.name} over {suite.corpus}", file=sys.stderr)
        metrics = run_suite(
            runner, suite, on_result=lambda n, r: print(f"  [{n}] {r['id']} {r['latency_s']:.1f}s", file=sys.stderr)
        )
        rows.append((suite, metrics))
        report[suite.name] = {"breaches": check(metrics, suite), "models": runner.models, **metrics}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(table(rows))
    breaches = [line for r in report.values() for line in r["breaches"]]
    for name, r in report.items():
        if r["breaches"]:
            print(f"\nfailures of {name}:")
            for f in r["failures"]:
                print(f"  {f['id']} ({f['type']}): {f['question']}")
                print(f"    expected {f['expected']}, got {f['got']!r}, cited {f['cited']!r}")
    print("\n" + ("\n".join(f"FAIL {line}" for line in breaches) if breaches else "quality gate passed"))
    return 1 if breaches else 0


def cmd_eval_retrieval(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.quality.evaluate import read_items, retrieval_metrics

    items = read_items(Path(args.file))
    if args.index:
        _update_index(assistant)
    metrics = retrieval_metrics(lambda q, k, history: assistant.search(q, k=k, history=history), items)
    misses = metrics.pop("not_first")
    if args.misses:
        metrics["not_first"] = misses
    print(json.dumps(metrics, ensure_ascii=False, indent=2))
    return 0


def _update_index(assistant: Assistant) -> None:
    """Bring the index in line with the corpus first (`--index`); only changed files are embedded."""
    report = assistant.build_index()
    for skipped in assistant.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    print(f"index: {report.chunks} chunks, {report.embedded} embedded, in {report.seconds:.1f}s", file=sys.stderr)
