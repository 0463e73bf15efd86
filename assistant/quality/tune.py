"""Tune: the refusal decision's cut-offs (`VerifyPolicy`) chosen from curves over the calibration sets.

`prepare` scores each draft `collect` stored once (`verify.score_claims`, the coverage checked before
the model); `outcome` then judges it under any policy in microseconds, so `sweep` tries hundreds of
policies in seconds without the model. `choose` picks the operating point; the sets themselves are
`calibration`'s, the plot `interfaces.cli.tune`'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from assistant.checks.decide import Case, Decision, VerifyPolicy, decide, evidence
from assistant.checks.verify import Scored, score_claims
from assistant.quality.evaluate import cmrc_f1, normalize
from assistant.text import QUESTION_WORDS
from assistant.types import Chunk, Hit

MAX_EARLY_FALSE_REFUSALS = 0.01  # refusals before the model: at most 1 in 100 answerable questions


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


class LeadIns:
    """`HybridRetriever.lead_in` for stored drafts, without an index: each calibration set's corpus files
    chunked as indexing chunks them, so a replay checks the same text production does."""

    def __init__(self, corpora: dict[str, Path]) -> None:
        self.corpora = corpora  # set name -> corpus directory
        self._ordered: dict[tuple[str, str], list[Chunk]] = {}

    def __call__(self, set_name: str, chunk: Chunk) -> str:
        from assistant.corpus.chunk import chunk_document
        from assistant.corpus.ingest import read_document
        from assistant.index.retrieve import lead_in

        corpus = self.corpora.get(set_name)
        if corpus is None or not (corpus / chunk.source).is_file():
            return ""
        key = (set_name, chunk.source)
        if key not in self._ordered:
            chunks = chunk_document(read_document(corpus / chunk.source, chunk.source))
            self._ordered[key] = sorted((c for c in chunks if c.paragraph), key=lambda c: c.start)
        return lead_in(chunk, self._ordered[key])


def prepare(
    records: Iterable[dict[str, Any]], passages: int = 3, leads: Callable[[str, Chunk], str] | None = None
) -> list[Prepared]:
    """Score each stored draft once; `leads` gives a passage's lead-in (`LeadIns`) by the record's set."""
    prepared = []
    for r in records:
        hits = [hit_from_dict(h) for h in r["hits"]]
        chunks = [h.chunk for h in hits[:passages]]
        lead = [leads(r.get("of", r["set"]), c) for c in chunks] if leads else []
        scored = score_claims(r["draft"], chunks, question=r["query"], leads=lead)
        prepared.append(Prepared(r, evidence(r["query"], hits), scored))
    return prepared


def outcome(p: Prepared, policy: VerifyPolicy) -> tuple[Decision, str]:
    """The decision and the kept answer text for one prepared draft under `policy`: `decide`, as serving
    calls it."""
    case = Case(p.record["query"], p.evidence, draft=p.record["draft"], scored=p.scored)
    result = decide(case, policy)
    if result.decision.refused or result.verdict is None:
        return result.decision, ""
    return result.decision, "".join(c.text for c in result.verdict.claims)


RIGHT_F1 = 0.5  # CMRC F1 at which a paraphrase of a long reference span counts as the answer


def right(record: dict[str, Any], text: str) -> bool:
    """The answer holds a reference answer (containment, as `evaluate` scores) or overlaps one by CMRC F1 ≥
    RIGHT_F1 (CMRC's references are whole clauses; the model answers with part of one in its own words)."""
    return (
        any(normalize(a) in normalize(text) for a in record["answers"]) or cmrc_f1(text, record["answers"]) >= RIGHT_F1
    )


def metrics(prepared: list[Prepared], policy: VerifyPolicy) -> dict[str, Any]:
    """Refusal accuracy, false-refusal rate, answer accuracy and wrong-answer rate under `policy`."""
    answerable = unanswerable = refused_unans = refused_ans = right_ans = wrong = draft_right = 0
    reasons: dict[str, int] = {}
    by_set: dict[str, list[bool]] = {}  # refusals of each set's unanswerable questions
    for p in prepared:
        decision, text = outcome(p, policy)
        if not p.record["answerable"]:
            by_set.setdefault(p.record["set"], []).append(decision.refused)
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
        # each kind of unanswerable question weighs the same (withheld passages, shifted, swapped, content-free)
        "refusal_accuracy_per_set": _rate(sum(sum(v) / len(v) for v in by_set.values()), len(by_set)),
        "false_refusal_rate": _rate(refused_ans, answerable),
        "answer_accuracy": _rate(right_ans, answerable),
        "wrong_answer_rate": _rate(wrong, answered),  # of the answers given, the share that are wrong
        "draft_accuracy": _rate(draft_right, answerable),  # the model's raw drafts, before any decision
        "answerable": answerable,
        "unanswerable": unanswerable,
        "refusal_reasons": reasons,
    }


