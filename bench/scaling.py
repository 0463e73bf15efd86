"""Scaling: index build time and memory, and query latency, for corpora of growing size.

For the article, the first 10, 100 and 256 CMRC trial passages and a synthetic corpus of ~10,000
passages (`corpora.synthetic`), each in a fresh index directory: the build in its own process (wall
time, peak RSS, chunks), the index's size on disk, a no-change re-index (in that process, and as a
whole `assistant index` process), then warm query latency and the searching process's memory in
another fresh process (`probe.py search`). Records part `scaling` of bench/out/results.json.
Run: `.venv/bin/python bench/scaling.py [--quick] [--synthetic N]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import corpora
from common import (
    assistant_cmd,
    directory_mb,
    dur,
    markdown_table,
    part_parser,
    run_json,
    run_part,
    timed_run,
)

PROBE = str(Path(__file__).with_name("probe.py"))


def corpora_for(args: argparse.Namespace, tmp: Path) -> list[corpora.Corpus]:
    """The corpora to measure, smallest first."""
    sizes = (10,) if args.quick else (10, 100, 256)
    synthetic = args.synthetic or (300 if args.quick else 10_000)
    return [
        corpora.article(),
        *(corpora.cmrc_subset(n, tmp / f"cmrc-{n}") for n in sizes),
        corpora.synthetic(synthetic, tmp / f"synthetic-{synthetic}"),
    ]


def measure_corpus(corpus: corpora.Corpus, tmp: Path) -> dict[str, Any]:
    """Build, re-index and search one corpus in fresh processes."""
    index_dir = tmp / "indexes" / corpus.name
    where = ["--corpus", str(corpus.path), "--index-dir", str(index_dir)]
    print(f"scaling: building {corpus.name} ...", file=sys.stderr, flush=True)
    build = run_json([sys.executable, PROBE, "build", *where])
    reindex_process_s = timed_run(assistant_cmd("index", *where))
    questions = tmp / f"{corpus.name}-questions.jsonl"
    questions.write_text("".join(json.dumps(asdict(i), ensure_ascii=False) + "\n" for i in corpus.questions))
    scored = ["--scored"] if corpus.scored else []
    search = run_json([sys.executable, PROBE, "search", *where, "--questions", str(questions), *scored])
    row = {"corpus": corpus.name, "index_mb": directory_mb(index_dir), "build": build, "search": search}
    row["reindex_unchanged_process_s"] = round(reindex_process_s, 2)
    print(f"scaling: {corpus.name}: {build['chunks']} chunks in {build['build_s']} s", file=sys.stderr, flush=True)
    return row


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as name:
        tmp = Path(name)
        rows = [measure_corpus(corpus, tmp) for corpus in corpora_for(args, tmp)]
    return {"embeddings": "e5-small", "rows": rows}


def table(part: dict[str, Any]) -> str:
    headers = ["corpus", "docs", "chunks", "build", "chunks/s", "build peak RSS", "on disk"]
    headers += ["re-index (in process / process)", "search p50 / p95", "dense p50", "embed query p50"]
    headers += ["hit@1 / hit@5", "search process RSS"]
    rows = []
    for row in part["rows"]:
        b, s = row["build"], row["search"]
        hits = f"{s['hit@1']} / {s['hit@5']}" if "hit@1" in s else "–"
        rows.append(
            [
                row["corpus"],
                b["documents"],
                f"{b['chunks']:,}",
                dur(b["build_s"]),
                b["chunks_per_s"],
                f"{b['peak_rss_mb']:.0f} MB",
                f"{row['index_mb']} MB",
                f"{dur(b['reindex_unchanged_s'])} / {dur(row['reindex_unchanged_process_s'])}",
                f"{dur(s['hybrid']['p50'])} / {dur(s['hybrid']['p95'])}",
                dur(s.get("dense", {}).get("p50")),
                dur(s.get("embed_query", {}).get("p50")),
                hits,
                f"{s['rss_mb']:.0f} MB",
            ]
        )
    return markdown_table(headers, rows)


def main() -> int:
    parser = part_parser(__doc__)
    parser.add_argument("--synthetic", type=int, help="passages in the synthetic corpus (default 10,000)")
    args = parser.parse_args()
    return run_part("scaling", args, measure, table)


if __name__ == "__main__":
    sys.exit(main())
