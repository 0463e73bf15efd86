"""Test shorthands over the checks: a draft scored and judged in one call, and the check before the model
on bare passages. The product runs the same two steps inside the answer flow (`answering/answer.py`)."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.checks.decide import Case, Decision, Verdict, VerifyPolicy, decide, evidence, judge, judge_evidence
from assistant.checks.verify import Similarity, Translate, coverage, score_claims
from assistant.types import Chunk, Hit


def verify(
    answer: str,
    passages: Sequence[Chunk],
    *,
    similarity: Similarity | None = None,
    english: bool = False,
    translate: Translate | None = None,
    question: str = "",
    policy: VerifyPolicy | None = None,
) -> Verdict:
    """Score `answer` against `passages` (`verify.score_claims`) and judge it under `policy`."""
    scored = score_claims(
        answer, passages, question=question, similarity=similarity, english=english, translate=translate
    )
    return judge(scored, policy or VerifyPolicy())


def grounded(question: str, passages: Sequence[Chunk], policy: VerifyPolicy | None = None) -> bool:
    """The passages mention enough of what the question is about (its nouns and content words)."""
    scores = {"keyword_match": 1.0, **coverage(question, passages)}
    return not judge_evidence(scores, policy or VerifyPolicy()).refused


def before_model(query: str, hits: Sequence[Hit], policy: VerifyPolicy, *, english: bool, depth: int = 3) -> Decision:
    """The decision before the model, as the answer flow takes it: `decide` on the evidence alone."""
    return decide(Case(query, evidence(query, hits, english, depth)), policy).decision
