"""Whole-document and multi-part questions on the article (issue 20): per kind, how many were answered,
the share of shown sentences that passed verification, parts answered or named as missing, false
refusals, and time. The questions (`bench/sets/article_kinds.jsonl`) were written for this benchmark;
none comes from an evaluation set. Run: .venv/bin/python bench/bench_kinds.py [--fast]"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

from assistant.factory import build_assistant
from assistant.settings import Settings

SETS = Path(__file__).resolve().parent / "sets"
OUT = Path(__file__).resolve().parent / "out"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", default=str(SETS / "article_kinds.jsonl"))
    args = parser.parse_args()
    items = [json.loads(line) for line in Path(args.set).read_text(encoding="utf-8").splitlines() if line.strip()]
    assistant = build_assistant(Settings.load())
    assistant.answerer.warm()
    rows = []
    for item in items:
        started = time.perf_counter()
        first, events = None, []
        for event in assistant.answerer.stream(item["question"]):
            first = first if first is not None else time.perf_counter() - started
            events.append(event)
        answer, total = events[-1], time.perf_counter() - started
        found = [bool(re.search(expected, answer.answer)) for expected in item["expect"]]
        kept = sum(bool(r.get("kept")) for r in answer.verification)
        missing = answer.answer.count("文章没有提到“") + answer.answer.count("does not say:")
        rows.append({
            "id": item["id"], "kind": item["kind"], "question": item["question"], "answer": answer.answer,
            "refused": answer.refused, "right": all(found), "kept": kept,
            "checked": len(answer.verification), "parts": item.get("parts", 1), "missing_named": missing,
            "missing_expected": item.get("missing", 0), "first_s": first, "total_s": total,
        })  # fmt: skip
        print(f"{item['id']} {item['kind']}: right={all(found)} {total:.1f}s", file=sys.stderr, flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "kinds_rows.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    head = ("kind", "questions", "answered right", "sentences verified", "missing parts named", "false refusals")
    print("| " + " | ".join([*head, "first content p50", "total p50"]) + " |")
    print("|---" * 8 + "|")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind]
        kept, checked = sum(r["kept"] for r in rs), sum(r["checked"] for r in rs)
        named = sum(min(r["missing_named"], r["missing_expected"]) for r in rs)
        named_of = sum(r["missing_expected"] for r in rs)
        print(
            f"| {kind} | {len(rs)} | {sum(r['right'] for r in rs)} | {kept}/{checked} | {named}/{named_of} | "
            f"{sum(r['refused'] for r in rs)} | {statistics.median(r['first_s'] for r in rs):.2f} s | "
            f"{statistics.median(r['total_s'] for r in rs):.2f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
