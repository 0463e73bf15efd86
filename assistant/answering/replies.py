"""Replies: the answers the flow ends in other than a verified draft: a quote, a premise correction, a refusal.

A quote (`extractive`) is the sentence of the top passages that best answers the question, cited and
labelled as a quote: the `--fast` answer, the fallback when the model fails, and the evidence shown while it
writes. A premise correction says what the passage states where the question names something it lacks. A
refusal says the text does not answer, with its reason (`decide.REASONS`) and the passages closest to the
question. `answer` and `whole` both end in these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from assistant.answering import prompts
from assistant.answering.compose import correction as correction_text
from assistant.answering.compose import quoted as quoted_sentence
from assistant.answering.extract import best_sentences
from assistant.answering.turn import Turn
from assistant.checks import premise
from assistant.checks.decide import FALSE_PREMISE, REASONS, Case, Decision, Outcome, Verdict, VerifyPolicy, decide
from assistant.checks.question import read as read_question
from assistant.checks.question import unmet_constraints
from assistant.checks.verify import Similarity, passage_context
from assistant.index.retrieve import HybridRetriever
from assistant.text import is_english, squash
from assistant.types import Answer, Chunk, Citation, Hit

log = logging.getLogger(__name__)


class Replies:
    """Builds quotes, corrections and refusals over one retriever's passages."""

    def __init__(
        self,
        retriever: HybridRetriever,
        *,
        models: dict[str, str],
        policy: VerifyPolicy,
        passages: int,
        similarity: Similarity | None = None,
        locate: Callable[[str], str] = str,
    ) -> None:
        self.retriever = retriever
        self.models = models
        self.policy = policy  # its premise and constraint checks apply to quotes too
        self.passages = passages  # how many of the top hits a quote is drawn from
        self.similarity = similarity
        self.locate = locate  # the file a corpus-relative source is in (a citation's `path`)

    def extractive(self, turn: Turn, note: str | None = None) -> Answer:
        """A cited quote of the sentence that best matches the question made standalone."""
        chunk, sentence, outcome = self.quote(turn)
        if outcome.missing:
            return self.correction(turn, (chunk, sentence, outcome.missing))
        if outcome.decision.refused:
            return self.refusal(turn, outcome.decision)
        text = quoted_sentence(sentence, turn.english)
        if note:
            text += f"\n({'the chat model failed' if turn.english else '生成模型不可用'}: {note})"
        turn.since_start("total_s")
        models = {**self.models, "llm": "extractive (no generation)"}
        return Answer.answered(
            turn.question, text, (self.cite(1, chunk, sentence),), timings=turn.timings, models=models
        )

    def quote(self, turn: Turn) -> tuple[Chunk, str, Outcome]:
        """The passage and sentence that best answer the standalone question, and `decide`'s outcome for
        quoting it (refused when no sentence holds enough of the question, corrected on a false premise)."""
        query = turn.query
        # a translation: by keywords
        probe = query if turn.english and query and not is_english(query) else (turn.standalone or turn.question)
        hits = turn.hits[: self.passages]
        chunk, sentence, coverage = best_sentences(
            probe, hits, weight=self.retriever.weight, similarity=self.similarity
        )
        unmet = self.unmet_premise(turn, chunk) if sentence else ()
        case = Case(query, turn.evidence, quote=sentence or "", quote_coverage=coverage, unmet=unmet)
        return chunk, sentence or "", decide(case, self.policy)

    def unmet_premise(self, turn: Turn, chunk: Chunk) -> tuple[str, ...]:
        """What the question (in the passages' language) takes for granted that the quoted passage lacks,
        under the policy's premise and constraint checks (English questions are checked after the model)."""
        query = turn.query
        if turn.english or not query:
            return ()
        policy, context = self.policy, passage_context(chunk) + squash(self.retriever.lead_in(chunk))
        names = premise.unbound(premise.names(query), context) if policy.premise else ()
        return names + (tuple(unmet_constraints(read_question(query), context)) if policy.constraints else ())

    def correction(
        self, turn: Turn, found: tuple[Chunk, str, tuple[str, ...]], report: tuple[dict[str, Any], ...] = ()
    ) -> Answer:
        """A refusal that corrects the question's premise: `found` is the passage, its sentence that states
        the fact, and what the question names that the passage lacks; the answer says what it states instead."""
        chunk, quote, missing = found
        instead = premise.instead(missing[0], quote, turn.query)
        text = correction_text(missing[0], instead, quote, turn.english)
        detail = f"the passage does not name {', '.join(missing)}" + (f"; it names {instead}" if instead else "")
        turn.since_start("total_s")
        log.info("premise corrected (%s): %s", detail, text)
        return Answer.refusal(
            turn.question, text, reason=FALSE_PREMISE, detail=detail, citations=(self.cite(1, chunk, quote),),
            timings=turn.timings, models=self.models, verification=report,
        )  # fmt: skip

    def refusal(self, turn: Turn, decision: Decision, verdict: Verdict | None = None) -> Answer:
        related = tuple(self._closest(i, turn.question, h) for i, h in enumerate(turn.hits[:3], start=1))
        turn.since_start("total_s")
        text = prompts.REFUSAL_EN if turn.english else prompts.REFUSAL_ZH
        log.info("refused (%s: %s): %s", decision.reason, REASONS.get(decision.reason or "", ""), decision.detail)
        return Answer.refusal(
            turn.question, text, reason=decision.reason, detail=decision.detail, related=related,
            timings=turn.timings, models=self.models, verification=verdict.report if verdict else (),
        )  # fmt: skip

    def _closest(self, n: int, question: str, hit: Hit) -> Citation:
        """A related passage for a refusal, with its sentence closest to the question."""
        _, quote, coverage = best_sentences(question, [hit], weight=self.retriever.weight, similarity=self.similarity)
        return self.cite(n, hit.chunk, quote if quote and coverage >= self.policy.min_quote_coverage else "")

    def cite(self, n: int, chunk: Chunk, quote: str) -> Citation:
        return Citation.of(n, chunk, quote, self.locate(chunk.source))
