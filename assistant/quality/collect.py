"""Collect: what tuning replays, gathered once from the real assistant into JSON Lines files.

`collect` runs the real chat model once per sampled calibration question and appends what it was
given and what it wrote (question, query, passages, draft) to a JSON Lines file, skipping ids already
there: a run can stop and resume, and drafts accumulate across runs. `collect_evidence` stores what
the checks before the model see, without the model. Scoring and sweeping the records is `tune`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.checks.decide import evidence

if TYPE_CHECKING:
    from assistant.core import Assistant


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect(
    assistant: Assistant,
    items: list[dict[str, Any]],
    out: Path,
    set_name: str,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
) -> int:
    """Draft an answer to each item not yet in `out` (the model runs even where the policy would refuse
    before it, so that cut-off can be swept too); returns how many were added."""
    done = {r["id"] for r in read_jsonl(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    added = 0
    with out.open("a", encoding="utf-8") as f:
        for item in items:
            if item["id"] in done:
                continue
            question = item["turns"][-1]
            started = time.perf_counter()
            query, hits = assistant.answerer.evidence(question)
            draft = assistant.answerer.draft(question, query, hits) if hits else ""
            record = {
                "id": item["id"], "set": set_name, "split": item.get("split"), "answerable": item["answerable"],
                "answers": item.get("answers", []), "source": item.get("source"), "question": question,
                "query": query, "hits": [h.to_dict() for h in hits], "draft": draft,
                "llm": assistant.models["llm"], "seconds": round(time.perf_counter() - started, 2),
            }  # fmt: skip
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            added += 1
            if on_result:
                on_result(added, record)
    return added


def collect_evidence(
    assistant: Assistant, items: list[dict[str, Any]], out: Path, set_name: str, passages: int = 3
) -> int:
    """For each item not yet in `out`: what the checks before the model see (no model call), so their
    cut-offs can be swept over every question of a set."""
    done = {r["id"] for r in read_jsonl(out)}
    added = 0
    with out.open("a", encoding="utf-8") as f:
        for item in items:
            if item["id"] in done:
                continue
            query, hits = assistant.answerer.evidence(item["turns"][-1])
            scores = {k: round(v, 4) for k, v in evidence(query, hits, depth=passages).items()}
            record = {"id": item["id"], "set": set_name, "split": item.get("split"), "answerable": item["answerable"]}
            record |= {"keyword_match": bool(scores.pop("keyword_match")), "coverage": scores}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            added += 1
    return added
