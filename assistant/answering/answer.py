"""Answer: a question (and the conversation so far) in, a verified, cited `Answer` out.

A follow-up is made standalone only when it leans on the conversation, and a question in another
script than the corpus is translated for search (both by `side_calls`); the LCEL chain (`prompt | model
| parser`) answers from the few best passages with `[n]` markers. Tokens stream as they come; the
final `Answer` holds only sentences `verify` found supported (its text and citations from `compose`). Whether to answer
at all is `decide`'s (before the model and after it, with a reason), never left to the model alone;
when the model fails or times out, the extractive answer (`extract`) stands in and says so. The question
and history are checked by `checks/inputs` first (an `InputError` says what is wrong); sentences of the
question that give the assistant orders (`injection`) are not searched for or shown to the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser

from assistant.answering import prompts
from assistant.answering.compose import quoted as quoted_sentence
from assistant.answering.compose import render
from assistant.answering.extract import PROMPT_CHARS, in_english, prompt_passages
from assistant.answering.followup import resolve
from assistant.answering.parts import asks, join, parse_split, split
from assistant.answering.replies import Replies
from assistant.answering.side_calls import SideCalls, chat_prompt
from assistant.answering.turn import Turn
from assistant.answering.whole import WholeDocument
from assistant.checks.decide import ORDERS_ONLY, Case, VerifyPolicy, decide, evidence
from assistant.checks.injection import question_part
from assistant.checks.inputs import check_history, check_question
from assistant.checks.verify import Similarity, score_claims
from assistant.errors import ModelCrashedError
from assistant.index.retrieve import HybridRetriever
from assistant.models.llm import TokenUsage, explain_error
from assistant.text import REFERS_BACK, is_english
from assistant.types import Answer, Evidence, Hit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerSettings:
    passages: int = 3  # how many passages the prompt draws on
    prompt_chars: int | None = PROMPT_CHARS  # passage text in the prompt (None: whole passages, as before)
    max_tokens: int = 96  # 99% of 250 calibration drafts fit (p50 24, p95 90, p99 164 characters)
    # an English question over Chinese passages is translated for search by one short model call (on its
    # own llama.cpp context): hit@5 0.83 against 0.69 searching it as asked (bench/crosslingual.py)
    translate_questions: bool = True
    # each English claim rendered in the passage's Chinese by one helper call and checked word by word:
    # across scripts only numbers, codes and similarity can be checked, and a romanised name from nowhere
    # ("founded by Chen Zhihao") passed them in the quality gate
    translate_claims: bool = True
    policy: VerifyPolicy = VerifyPolicy()  # the cut-offs of the refusal decision (see `decide`)


class Answerer:
    """Runs the question-to-verified-answer flow for one retriever and one chat model."""

    def __init__(
        self,
        retriever: HybridRetriever,
        llm: BaseChatModel,
        models: dict[str, str],
        *,
        similarity: Similarity | None = None,
        settings: AnswerSettings | None = None,
        locate: Callable[[str], str] = str,
        helper: BaseChatModel | None = None,
    ) -> None:
        """`locate` maps a chunk's corpus-relative source to the file to open (a citation's `path`); `helper` makes
        the side calls (condense, translate, split), by default the same model on a context of its own."""
        self.retriever = retriever
        self.llm = llm
        self.locate = locate
        self.models = models
        self.similarity = similarity
        self.settings = settings or AnswerSettings()
        parse = StrOutputParser()
        bound = llm.bind(max_tokens=self.settings.max_tokens)
        self.answer_zh = chat_prompt(prompts.ANSWER_SYSTEM, prompts.ANSWER_USER) | bound | parse
        self.answer_en = chat_prompt(prompts.ANSWER_SYSTEM_EN, prompts.ANSWER_USER_EN) | bound | parse
        self.side_calls = SideCalls(llm, helper)
        self.usage = TokenUsage()  # what each answer's model calls cost (`Answer.usage`)
        for model in (llm, self.side_calls.model):
            self.usage.listen(model)
        self.replies = Replies(
            retriever, models=models, policy=self.settings.policy, passages=self.settings.passages,
            similarity=similarity, locate=locate,
        )  # fmt: skip
        self.whole = WholeDocument(
            retriever, llm, self.side_calls, self.replies, similarity=similarity,
            translate_claims=self.settings.translate_claims,
        )  # fmt: skip

    def ask(
        self, question: str, history: Sequence[str] = (), *, fast: bool = False, max_tokens: int | None = None
    ) -> Answer:
        answer = None
        for event in self.stream(question, history, fast=fast, max_tokens=max_tokens):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self, question: str, history: Sequence[str] = (), *, fast: bool = False, max_tokens: int | None = None
    ) -> Iterator[str | Evidence | Answer]:
        """Yield the best supporting quote (`Evidence`) as soon as retrieval is done, then answer tokens
        as the model writes them, then the verified `Answer`. `max_tokens` caps the answer's generation
        below the settings' own cap (a caller's limit never raises it)."""
        question, history = check_question(question), check_history(history)
        asked = question_part(question)  # orders riding on a question are neither searched nor passed on
        if not asked and asks(question):  # it asks something, in words orders use too ("为什么他们忽略了规则？")
            asked = question
        self.usage.take()  # start counting this answer's model calls
        if not asked:  # nothing but orders: refused, and neither searched nor shown to the model
            text = prompts.REFUSAL_EN if is_english(question) else prompts.REFUSAL_ZH
            detail = "the question addresses the assistant, not the documents"
            timings = {"total_s": 0.0}
            yield Answer.refusal(question, text, reason=ORDERS_ONLY, detail=detail, timings=timings, models=self.models)
            return
        parts = self._parts(asked, fast)
        limit = min(max_tokens, self.settings.max_tokens) if max_tokens else None
        if len(parts) == 1:
            events = self._stream(Turn(asked, history, fast, limit))
        else:
            events = self._stream_parts(Turn(asked, history, fast, limit), parts)
        for event in events:
            yield replace(event, question=question, usage=self.usage.take()) if isinstance(event, Answer) else event

    def _parts(self, question: str, fast: bool) -> list[str]:
        """The question's parts (`parts.split`); one short model call writes them out when the grammar leaves
        a part without its subject ("…and from whom?")."""
        found = split(question)  # "这篇文章讲了什么，作者是谁？" too: each part is then classified on its own
        if len(found.parts) == 1:
            return [question]
        if found.elliptical and not fast:
            return parse_split(self.side_calls.split(question), found.parts)
        return found.parts

    def _stream_parts(self, turn: Turn, parts: list[str]) -> Iterator[str | Evidence | Answer]:
        """Each part answered on its own (the earlier parts as its conversation, so "他" finds its person),
        the first part's quote shown at once; then one answer naming any part the text does not answer."""
        answers: list[Answer] = []
        for i, part in enumerate(parts):
            if i:
                yield "\n"
            for event in self._stream(Turn(part, [*turn.history, *parts[:i]], turn.fast, turn.limit)):
                if isinstance(event, Answer):
                    answers.append(event)
                elif isinstance(event, str) or not i:  # one quote: the first part's
                    yield event
        log.info("answered %d parts: %s", len(parts), [a.refusal_reason or "answered" for a in answers])
        yield join(turn.question, parts, answers, english=turn.english, total_s=turn.since_start("total_s"))

    def _stream(self, turn: Turn) -> Iterator[str | Evidence | Answer]:
        if (whole := self.whole.match(turn.question, turn.history)) is not None:  # about the document as a whole
            yield from self.whole.stream(turn, *whole)
            return
        self._standalone(turn)
        self._retrieve(turn)
        turn.evidence = evidence(turn.query, turn.hits, turn.english, self.settings.passages)
        early = decide(Case(turn.query, turn.evidence), self.settings.policy).decision
        if early.refused:
            yield self.replies.refusal(turn, early)
            return
        if turn.fast:
            yield self.replies.extractive(turn)
            return
        chunk, sentence, quoting = self.replies.quote(turn)
        if not quoting.decision.refused:
            # the quote a `--fast` answer gives, shown while the model writes (unless it contradicts the premise)
            turn.since_start("evidence_s")
            yield Evidence(quoted_sentence(sentence, turn.english), self.replies.cite(1, chunk, sentence))
        raw: list[str] = []
        try:
            yield from self._generate(turn, self._passages(turn.query, turn.hits), raw)
        except ModelCrashedError:  # the model's process died mid-answer: the caller says when to ask again
            raise
        except Exception as exc:  # a model that is missing, failing or too slow: quote instead
            reason = explain_error(exc) or exc
            log.warning("chat model failed (%s); answering with a quote instead", reason)
            yield self.replies.extractive(turn, note=str(reason))
            return
        yield self._finish(turn, "".join(raw))

    def warm(self) -> None:
        """Load the chat model and evaluate the answer prompt's constant start (kept in llama.cpp's cache,
        so the first question pays only for its own passages)."""
        warm = chat_prompt(prompts.ANSWER_SYSTEM, prompts.ANSWER_USER) | self.llm.bind(max_tokens=1)
        warm.invoke({"passages": "", "question": ""})
        self.whole.warm()
        if self.side_calls.model is not self.llm:
            self.side_calls.warm()

    def evidence(self, question: str) -> tuple[str, list[Hit]]:
        """The search query (translated when needed) and the hits, for a standalone question."""
        turn = Turn(question, standalone=question)
        self._retrieve(turn)
        return turn.query, turn.hits

    def draft(self, question: str, query: str, hits: list[Hit]) -> str:
        """The model's raw answer from the passages of `hits` (unverified; for calibration)."""
        chain = self.answer_en if is_english(question) else self.answer_zh
        return chain.invoke({"passages": self._passages(query, hits), "question": question})

    def _passages(self, query: str, hits: list[Hit]) -> str:
        chunks = [h.chunk for h in hits[: self.settings.passages]]
        return prompt_passages(
            chunks, query, weight=self.retriever.weight, budget=self.settings.prompt_chars, similarity=self.similarity
        )

    # -- stages ----------------------------------------------------------------------------------

    def _standalone(self, turn: Turn) -> None:
        """`turn.standalone`: the question, or a follow-up made standalone (by rule, else by a side call)."""
        question, history = turn.question, turn.history
        turn.standalone = question
        if not history or not needs_condensing(question):
            return
        t = time.perf_counter()
        if resolved := resolve(question, history):  # a pronoun resolved by rule: no model call
            turn.timings["condense_s"] = time.perf_counter() - t
            log.info("resolved %r -> %r", question, resolved)
            turn.standalone = resolved
            return
        if turn.fast:
            return
        rewritten = self.side_calls.condense(history, question)
        turn.timings["condense_s"] = time.perf_counter() - t
        log.info("condensed %r -> %r", question, rewritten)
        # the model did not rewrite: keep the last turn in view
        turn.standalone = rewritten if rewritten and rewritten != question else f"{history[-1]} {question}"

    def _retrieve(self, turn: Turn) -> None:
        """`turn.query` (the standalone question, translated when needed) and `turn.hits`, the hits for it."""
        standalone = turn.standalone
        query, context = standalone, ([] if standalone != turn.question else turn.history)
        translate = self.settings.translate_questions and not turn.fast and self.retriever.corpus_is_cjk
        if translate and is_english(standalone):
            t = time.perf_counter()
            query, context = self.side_calls.translate(standalone) or standalone, [standalone]
            turn.timings["translate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        turn.query, turn.hits = query, self.retriever.search(query, k=max(5, self.settings.passages), history=context)
        turn.timings["retrieve_s"] = time.perf_counter() - t

    def _generate(self, turn: Turn, passages: str, raw: list[str]) -> Iterator[str]:
        """The model's tokens for the standalone question over `passages`, each also appended to `raw`."""
        chain = self.answer_en if turn.english else self.answer_zh
        if turn.limit is not None:  # a caller's cap below the settings' own: the same prompt, fewer tokens
            english = (prompts.ANSWER_SYSTEM_EN, prompts.ANSWER_USER_EN)
            prompt = english if turn.english else (prompts.ANSWER_SYSTEM, prompts.ANSWER_USER)
            chain = chat_prompt(*prompt) | self.llm.bind(max_tokens=turn.limit) | StrOutputParser()
        for token in chain.stream({"passages": passages, "question": turn.standalone}):
            if not raw:
                turn.since_start("first_token_s")
            raw.append(token)
            yield token
        turn.timings["generate_s"] = time.perf_counter() - turn.started - turn.timings.get("first_token_s", 0.0)

    def _finish(self, turn: Turn, raw: str) -> Answer:
        """Verify the draft (with `turn.query`, the question in the passages' language) into an answer."""
        chunks = [h.chunk for h in turn.hits[: self.settings.passages]]
        t = time.perf_counter()
        across = self.settings.translate_claims and turn.english and self.retriever.corpus_is_cjk
        # a translated question is too loose a probe (内存 for 显存): English claims are checked on their own
        scored = score_claims(
            raw, chunks, question="" if turn.english else turn.query, similarity=self.similarity,
            english=turn.english, translate=self.side_calls.to_chinese if across else None,
            leads=[self.retriever.lead_in(c) for c in chunks],
        )  # fmt: skip
        outcome = decide(Case(turn.query, turn.evidence, draft=raw, scored=scored), self.settings.policy)
        decision, verdict = outcome.decision, outcome.verdict
        assert verdict is not None  # a draft is always judged
        turn.timings["verify_s"] = time.perf_counter() - t
        log.info("model said %r; kept %d claims, dropped %r; %s", raw, len(verdict.claims), verdict.dropped, decision)
        if outcome.missing and verdict.premise is not None:  # the premise corrected with the passage's own words
            p = verdict.premise
            return self.replies.correction(turn, (chunks[p.passage - 1], p.quote, p.missing), tuple(verdict.report))
        if decision.refused:
            return self.replies.refusal(turn, decision, verdict)
        if turn.english:  # an answer to an English question reads as English, its quoted names as written
            claims = [replace(c, text=in_english(turn.question, c.text)) for c in verdict.claims]
            verdict = replace(verdict, claims=claims)
        text, citations = render(verdict, chunks, self.locate)
        turn.since_start("total_s")
        return Answer.answered(
            turn.question, text, citations, timings=turn.timings, models=self.models, verification=verdict.report
        )


def needs_condensing(question: str) -> bool:
    """A follow-up that leans on the conversation: pronouns, "那…呢", or too short to stand alone."""
    q = question.strip()
    return bool(REFERS_BACK.search(q)) or len(q) <= 6 or q.endswith("呢？") or q.endswith("呢")
