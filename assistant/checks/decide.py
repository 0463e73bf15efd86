"""Decide: the one place that decides to answer, to correct the question's premise, or to refuse, and says why.

`decide` takes one record of its inputs (`Case`) for every kind of answer: before the model (the evidence
alone), a quote (the `--fast` answer, the fallback, the evidence shown while the model writes), or a model's
draft. Serving (`answering/answer`, `answering/replies`) and calibration (`quality/tune`) both call it, so
the cut-offs chosen on stored drafts are the ones that serve (`tests/test_decision_replay.py`).

Before the model (`judge_evidence`): no retrieved passage shares a keyword with the question
(`no_match`), or the passages mention too little of what it is about (`not_covered`). A quote must hold
enough of the question (`min_quote_coverage`). After the model (`after_model`): the model says the
passages do not give the answer (`model_declined`), no sentence of its draft is supported by a passage it
was given (`unverified`), or sentences are supported but none answers *this* question. Supported is not
answered: a sentence answers only when it says something beyond the question (`answer_content`) and the
passage that states it binds the fact to what the question names. When that passage names another
partner, version, year or category than the question (`premise`), the premise is false and the answer
says what the passage states instead (`false_premise`), unless the question says nothing besides what the
passage lacks (`not_covered`). Every cut-off and rule is a field of `VerifyPolicy`, chosen on the
calibration sets (`assistant calibrate`, docs/calibration.md); the scores come from `verify`, and
rendering the answer or the refusal is `answering`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from assistant.checks.premise import Premise
from assistant.checks.verify import Check, Scored, answer_content, coverage
from assistant.text import is_chinese
from assistant.types import Hit

NO_MATCH = "no_match"
NOT_COVERED = "not_covered"
MODEL_DECLINED = "model_declined"
UNVERIFIED = "unverified"
FALSE_PREMISE = "false_premise"
ORDERS_ONLY = "orders_only"
REASONS = {
    NO_MATCH: "no passage shares the question's terms",
    NOT_COVERED: "the passages found do not cover what is asked",
    MODEL_DECLINED: "the model found no answer in the passages",
    UNVERIFIED: "no sentence of the draft answer is supported by its passages",
    FALSE_PREMISE: "the passage states the fact for something other than what the question names",
    ORDERS_ONLY: "the question only gives the assistant orders; it asks nothing about the documents",
}
MODEL_REFUSES = re.compile(
    r"没有提到|未提及|没有提及|未提到|无法回答|没有相关|不知道|无法确定|没有给出|does not (say|mention|specify)|"
    r"not mentioned|no information|cannot (answer|determine)|not (provided|specified|stated)",
    re.I,
)


@dataclass(frozen=True)
class VerifyPolicy:
    """Every cut-off of the refusal decision, in one value passed in (as `FusionWeights` is).

    The defaults are the operating point chosen on the calibration sets' `calibrate` half
    (docs/calibration.md, `docs/calibration/`). Hard checks (a number the passage lacks, an injected order)
    are not cut-offs and are not here."""

    # before the model: the best passages must mention this share of the question's nouns / content bigrams
    min_grounding_nouns: float = 0.2
    min_grounding_content: float = 0.2
    # a sentence is supported by a passage holding this share of its nouns / content bigrams, and a sentence
    # of the passage holding this share of its character bigrams (or, across languages, this cosine)
    min_nouns: float = 0.5
    min_content: float = 0.5
    min_overlap: float = 0.3
    min_similarity: float = 0.80
    # a claim translated from English into the passage's Chinese is checked at these stricter cut-offs (a
    # translation drops words); kept from before calibration, for want of an English calibration set
    min_translated_nouns: float = 0.75
    min_translated_content: float = 0.7
    # the question and the sentence together must be about the passage ("训练数据有多少 token" + "321B")
    min_qa_nouns: float = 0.0
    min_qa_content: float = 0.0
    # the sentence answers this question: its passage covers the question alone this much, holds the
    # question's years, ordinals and qualifiers (`constraints`), and it is the kind of answer asked (`kind`)
    min_question_nouns: float = 0.5
    min_question_content: float = 0.3
    min_question_at_answer: float = 0.0  # where the passage states the answer, this share of the question is stated
    # the sentence says this much beyond the question (distinct content characters; 0 = it restates it)
    min_answer_content: float = 1.0
    # the passage that states the answer holds the question's names and versions (`premise`) and its years,
    # ordinals and qualifiers (`constraints`); when it does not, the premise is corrected, not answered
    premise: bool = True
    constraints: bool = True
    kind: bool = False
    # a quote (the `--fast` answer, the fallback, the evidence shown while the model writes) holds this
    # IDF-weighted share of the question's keywords
    min_quote_coverage: float = 0.3

    def support_fails(self, check: Check) -> str | None:
        """Why the passage does not support the sentence (None when it does)."""
        if check.failed:
            return check.failed[0]
        s = check.scores
        if check.cross:
            return None if s.get("similarity", 0.0) >= self.min_similarity else "similarity"
        return _below(
            s,
            ("nouns", self.min_translated_nouns if check.translated else self.min_nouns),
            ("content", self.min_translated_content if check.translated else self.min_content),
            ("overlap", self.min_overlap),
            ("qa_nouns", self.min_qa_nouns),
            ("qa_content", self.min_qa_content),
        )

    def question_fails(self, check: Check) -> str | None:
        """Why the supported sentence does not answer the question (None when it does)."""
        if missing := self.unmet_premise(check):
            return f"premise {missing[0]}"
        failed = _below(
            check.scores,
            ("answer_content", self.min_answer_content),
            ("question_nouns", self.min_question_nouns),
            ("question_content", self.min_question_content),
            ("question_at_answer", self.min_question_at_answer),
        )
        return failed or ("answer kind" if self.kind and not check.kind_ok else None)

    def unmet_premise(self, check: Check) -> tuple[str, ...]:
        """What the question takes for granted that the passage lacks, under the checks this policy makes."""
        return (check.unbound if self.premise else ()) + (check.unmet if self.constraints else ())


@dataclass(frozen=True)
class Claim:
    """One answer sentence that survived verification, with the passages (1-based) that support it."""

    text: str  # without markers
    passages: tuple[int, ...]
    quotes: tuple[str, ...]  # the supporting sentence in each of those passages


@dataclass(frozen=True)
class Verdict:
    claims: list[Claim]
    dropped: list[str]  # sentences no given passage supports
    answers: bool = True  # some kept sentence answers the question (see VerifyPolicy.question_fails)
    failed: str | None = None  # the check that failed when nothing was kept, or nothing answers
    report: list[dict[str, Any]] = field(default_factory=list)  # per sentence: kept, passage, failed, scores
    premise: Premise | None = None  # a kept sentence whose passage binds the fact to something else


@dataclass(frozen=True)
class Decision:
    """Answer (refused False) or refuse, with the reason code of REASONS and the check behind it."""

    refused: bool
    reason: str | None = None
    detail: str = ""


ANSWER = Decision(False)


@dataclass(frozen=True)
class Case:
    """Everything the answer decision looks at for one question (or one part of it), as one record: serving
    builds it as it answers, calibration rebuilds it from a stored draft, and both hand it to `decide`."""

    query: str  # the question in the passages' language
    evidence: dict[str, float]  # `evidence`: what the top passages share and cover of the question
    draft: str | None = None  # the model's draft (None: before the model, or a quote)
    scored: Sequence[Scored] = ()  # the draft's sentences scored against its passages (`verify.score_claims`)
    quote: str | None = None  # a quote's sentence ("" when no sentence can be quoted; None: not a quote)
    quote_coverage: float = 0.0  # the share of the question's keywords the quote holds (`extract`)
    unmet: tuple[str, ...] = ()  # a quote: what the question names that the quoted passage lacks


@dataclass(frozen=True)
class Outcome:
    """`decide`'s answer: the decision, and the judged draft where there was one (its kept sentences, and
    for a false premise the passage that states the fact otherwise)."""

    decision: Decision
    verdict: Verdict | None = None
    missing: tuple[str, ...] = ()  # a premise correction: what the question names that the passage lacks


def decide(case: Case, policy: VerifyPolicy) -> Outcome:
    """Answer, correct the premise, or refuse, for every kind of answer: before the model (the evidence
    alone), a quote, or a model's draft. The one decision: serving and calibration (`quality/tune`) call it."""
    early = judge_evidence(case.evidence, policy)
    if early.refused:
        return Outcome(early)
    if case.quote is not None:
        if not case.quote or case.quote_coverage < policy.min_quote_coverage:
            return Outcome(Decision(True, NOT_COVERED, "no quote"))
        if not case.unmet:
            return Outcome(ANSWER)
        if not asks_beyond(case.query, case.unmet):  # the question is nothing but what the passage lacks ("0")
            return Outcome(Decision(True, NOT_COVERED, "premise"))
        return Outcome(Decision(True, FALSE_PREMISE, _not_named(case.unmet)), missing=case.unmet)
    if case.draft is None:  # before the model: the passages may hold the answer
        return Outcome(ANSWER)
    verdict = judge(case.scored, policy)
    decision = after_model(case.draft, verdict)
    if decision.refused and decision.reason == FALSE_PREMISE and verdict.premise is not None:
        # a passage states the fact for something other than what the question names: corrected, unless
        # the question says nothing besides what the passage lacks (then it is not covered)
        if not asks_beyond(case.query, verdict.premise.missing):
            return Outcome(replace(decision, reason=NOT_COVERED), verdict)
        return Outcome(decision, verdict, verdict.premise.missing)
    return Outcome(decision, verdict)


