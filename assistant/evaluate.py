"""Evaluate: eval-set items in, metrics out (retrieval hit@k for now).

Reads the shared JSON Lines format (`turns`, `answers`, `evidence`, `answerable`, `source`), asks
the retriever the last turn of each answerable item (earlier turns passed as history, as a chat
would), and counts a hit at k when one of the top-k
chunks contains an evidence string (compared after NFKC and with whitespace removed) and, where
the item names a `source` file, comes from that file. The questions never reach the product.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AssistantError
from .types import Hit


@dataclass(frozen=True)
class Item:
    id: str
    turns: list[str]
    evidence: list[str]
    answerable: bool
    type: str
    source: str | None


def read_items(path: Path) -> list[Item]:
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AssistantError(f"cannot read eval file {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            items.append(
                Item(
                    str(raw["id"]),
                    list(raw["turns"]),
                    list(raw.get("evidence", [])),
                    bool(raw.get("answerable", True)),
                    str(raw.get("type", "")),
                    raw.get("source"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise AssistantError(f"{path}:{number} is not an eval item ({exc}); see ../shared/eval/README.md") from exc
    return items


def normalize(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def is_hit(hit: Hit, item: Item) -> bool:
    if item.source and hit.chunk.source != item.source:
        return False
    text = normalize(hit.chunk.text)
    return any(normalize(e) in text for e in item.evidence)


def retrieval_metrics(
    search: Callable[[str, int, list[str]], list[Hit]], items: Iterable[Item], ks: tuple[int, ...] = (1, 3, 5)
) -> dict[str, Any]:
    """hit@k for each k over answerable items, plus the misses at the largest k and latency."""
    depth = max(ks)
    counts = dict.fromkeys(ks, 0)
    misses, latencies, n = [], [], 0
    for item in items:
        if not item.answerable or not item.evidence:
            continue
        n += 1
        started = time.perf_counter()
        hits = search(item.turns[-1], depth, item.turns[:-1])
        latencies.append(time.perf_counter() - started)
        first = next((h.rank for h in hits if is_hit(h, item)), None)
        for k in ks:
            counts[k] += first is not None and first <= k
        if first is None or first > 1:
            misses.append(
                {
                    "id": item.id,
                    "question": item.turns[-1],
                    "first_hit_rank": first,
                    "top": hits[0].chunk.text[:80] if hits else None,
                }
            )
    latencies.sort()
    return {
        "questions": n,
        **{f"hit@{k}": round(counts[k] / n, 4) if n else None for k in ks},
        "latency_p50_s": round(latencies[len(latencies) // 2], 4) if latencies else None,
        "latency_p95_s": round(latencies[int(len(latencies) * 0.95)], 4) if latencies else None,
        "not_first": misses,
    }
