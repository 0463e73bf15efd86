"""Tune: the refusal decision's cut-offs (`VerifyPolicy`) chosen from curves over the calibration sets.

`collect` runs the real chat model once per sampled calibration question and appends what it was
given and what it wrote (question, query, passages, draft) to a JSON Lines file, skipping ids already
there: a run can stop and resume, and drafts accumulate across runs. `prepare` scores each stored
draft once (`verify.score_claims`, the coverage checked before the model); `outcome` then judges it
under any policy in microseconds, so `sweep` tries hundreds of policies in seconds without the model.
`choose` picks the operating point; the sets themselves are `calibration`'s, the plot `cli_tune`'s.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .decide import Decision, VerifyPolicy, after_model, evidence, judge, judge_evidence
from .evaluate import cmrc_f1, normalize
from .types import Chunk, Hit
from .verify import Scored, score_claims

if TYPE_CHECKING:
    from .core import Assistant

TARGET_REFUSAL = 0.9  # refuse at least 9 in 10 unanswerable questions (the bar)


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


def grounding_curve(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Refusal accuracy and false-refusal rate of the checks before the model, for each pair of cut-offs."""
    rows = []
    for nouns, content in itertools.product([0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]):
        refused = [
            not r["keyword_match"] or r["coverage"].get("nouns", 0) < nouns or r["coverage"].get("content", 0) < content
            for r in records
        ]
        ans = [x for x, r in zip(refused, records, strict=True) if r["answerable"]]
        unans = [x for x, r in zip(refused, records, strict=True) if not r["answerable"]]
        rows.append(
            {"min_grounding_nouns": nouns, "min_grounding_content": content,
             "refusal_accuracy": _rate(sum(unans), len(unans)), "false_refusal_rate": _rate(sum(ans), len(ans)),
             "answerable": len(ans), "unanswerable": len(unans)}
        )  # fmt: skip
    return rows


@dataclass(frozen=True)
class Prepared:
    """A stored draft scored once; `outcome` judges it under a policy."""

    record: dict[str, Any]
    evidence: dict[str, float]  # what the checks before the model see
    scored: list[Scored]


def prepare(records: Iterable[dict[str, Any]], passages: int = 3) -> list[Prepared]:
    prepared = []
    for r in records:
        hits = [hit_from_dict(h) for h in r["hits"]]
        chunks = [h.chunk for h in hits[:passages]]
        prepared.append(Prepared(r, evidence(r["query"], hits), score_claims(r["draft"], chunks, r["query"])))
    return prepared


def outcome(p: Prepared, policy: VerifyPolicy) -> tuple[Decision, str]:
    """The decision and the kept answer text for one prepared draft under `policy`."""
    decision = judge_evidence(p.evidence, policy)
    if decision.refused:
        return decision, ""
    verdict = judge(p.scored, policy)
    decision = after_model(p.record["draft"], verdict)
    return decision, "" if decision.refused else "".join(c.text for c in verdict.claims)


def right(record: dict[str, Any], text: str) -> bool:
    """The answer holds a reference answer (containment, as `evaluate` scores), or matches it by CMRC F1 ≥ 0.8."""
    return any(normalize(a) in normalize(text) for a in record["answers"]) or cmrc_f1(text, record["answers"]) >= 0.8


def metrics(prepared: list[Prepared], policy: VerifyPolicy) -> dict[str, Any]:
    """Refusal accuracy, false-refusal rate, answer accuracy and wrong-answer rate under `policy`."""
    answerable = unanswerable = refused_unans = refused_ans = right_ans = wrong = draft_right = 0
    reasons: dict[str, int] = {}
    for p in prepared:
        decision, text = outcome(p, policy)
        if decision.refused:
            reasons[str(decision.reason)] = reasons.get(str(decision.reason), 0) + 1
        if p.record["answerable"]:
            answerable += 1
            refused_ans += decision.refused
            ok = not decision.refused and right(p.record, text)
            right_ans += ok
            wrong += not decision.refused and not ok
            draft_right += right(p.record, p.record["draft"])
        else:
            unanswerable += 1
            refused_unans += decision.refused
            wrong += not decision.refused
    answered = len(prepared) - refused_ans - refused_unans
    return {
        "refusal_accuracy": _rate(refused_unans, unanswerable),
        "false_refusal_rate": _rate(refused_ans, answerable),
        "answer_accuracy": _rate(right_ans, answerable),
        "wrong_answer_rate": _rate(wrong, answered),  # of the answers given, the share that are wrong
        "draft_accuracy": _rate(draft_right, answerable),  # the model's raw drafts, before any decision
        "answerable": answerable,
        "unanswerable": unanswerable,
        "refusal_reasons": reasons,
    }


def grid(base: VerifyPolicy | None = None) -> list[VerifyPolicy]:
    """The policies a sweep tries: each group of related cut-offs moves together, from lenient to strict."""
    base = base or VerifyPolicy()
    grounding = [(0.0, 0.0), (0.3, 0.2), (0.5, 0.3), (0.7, 0.5)]
    support = [(0.5, 0.5, 0.2), (0.75, 0.7, 0.3), (0.9, 0.85, 0.45)]
    qa = [(0.5, 0.3), (0.7, 0.5), (0.85, 0.65)]
    question = [(0.0, 0.0), (0.5, 0.3), (0.7, 0.5)]
    quote = [0.0, 0.2, 0.35, 0.5]
    flags = [(True, True), (False, False)]
    return [
        replace(
            base,
            min_grounding_nouns=g[0],
            min_grounding_content=g[1],
            min_nouns=s[0],
            min_content=s[1],
            min_overlap=s[2],
            min_qa_nouns=a[0],
            min_qa_content=a[1],
            min_question_nouns=q[0],
            min_question_content=q[1],
            min_question_quote=u,
            constraints=f[0],
            kind=f[1],
        )  # fmt: skip
        for g, s, a, q, u, f in itertools.product(grounding, support, qa, question, quote, flags)
    ]


def sweep(prepared: list[Prepared], policies: list[VerifyPolicy]) -> list[tuple[VerifyPolicy, dict[str, Any]]]:
    return [(policy, metrics(prepared, policy)) for policy in policies]


def choose(rows: list[tuple[VerifyPolicy, dict[str, Any]]]) -> tuple[VerifyPolicy, dict[str, Any]]:
    """The most right answers among policies refusing at least TARGET_REFUSAL of the unanswerable
    questions, fewer false refusals breaking ties; if none reaches the target, the best sum of the two."""
    meeting = [r for r in rows if (r[1]["refusal_accuracy"] or 0) >= TARGET_REFUSAL]
    if meeting:
        return max(meeting, key=lambda r: (r[1]["answer_accuracy"], -r[1]["false_refusal_rate"]))
    return max(rows, key=lambda r: (r[1]["answer_accuracy"] or 0) + (r[1]["refusal_accuracy"] or 0))


def hit_from_dict(d: dict[str, Any]) -> Hit:
    fields = ("chunk_id", "source", "title", "section", "paragraph", "start", "end", "text")
    chunk = Chunk(**{k: d[k] for k in fields})
    return Hit(
        chunk, d["rank"], d["score"], d.get("dense_score"), d.get("dense_rank"), d.get("keyword_score"),
        d.get("keyword_rank"), d.get("overlap"),
    )  # fmt: skip


def _rate(n: int, total: int) -> float | None:
    return round(n / total, 4) if total else None