def choose_grounding(curve: list[dict[str, Any]], max_false_refusals: float = MAX_EARLY_FALSE_REFUSALS) -> dict:
    """The cut-offs before the model that refuse the most unanswerable questions while refusing at most
    `max_false_refusals` of the answerable ones: a refusal before the model never sees an answer, so it
    must almost never be wrong; telling answers apart is left to the checks after the model."""
    fine = [r for r in curve if (r["false_refusal_rate"] or 0) <= max_false_refusals]
    return max(fine, key=lambda r: (r["refusal_accuracy"] or 0, -(r["false_refusal_rate"] or 0)))


def grid(base: VerifyPolicy | None = None, grounding: list[tuple[float, float]] | None = None) -> list[VerifyPolicy]:
    """The policies a sweep tries: each group of related cut-offs moves together, from lenient to strict,
    and each rule about the question (premise names, constraints, answer kind) is tried on and off.
    `grounding`: the cut-offs before the model to try (default: a few, from lenient to strict)."""
    base = base or VerifyPolicy()
    grounding = grounding or [(0.0, 0.0), (0.3, 0.2), (0.5, 0.3), (0.7, 0.5)]
    support = [(0.5, 0.5), (0.5, 0.6), (0.75, 0.7)]  # nouns, content
    overlap = [0.2, 0.3]
    qa = [(0.0, 0.0), (0.5, 0.3), (0.7, 0.5)]
    question = [(0.0, 0.0), (0.5, 0.3)]
    at_answer = [0.0, 0.3, 0.6]
    content = [0.0, 1.0, 2.0]
    on_off = [True, False]
    return [
        replace(
            base,
            min_grounding_nouns=g[0],
            min_grounding_content=g[1],
            min_nouns=s[0],
            min_content=s[1],
            min_overlap=o,
            min_qa_nouns=a[0],
            min_qa_content=a[1],
            min_question_nouns=q[0],
            min_question_content=q[1],
            min_question_at_answer=u,
            min_answer_content=c,
            premise=p,
            constraints=k,
            kind=w,
        )  # fmt: skip
        for g, s, o, a, q, u, c, p, k, w in itertools.product(
            grounding, support, overlap, qa, question, at_answer, content, on_off, on_off, on_off
        )
    ]


# Each rule about the question, and how to switch it off: `rule_effects` measures what it buys.
RULES: dict[str, dict[str, Any]] = {
    "grounding before the model": {"min_grounding_nouns": 0.0, "min_grounding_content": 0.0},
    "question + sentence about the passage (qa_*)": {"min_qa_nouns": 0.0, "min_qa_content": 0.0},
    "passage covers the question (question_*)": {"min_question_nouns": 0.0, "min_question_content": 0.0},
    "question stated where the answer is": {"min_question_at_answer": 0.0},
    "answer content beyond the question": {"min_answer_content": 0.0},
    "premise: the question's names in the passage": {"premise": False},
    "constraints: years, ordinals, qualifiers": {"constraints": False},
    "answer kind (quantity, date, who)": {"kind": False},
}


