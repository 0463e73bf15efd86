"""Evaluate: eval-set items in, metrics out: retrieval hit@k, and answer quality end to end.

Reads the shared JSON Lines format (`turns`, `answers`, `evidence`, `answerable`, `source`), asks
the retriever the last turn of each answerable item (earlier turns passed as history, as a chat
would), and counts a hit at k when one of the top-k
chunks contains an evidence string (compared after NFKC and with whitespace removed) and, where
the item names a `source` file, comes from that file. The questions never reach the product.
"""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError, InputError, ModelUnavailableError
from assistant.text import squash
from assistant.types import Hit

if TYPE_CHECKING:
    from assistant.core import Assistant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    id: str
    turns: list[str]
    evidence: list[str]
    answerable: bool
    type: str
    source: str | None
    answers: list[str]
    split: str | None = None  # calibration sets: "calibrate" or "holdout"


def read_items(path: Path) -> list[Item]:
    items, unlabelled = [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AssistantError(f"cannot read eval file {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if raw.get("needs_label"):  # exported feedback no one has labelled yet: nothing to score it against
                unlabelled += 1
                continue
            items.append(
                Item(
                    str(raw["id"]),
                    list(raw["turns"]),
                    list(raw.get("evidence", [])),
                    bool(raw.get("answerable", True)),
                    str(raw.get("type", "")),
                    raw.get("source"),
                    list(raw.get("answers", [])),
                    raw.get("split"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise AssistantError(f"{path}:{number} is not an eval item ({exc}); see data/eval/README.md") from exc
    if unlabelled:
        log.warning(
            "%s: skipped %d item(s) marked needs_label: give each its answers, then drop the mark", path, unlabelled
        )
    return items


def sample(items: list[Item], n: int, seed: int = 0) -> list[Item]:
    """A fixed random sample (the same N items on every run), in file order."""
    import random

    keep = set(random.Random(seed).sample(range(len(items)), min(n, len(items))))
    return [item for i, item in enumerate(items) if i in keep]


normalize = squash  # the eval README's rule: NFKC, lower-case, whitespace removed


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
        try:
            hits = search(item.turns[-1], depth, item.turns[:-1])
        except InputError:  # a question the assistant rejects (e.g. blank) retrieves nothing: a miss
            hits = []
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


def run_answers(
    assistant: Assistant,
    items: list[Item],
    fast: bool = False,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[tuple[Item, dict[str, Any]]]:
    """Ask every item (its earlier turns as history); each answer dict gets `id` and `latency_s`.
    An item the assistant rejects (e.g. an empty question) scores as a refusal carrying the error."""
    if not fast:
        from assistant.models.llm import UnavailableChatModel

        if isinstance(assistant.llm, UnavailableChatModel):  # its answers would be quotes, measured as the model's
            raise ModelUnavailableError(f"evaluating the chat model, which is unavailable: {assistant.llm.reason}")
    results = []
    for n, item in enumerate(items, start=1):
        started = time.perf_counter()
        try:
            answer = assistant.ask(item.turns[-1], history=item.turns[:-1], fast=fast).to_dict()
        except InputError as exc:  # a broken index or store is not a wrong answer: it stops the run
            answer = {"question": item.turns[-1], "answer": "", "refused": True, "citations": [], "timings": {}}
            answer |= {"models": assistant.models, "related": [], "error": str(exc)}
        record = {"id": item.id, **answer, "latency_s": round(time.perf_counter() - started, 3)}
        results.append((item, record))
        if on_result:
            on_result(n, record)
    return results


def answer_is_right(answer: dict[str, Any], item: Item) -> bool:
    """One acceptable answer string appears in the answer (two for `list` items); refusals are wrong."""
    if answer["refused"]:
        return False
    text = normalize(answer["answer"])
    found = sum(normalize(a) in text for a in item.answers)
    return found >= (2 if item.type == "list" else 1)


# CMRC 2018's scorer (cmrc2018_evaluate.py): each CJK character is a token, the text between them is split
# into words, punctuation (Chinese and ASCII) is dropped; F1 from the longest common substring of tokens.
_PUNCTUATION = set("-:_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』!\"#$%&'()*,.;<>?@[]{}|")
_MARKERS = re.compile(r"\s*[\[【]\d+[\]】]")


def cmrc_tokens(text: str) -> list[str]:
    tokens, word = [], ""
    for char in unicodedata.normalize("NFKC", text).lower():
        if char in _PUNCTUATION:  # dropped, not a boundary: "Step-3" is one word
            continue
        if "\u4e00" <= char <= "\u9fa5" or char.isspace():
            tokens.extend(re.findall(r"\w+", word))
            word = ""
            if not char.isspace():
                tokens.append(char)
        else:
            word += char
    return tokens + re.findall(r"\w+", word)


def cmrc_f1(prediction: str, answers: list[str]) -> float:
    """CMRC's F1 of `prediction` (citation markers removed) against the best of `answers`."""
    predicted = cmrc_tokens(_MARKERS.sub("", prediction))
    best = 0.0
    for answer in answers:
        reference = cmrc_tokens(answer)
        common = _longest_common_run(predicted, reference)
        if common:
            p, r = common / len(predicted), common / len(reference)
            best = max(best, 2 * p * r / (p + r))
    return best


def cmrc_em(prediction: str, answers: list[str]) -> float:
    """1.0 when the prediction, without punctuation and markers, equals an answer."""
    predicted = "".join(cmrc_tokens(_MARKERS.sub("", prediction)))
    return float(any(predicted == "".join(cmrc_tokens(a)) for a in answers))


def _longest_common_run(a: list[str], b: list[str]) -> int:
    best, row = 0, [0] * (len(b) + 1)
    for x in a:
        new = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                new[j] = row[j - 1] + 1
                best = max(best, new[j])
        row = new
    return best


def citation_supported(answer: dict[str, Any], item: Item) -> bool:
    """Some citation's passage contains an evidence string (and, for CMRC, comes from the right file)."""
    return any(
        (not item.source or c["source"] == item.source)
        and any(normalize(e) in normalize(c["text"]) for e in item.evidence)
        for c in answer["citations"]
    )


def answer_metrics(results: list[tuple[Item, dict[str, Any]]]) -> dict[str, Any]:
    """The metrics of data/eval/README.md, per type too, and the failures with what was cited."""
    answerable = [(i, a) for i, a in results if i.answerable]
    unanswerable = [(i, a) for i, a in results if not i.answerable]
    answered = [(i, a) for i, a in answerable if not a["refused"]]
    ttft = sorted(a["timings"].get("first_token_s", a["timings"].get("total_s", 0.0)) for _, a in results)
    total = sorted(a["latency_s"] for _, a in results)
    by_type: dict[str, list[bool]] = {}
    for i, a in results:
        by_type.setdefault(i.type, []).append(_right(i, a))
    return {
        "items": len(results),
        "answer_accuracy": _share(answer_is_right(a, i) for i, a in answerable),
        "refusal_accuracy": _share(a["refused"] for _, a in unanswerable),
        "false_refusals": sum(a["refused"] for _, a in answerable),
        "false_refusal_rate": _share(a["refused"] for _, a in answerable),
        "citation_support": _share(citation_supported(a, i) for i, a in answered),
        "f1": _mean(cmrc_f1(a["answer"], i.answers) if not a["refused"] else 0.0 for i, a in answerable),
        "em": _mean(cmrc_em(a["answer"], i.answers) if not a["refused"] else 0.0 for i, a in answerable),
        "fallback_answers": sum(_quoted(a) for _, a in results),
        "refusal_reasons": _count(a.get("refusal_reason") for _, a in results if a["refused"]),
        "first_token_p50_s": _pct(ttft, 0.5),
        "first_token_p95_s": _pct(ttft, 0.95),
        "total_p50_s": _pct(total, 0.5),
        "total_p95_s": _pct(total, 0.95),
        "by_type": {t: _share(v) for t, v in sorted(by_type.items())},
        "failures": [_failure(i, a) for i, a in results if not _right(i, a)],
    }


def _right(item: Item, answer: dict[str, Any]) -> bool:
    return answer_is_right(answer, item) if item.answerable else bool(answer["refused"])


def _failure(item: Item, answer: dict[str, Any]) -> dict[str, Any]:
    cited = answer["citations"][0]["quote"] if answer["citations"] else None
    return {
        "id": item.id,
        "type": item.type,
        "question": item.turns[-1],
        "expected": item.answers[:3] if item.answerable else "refusal",
        "got": answer["answer"],
        "cited": cited,
        "refusal_reason": answer.get("refusal_reason"),
        "refusal_detail": answer.get("refusal_detail", ""),
    }


def _quoted(answer: dict[str, Any]) -> bool:
    """A model answer that fell back to a quote (the model failed or timed out)."""
    return not answer["refused"] and "extractive" in answer.get("models", {}).get("llm", "") and "error" not in answer


def _count(values: Iterable[str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def _share(values: Iterable[bool]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def _pct(values: list[float], q: float) -> float | None:
    return round(values[min(len(values) - 1, int(len(values) * q))], 3) if values else None
