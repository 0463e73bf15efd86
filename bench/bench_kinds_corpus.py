"""Whole-document and multi-part questions over a corpus of many documents (issue 20, "Measured"): DRCD's
held-out half (390 documents, one paragraph each, named by their article's title), indexed once and reused
(the gate's index). Questions are made from the set, never tuned on:

- `summary (named)`: "总结一下《title》这篇文章。" for sampled documents: answered, the named document cited,
  sentences verified, and how much of the document the summary covers (its sentences chosen / all);
- `main point (conversation)`: a DRCD question about a document, then "这篇文章主要讲了什么？": the
  conversation's document is the one summarised;
- `two answerable parts`: two answerable questions of one document joined by "，": both answered;
- `answerable + unanswerable`: an answerable question joined with an unanswerable one of the same article
  (its paragraph withheld): the first answered, the second named as missing, nothing invented.

Run: .venv/bin/python bench/bench_kinds_corpus.py [--n 20] [--seed 1]  (model calls: 2 per joined pair)."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from assistant.answering.parts import split
from assistant.factory import build_assistant
from assistant.quality import calibration
from assistant.quality.gate import Suite, default_index_root, suite_settings
from assistant.text import squash as normalize

OUT = Path(__file__).resolve().parent / "out"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="questions of each kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cal = calibration.build("drcd@holdout", default_index_root().parent / "calibration")
    suite = Suite(name="kinds", eval_file=cal.qa, corpus=cal.corpus)
    assistant = build_assistant(suite_settings(suite, default_index_root(), None, None))
    assistant.build_index()
    assistant.answerer.warm()
    items = [json.loads(line) for line in cal.qa.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(args.seed)
    rows = summaries(assistant, items, rng, args.n) + joined(assistant, items, rng, args.n)
    OUT.mkdir(exist_ok=True)
    (OUT / "kinds_corpus_rows.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    print(table(rows))
    return 0


def summaries(assistant: Any, items: list[dict], rng: random.Random, n: int) -> list[dict]:
    outlines = assistant.retriever.outlines
    sources = rng.sample(sorted(outlines), min(n, len(outlines)))
    by_source: dict[str, list[dict]] = {}
    for item in items:
        if item["answerable"]:
            by_source.setdefault(item["source"], []).append(item)
    rows = []
    for source in sources:
        outline = outlines[source]
        total = sum(len(s.sentences) for s in outline.sections)
        answer, took = ask(assistant, f"总结一下《{outline.title}》这篇文章。")
        rows.append(row("summary (named)", answer, took, right=_cites_title(answer, outline.title), total=total))
        if by_source.get(source):
            history = [rng.choice(by_source[source])["turns"][-1]]
            answer, took = ask(assistant, "这篇文章主要讲了什么？", history)
            right = {c.source for c in answer.citations} == {source}
            rows.append(row("main point (conversation)", answer, took, right=right, total=total))
    return rows


def joined(assistant: Any, items: list[dict], rng: random.Random, n: int) -> list[dict]:
    by_title: dict[str, list[dict]] = {}
    for item in items:
        by_title.setdefault((item.get("source") or item["withheld"]).rsplit("-", 1)[0], []).append(item)
    rows = []
    for kind in ("two answerable parts", "answerable + unanswerable"):
        made = 0
        for article in rng.sample(sorted(by_title), len(by_title)):
            answerable = [i for i in by_title[article] if i["answerable"]]
            unanswerable = [i for i in by_title[article] if not i["answerable"]]
            second_pool = answerable[1:] if kind == "two answerable parts" else unanswerable
            if not answerable or not second_pool or made >= n:
                continue
            first, second = answerable[0], rng.choice(second_pool)
            question = first["turns"][-1].rstrip("？?") + "，" + second["turns"][-1]
            if len(split(question).parts) != 2:  # the rule did not see two parts: counted, not asked
                rows.append({"kind": kind, "split": False})
                continue
            made += 1
            answer, took = ask(assistant, question)
            parts = answer.answer.split("\n")
            first_right = contains_answer(parts[0], first["answers"]) and not answer.refused
            if second["answerable"]:
                second_right = len(parts) > 1 and contains_answer(parts[1], second["answers"])
            else:
                second_right = len(parts) > 1 and parts[1].startswith("文章没有提到")
            rows.append(row(kind, answer, took, right=first_right and second_right, split=True,
                            parts_right=int(first_right) + int(second_right)))  # fmt: skip
    return rows


def ask(assistant: Any, question: str, history: list[str] | None = None) -> tuple[Any, dict[str, float]]:
    started, first, events = time.perf_counter(), None, []
    for event in assistant.answerer.stream(question, history or []):
        first = first if first is not None else time.perf_counter() - started
        events.append(event)
    return events[-1], {"first_s": first or 0.0, "total_s": time.perf_counter() - started}


def row(kind: str, answer: Any, took: dict[str, float], **extra: Any) -> dict[str, Any]:
    kept = sum(bool(r.get("kept")) for r in answer.verification)
    shown = len(answer.citations) and len(answer.verification)
    return {"kind": kind, "question": answer.question, "answer": answer.answer, "refused": answer.refused,
            "kept": kept, "checked": shown, **took, **extra}  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["| kind | asked | right | sentences verified | parts right | refused | not split by rule | total p50 |"]
    lines.append("|---" * 8 + "|")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        asked = [r for r in rows if r["kind"] == kind and r.get("split", True)]
        unsplit = sum(1 for r in rows if r["kind"] == kind and not r.get("split", True))
        parts = [r["parts_right"] for r in asked if "parts_right" in r]
        lines.append(
            f"| {kind} | {len(asked)} | {sum(r['right'] for r in asked)} | {sum(r['kept'] for r in asked)}/"
            f"{sum(r['checked'] for r in asked)} | {f'{sum(parts)}/{2 * len(parts)}' if parts else '–'} | "
            f"{sum(r['refused'] for r in asked)} | {unsplit} | "
            f"{statistics.median(r['total_s'] for r in asked):.2f} s |"
        )
    return "\n".join(lines)


def contains_answer(text: str, answers: list[str]) -> bool:
    return any(normalize(a) in normalize(text) for a in answers)


def _cites_title(answer: Any, title: str) -> bool:
    return not answer.refused and title in answer.answer and all(c.title == title for c in answer.citations)


if __name__ == "__main__":
    sys.exit(main())
