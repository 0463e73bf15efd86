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
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser

from assistant.answering import prompts
from assistant.answering.compose import correction, render
from assistant.answering.compose import quoted as quoted_sentence
from assistant.answering.extract import PROMPT_CHARS, best_sentences, in_english, prompt_passages
from assistant.answering.followup import resolve
from assistant.answering.parts import asks, join, parse_split, split
from assistant.answering.side_calls import SideCalls, chat_prompt
from assistant.answering.whole import WholeDocument
from assistant.checks import premise
from assistant.checks.decide import (
    FALSE_PREMISE,
    NOT_COVERED,
    ORDERS_ONLY,
    REASONS,
    Decision,
    Verdict,
    VerifyPolicy,
    after_model,
    before_model,
    judge,
)
from assistant.checks.injection import question_part
from assistant.checks.inputs import check_history, check_question
from assistant.checks.question import read as read_question
from assistant.checks.question import unmet_constraints
from assistant.checks.verify import Similarity, answer_content, passage_context, score_claims
from assistant.errors import ModelCrashedError
from assistant.index.retrieve import HybridRetriever
from assistant.models.llm import TokenUsage, explain_error
from assistant.text import REFERS_BACK, is_english, squash
from assistant.types import Answer, Chunk, Citation, Evidence, Hit

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
        similarity: Similarity | None = None,
        settings: AnswerSettings | None = None,
        locate: Callable[[str], str] = str,
        helper: BaseChatModel | None = None,
    ) -> None:
        """`locate` maps a chunk's corpus-relative source to the file to open (a citation's `path`); `helper` makes
        the short helper calls (condense, translate), by default the same model on a context of its own."""
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
        self.whole = WholeDocument(
            retriever, llm, self.side_calls, models, self.settings.policy, similarity, locate,
            self.settings.translate_claims,
        )  # fmt: skip

    def ask(
        self, question: str, history: Sequence[str] = (), fast: bool = False, max_tokens: int | None = None
    ) -> Answer:
        answer = None
        for event in self.stream(question, history, fast, max_tokens):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self, question: str, history: Sequence[str] = (), fast: bool = False, max_tokens: int | None = None
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
            yield Answer(question, text, True, (), {"total_s": 0.0}, self.models, (), ORDERS_ONLY, detail)
            return
        parts = self._parts(asked, fast)
        limit = min(max_tokens, self.settings.max_tokens) if max_tokens else None
        if len(parts) == 1:
            events = self._stream(asked, history, fast, limit)
        else:
            events = self._stream_parts(asked, parts, history, fast, limit)
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

    def _stream_parts(
        self, question: str, parts: list[str], history: list[str], fast: bool, limit: int | None = None
    ) -> Iterator[str | Evidence | Answer]:
        """Each part answered on its own (the earlier parts as its conversation, so "他" finds its person),
        the first part's quote shown at once; then one answer naming any part the text does not answer."""
        started = time.perf_counter()
        answers: list[Answer] = []
        for i, part in enumerate(parts):
            if i:
                yield "\n"
            for event in self._stream(part, [*history, *parts[:i]], fast, limit):
                if isinstance(event, Answer):
                    answers.append(event)
                elif isinstance(event, str) or not i:  # one quote: the first part's
                    yield event
        log.info("answered %d parts: %s", len(parts), [a.refusal_reason or "answered" for a in answers])
        yield join(question, parts, answers, is_english(question), time.perf_counter() - started)

    def _stream(
        self, question: str, history: list[str], fast: bool, limit: int | None = None
    ) -> Iterator[str | Evidence | Answer]:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if (whole := self.whole.match(question, history)) is not None:  # about the document as a whole
            yield from self.whole.stream(question, *whole, is_english(question), started, fast)
            return
        standalone = self._standalone(question, history, timings, fast)
        query, hits = self._retrieve(standalone, question, history, timings, fast)
        english = is_english(question)
        decision = before_model(query, hits, self.settings.policy, english, self.settings.passages)
        if decision.refused:
            yield self._refusal(question, english, hits, timings, started, decision)
            return
        if fast:
            yield self._extractive(question, english, hits, timings, started, query=query, standalone=standalone)
            return
        quoted = self._quote(standalone or question, query, english, hits)
        if not isinstance(quoted, Decision) and not self._unmet_premise(query, english, quoted[0]):
            # the quote a `--fast` answer gives, shown while the model writes (unless it contradicts the premise)
            timings["evidence_s"] = time.perf_counter() - started
            yield Evidence(quoted_sentence(quoted[1], english), self._cite(1, *quoted))
        raw: list[str] = []
        try:
            passages = self._passages(query, hits)
            yield from self._generate(standalone, english, passages, raw, timings, started, limit)
        except ModelCrashedError:  # the model's process died mid-answer: the caller says when to ask again
            raise
        except Exception as exc:  # a model that is missing, failing or too slow: quote instead
            reason = explain_error(exc) or exc
            log.warning("chat model failed (%s); answering with a quote instead", reason)
            yield self._extractive(
                question, english, hits, timings, started, note=str(reason), query=query, standalone=standalone
            )
            return
        yield self._finish(question, query, english, "".join(raw), hits, timings, started)

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
        return self._retrieve(question, question, [], {}, False)

    def draft(self, question: str, query: str, hits: list[Hit]) -> str:
        """The model's raw answer from the passages of `hits` (unverified; for calibration)."""
        chain = self.answer_en if is_english(question) else self.answer_zh
        return chain.invoke({"passages": self._passages(query, hits), "question": question})

    def _passages(self, query: str, hits: list[Hit]) -> str:
        chunks = [h.chunk for h in hits[: self.settings.passages]]
        return prompt_passages(chunks, query, self.retriever.weight, self.settings.prompt_chars, self.similarity)

    # -- stages ----------------------------------------------------------------------------------

    def _standalone(self, question: str, history: list[str], timings: dict[str, float], fast: bool) -> str:
        if not history or not needs_condensing(question):
            return question
        t = time.perf_counter()
        if resolved := resolve(question, history):  # a pronoun resolved by rule: no model call
            timings["condense_s"] = time.perf_counter() - t
            log.info("resolved %r -> %r", question, resolved)
            return resolved
        if fast:
            return question
        rewritten = self.side_calls.condense(history, question)
        timings["condense_s"] = time.perf_counter() - t
        log.info("condensed %r -> %r", question, rewritten)
        if not rewritten or rewritten == question:  # the model did not rewrite: keep the last turn in view
            return f"{history[-1]} {question}"
        return rewritten

    def _retrieve(
        self, standalone: str, question: str, history: list[str], timings: dict[str, float], fast: bool
    ) -> tuple[str, list[Hit]]:
        """The search query (translated when needed) and the hits for it."""
        query, context = standalone, ([] if standalone != question else history)
        if self.settings.translate_questions and not fast and is_english(standalone) and self.retriever.corpus_is_cjk:
            t = time.perf_counter()
            query, context = self.side_calls.translate(standalone) or standalone, [standalone]
            timings["translate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        hits = self.retriever.search(query, k=max(5, self.settings.passages), history=context)
        timings["retrieve_s"] = time.perf_counter() - t
        return query, hits

    def _generate(
        self,
        question: str,
        english: bool,
        passages: str,
        raw: list[str],
        timings: dict[str, float],
        started: float,
        limit: int | None = None,
    ) -> Iterator[str]:
        chain = self.answer_en if english else self.answer_zh
        if limit is not None:  # a caller's cap below the settings' own: the same prompt, fewer tokens
            prompt = (
                (prompts.ANSWER_SYSTEM_EN, prompts.ANSWER_USER_EN)
                if english
                else (prompts.ANSWER_SYSTEM, prompts.ANSWER_USER)
            )
            chain = chat_prompt(*prompt) | self.llm.bind(max_tokens=limit) | StrOutputParser()
        for token in chain.stream({"passages": passages, "question": question}):
            if not raw:
                timings["first_token_s"] = time.perf_counter() - started
            raw.append(token)
            yield token
        timings["generate_s"] = time.perf_counter() - started - timings.get("first_token_s", 0.0)

    def _finish(
        self,
        question: str,
        query: str,
        english: bool,
        raw: str,
        hits: list[Hit],
        timings: dict[str, float],
        started: float,
    ) -> Answer:
        """Verify the draft (with `query`, the question in the passages' language) into an answer."""
        chunks = [h.chunk for h in hits[: self.settings.passages]]
        t = time.perf_counter()
        translate = (
            self.side_calls.to_chinese
            if self.settings.translate_claims and english and self.retriever.corpus_is_cjk
            else None
        )
        # a translated question is too loose a probe (内存 for 显存): English claims are checked on their own
        probe = "" if english else query
        leads = [self.retriever.lead_in(c) for c in chunks]
        scored = score_claims(raw, chunks, probe, self.similarity, english, translate, leads)
        verdict = judge(scored, self.settings.policy)
        decision = after_model(raw, verdict)
        timings["verify_s"] = time.perf_counter() - t
        log.info("model said %r; kept %d claims, dropped %r; %s", raw, len(verdict.claims), verdict.dropped, decision)
        if decision.refused and decision.reason == FALSE_PREMISE and verdict.premise is not None:
            p = verdict.premise
            if not asks_beyond(query, p.missing):
                return self._refusal(question, english, hits, timings, started, replace(decision, reason=NOT_COVERED))
            found = (chunks[p.passage - 1], p.quote, p.missing)
            return self._correction(question, query, english, found, timings, started, tuple(verdict.report))
        if decision.refused:
            return self._refusal(question, english, hits, timings, started, decision, verdict)
        if english:  # an answer to an English question reads as English, its quoted names as written
            verdict = replace(verdict, claims=[replace(c, text=in_english(question, c.text)) for c in verdict.claims])
        text, citations = render(verdict, chunks, self.locate)
        timings["total_s"] = time.perf_counter() - started
        report = tuple(verdict.report)
        return Answer(question, text, False, citations, timings, self.models, verification=report)

    def _extractive(
        self,
        question: str,
        english: bool,
        hits: list[Hit],
        timings: dict[str, float],
        started: float,
        note: str | None = None,
        query: str = "",
        standalone: str = "",
    ) -> Answer:
        """A cited quote of the sentence that best matches `standalone` (the question made standalone)."""
        quoted = self._quote(standalone or question, query, english, hits)
        if isinstance(quoted, Decision):
            return self._refusal(question, english, hits, timings, started, quoted)
        if missing := self._unmet_premise(query, english, quoted[0]):
            if not asks_beyond(query, missing):  # the question is nothing but what the passage lacks ("0")
                return self._refusal(question, english, hits, timings, started, Decision(True, NOT_COVERED, "premise"))
            return self._correction(question, query, english, (*quoted, missing), timings, started)
        text = quoted_sentence(quoted[1], english)
        if note:
            text += f"\n({'the chat model failed' if english else '生成模型不可用'}: {note})"
        timings["total_s"] = time.perf_counter() - started
        models = {**self.models, "llm": "extractive (no generation)"}
        return Answer(question, text, False, (self._cite(1, *quoted),), timings, models)

    def _quote(self, standalone: str, query: str, english: bool, hits: list[Hit]) -> tuple[Chunk, str] | Decision:
        """The passage and sentence that best answer `standalone`, or why there is none to quote."""
        probe = query if english and query and not is_english(query) else standalone  # a translation: by keywords
        chunk, quote = best_sentences(probe, hits[: self.settings.passages], self.retriever.weight, self.similarity)
        if quote is None:
            return Decision(True, NOT_COVERED, "no quote")
        return chunk, quote

    def _unmet_premise(self, query: str, english: bool, chunk: Chunk) -> tuple[str, ...]:
        """What the question (in the passages' language) takes for granted that the quoted passage lacks,
        under the policy's premise and constraint checks (English questions are checked after the model)."""
        if english or not query:
            return ()
        policy, context = self.settings.policy, passage_context(chunk) + squash(self.retriever.lead_in(chunk))
        names = premise.unbound(premise.names(query), context) if policy.premise else ()
        return names + (tuple(unmet_constraints(read_question(query), context)) if policy.constraints else ())

    def _correction(
        self,
        question: str,
        query: str,
        english: bool,
        found: tuple[Chunk, str, tuple[str, ...]],
        timings: dict[str, float],
        started: float,
        report: tuple[dict[str, Any], ...] = (),
    ) -> Answer:
        """A refusal that corrects the question's premise: `found` is the passage, its sentence that states
        the fact, and what the question names that the passage lacks; the answer says what it states instead."""
        chunk, quote, missing = found
        instead = premise.instead(missing[0], quote, query)
        text = correction(missing[0], instead, quote, english)
        detail = f"the passage does not name {', '.join(missing)}" + (f"; it names {instead}" if instead else "")
        timings["total_s"] = time.perf_counter() - started
        log.info("premise corrected (%s): %s", detail, text)
        cited = (self._cite(1, chunk, quote),)
        return Answer(question, text, True, cited, timings, self.models, (), FALSE_PREMISE, detail, report)

    def _refusal(
        self,
        question: str,
        english: bool,
        hits: list[Hit],
        timings: dict[str, float],
        started: float,
        decision: Decision,
        verdict: Verdict | None = None,
    ) -> Answer:
        related = tuple(self._closest(i, question, h) for i, h in enumerate(hits[:3], start=1))
        timings["total_s"] = time.perf_counter() - started
        text = prompts.REFUSAL_EN if english else prompts.REFUSAL_ZH
        report = tuple(verdict.report) if verdict else ()
        log.info("refused (%s: %s): %s", decision.reason, REASONS.get(decision.reason or "", ""), decision.detail)
        return Answer(question, text, True, (), timings, self.models, related, decision.reason, decision.detail, report)

    def _closest(self, n: int, question: str, hit: Hit) -> Citation:
        """A related passage for a refusal, with its sentence closest to the question."""
        _, quote = best_sentences(question, [hit], self.retriever.weight, self.similarity)
        return self._cite(n, hit.chunk, quote or "")

    def _cite(self, n: int, chunk: Chunk, quote: str) -> Citation:
        return Citation.of(n, chunk, quote, self.locate(chunk.source))


def asks_beyond(query: str, missing: tuple[str, ...]) -> bool:
    """The question says something besides what the passage lacks: without that, there is no premise to
    correct, only a question the text does not answer."""
    rest = query
    for name in missing:
        rest = rest.replace(name, " ")
    return answer_content(rest, "") > 0


def needs_condensing(question: str) -> bool:
    """A follow-up that leans on the conversation: pronouns, "那…呢", or too short to stand alone."""
    q = question.strip()
    return bool(REFERS_BACK.search(q)) or len(q) <= 6 or q.endswith("呢？") or q.endswith("呢")