def _not_named(missing: tuple[str, ...]) -> str:
    return f"the passage does not name {', '.join(missing)}"


def asks_beyond(query: str, missing: tuple[str, ...]) -> bool:
    """The question says something besides what the passage lacks: without that, there is no premise to
    correct, only a question the text does not answer."""
    rest = query
    for name in missing:
        rest = rest.replace(name, " ")
    return answer_content(rest, "") > 0


def judge(scored: Sequence[Scored], policy: VerifyPolicy) -> Verdict:
    """Keep the sentences a passage supports (a cited one first), under `policy`."""
    claims, dropped, report = [], [], []
    answers = False
    first_failure: str | None = None
    question_failure: str | None = None
    premise: Premise | None = None
    for sentence in scored:
        passing = [c for c in sentence.checks if policy.support_fails(c) is None]
        chosen = [c for c in passing if c.passage in sentence.cited] or passing[:1]
        if not chosen:
            shown = sentence.checks[0] if sentence.checks else None
            failed = (policy.support_fails(shown) if shown else None) or "no passage"
            first_failure = first_failure or failed
            dropped.append(sentence.text)
            report.append(_row(sentence.text, False, shown, failed))
            continue
        claims.append(Claim(sentence.text, tuple(c.passage for c in chosen), tuple(c.quote for c in chosen)))
        off = [policy.question_fails(c) for c in chosen]
        answers = answers or any(f is None for f in off)
        question_failure = question_failure or next((f for f in off if f), None)
        wrong_premise = next((c for c in chosen if policy.unmet_premise(c)), None)
        if premise is None and wrong_premise is not None:
            premise = Premise(wrong_premise.passage, wrong_premise.quote, policy.unmet_premise(wrong_premise))
        report.append(_row(sentence.text, True, chosen[0], off[0]))
    verdict_failure = first_failure if not claims else (None if answers else question_failure)
    return Verdict(claims, dropped, answers, verdict_failure, report, premise if not answers else None)