def rule_effects(prepared: list[Prepared], policy: VerifyPolicy) -> list[dict[str, Any]]:
    """For each rule of `policy`, what switching it off would change: the wrong answers it prevents and
    the false refusals it causes (counts over `prepared`). A rule that costs more than it buys should go."""
    base = counts(prepared, policy)
    rows = []
    for rule, off in RULES.items():
        without = counts(prepared, replace(policy, **off))
        rows.append(
            {"rule": rule, "wrong_answers_prevented": without["wrong"] - base["wrong"],
             "false_refusals_caused": base["false_refusals"] - without["false_refusals"],
             "right_answers_lost": without["right"] - base["right"]}
        )  # fmt: skip
    return rows


def counts(prepared: list[Prepared], policy: VerifyPolicy) -> dict[str, int]:
    """Right answers, wrong answers (to answerable or unanswerable questions) and false refusals."""
    right_n = wrong = false_refusals = 0
    for p in prepared:
        decision, text = outcome(p, policy)
        if decision.refused:
            false_refusals += p.record["answerable"]
        elif p.record["answerable"] and right(p.record, text):
            right_n += 1
        else:
            wrong += 1
    return {"right": right_n, "wrong": wrong, "false_refusals": false_refusals}


def content_free(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each answerable draft, a draft that restates its question and answers nothing ("X 的成绩是。[1]"),
    labelled unanswerable (set `empty`): a policy must not pass an answer without content."""
    out = []
    for r in records:
        if r["answerable"] and r["set"] != "empty" and r["hits"]:
            stem = QUESTION_WORDS.sub("", r["question"]).strip(" ，,。？?")
            twin = {"id": f"{r['id']}-empty", "set": "empty", "of": r["set"], "answerable": False, "answers": []}
            out.append({**r, **twin, "draft": f"{stem}。[1]"})
    return out


def sweep(prepared: list[Prepared], policies: list[VerifyPolicy]) -> list[tuple[VerifyPolicy, dict[str, Any]]]:
    return [(policy, metrics(prepared, policy)) for policy in policies]


def choose(rows: list[tuple[VerifyPolicy, dict[str, Any]]]) -> tuple[VerifyPolicy, dict[str, Any]]:
    """The operating point. Score each policy by its right outcomes on both kinds of question, weighted
    equally (answer accuracy on the answerable + refusal accuracy on the unanswerable, each kind of
    unanswerable question weighing the same), so neither a bold policy (answers everything) nor a timid
    one (refuses everything) wins. Among the policies within one question of the best score (differences
    the sample cannot resolve), take the one giving the fewest wrong answers, then the fewest false refusals."""

    def score(m: dict[str, Any]) -> float:
        return (m["answer_accuracy"] or 0) + (m["refusal_accuracy_per_set"] or 0)

    best = max(score(m) for _, m in rows)
    m0 = rows[0][1]
    tolerance = 1 / max(1, m0["answerable"]) + 1 / max(1, m0["unanswerable"])
    near = [r for r in rows if score(r[1]) >= best - tolerance / 2]
    return min(near, key=lambda r: (r[1]["wrong_answer_rate"] or 0, r[1]["false_refusal_rate"] or 0, -score(r[1])))


def hit_from_dict(d: dict[str, Any]) -> Hit:
    fields = ("chunk_id", "source", "title", "section", "paragraph", "start", "end", "text")
    chunk = Chunk(**{k: d[k] for k in fields})
    return Hit(
        chunk, d["rank"], d["score"], d.get("dense_score"), d.get("dense_rank"), d.get("keyword_score"),
        d.get("keyword_rank"), d.get("overlap"),
    )  # fmt: skip


def _rate(n: float, total: int) -> float | None:
    return round(n / total, 4) if total else None