def evidence(query: str, hits: Sequence[Hit], english: bool = False, depth: int = 3) -> dict[str, float]:
    """What the checks before the model look at: whether any top passage shares a keyword with the
    question, and how much of the question's nouns and content the top passages mention."""
    top = list(hits[:depth])
    across = bool(top) and all(is_chinese(h.chunk.text) != is_chinese(query) for h in top)
    # an English question over Chinese passages shares no keyword with them: the embedding found them,
    # and the answer's claims are checked across languages after the model (numbers, codes, similarity)
    scores = {"keyword_match": float(across or any(h.keyword_rank is not None for h in top))}
    if not english and not across and top:
        scores |= coverage(query, [h.chunk for h in top])
    return scores


def judge_evidence(scores: dict[str, float], policy: VerifyPolicy) -> Decision:
    if not scores["keyword_match"]:  # dense similarity alone always finds *something*
        return Decision(True, NO_MATCH, "no keyword of the question in the top passages")
    if scores.get("nouns", 1.0) < policy.min_grounding_nouns:
        return Decision(True, NOT_COVERED, f"question nouns covered {scores['nouns']:.2f}")
    if scores.get("content", 1.0) < policy.min_grounding_content:
        return Decision(True, NOT_COVERED, f"question content covered {scores['content']:.2f}")
    return ANSWER


def after_model(draft: str, verdict: Verdict) -> Decision:
    """Answer with the verified sentences, or refuse saying which evidence was missing."""
    if MODEL_REFUSES.search(draft):
        return Decision(True, MODEL_DECLINED, MODEL_REFUSES.search(draft).group())  # type: ignore[union-attr]
    if not verdict.claims:
        return Decision(True, UNVERIFIED, verdict.failed or "")
    if not verdict.answers and verdict.premise is not None:
        return Decision(True, FALSE_PREMISE, _not_named(verdict.premise.missing))
    if not verdict.answers:
        return Decision(True, NOT_COVERED, verdict.failed or "")
    return ANSWER


def _row(text: str, kept: bool, check: Check | None, failed: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"sentence": text, "kept": kept, "failed": failed}
    if check is not None:
        row |= {"passage": check.passage, "scores": {k: round(v, 3) for k, v in check.scores.items()}}
        row |= {"unmet": list(check.unmet)} if check.unmet else {}
        row |= {"unbound": list(check.unbound)} if check.unbound else {}
    return row


def _below(scores: dict[str, float], *cuts: tuple[str, float]) -> str | None:
    """The first score under its cut-off (a score not computed passes)."""
    return next((name for name, cut in cuts if scores.get(name, 1.0) < cut), None)
