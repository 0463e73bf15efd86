"""Whole: an answer about the whole document (its main point, a summary, its structure, a section, its
byline, outlet, date or title), from the document's outline rather than from passages ranked for a fact.

`WholeDocument.match` recognises the question (`document.classify`) and picks the document: the one it
names, the only one, or, over many, the one the conversation so far (else the question) retrieves best;
the answer names it. The sentences `document.select` chooses are the document's own, so a Chinese answer
is them, each cited `[n]` to its passage and verified against it like any claim (`decide.verify`), with no
model call: it is ready as soon as the question is read. An English question gets the first sentence at
once as a quote (`Evidence`), then one model call renders the chosen sentences in English, and each
rendered sentence is verified against the passage it cites as an English answer is; when none survives,
the quotes stand. Metadata (byline, outlet, date, title) is the card's item, cited to the card.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser

from assistant.answering import prompts
from assistant.answering.compose import Citations, quoted
from assistant.answering.document import METADATA, Asked, classify, section_of, select
from assistant.answering.replies import Replies
from assistant.answering.side_calls import SideCalls, chat_prompt
from assistant.answering.turn import Turn
from assistant.checks.decide import NOT_COVERED, Decision, judge
from assistant.checks.verify import Similarity, score_claims
from assistant.corpus.chunk import CARD_SECTION
from assistant.index.outline import Outline, Sentence
from assistant.index.retrieve import HybridRetriever
from assistant.types import Answer, Chunk, Citation, Evidence

log = logging.getLogger(__name__)

LEADING_MARKER = re.compile(r"^\s*\[(\d+)\]\s*(.+?)\s*$", re.M)

HEADS_ZH = {
    "main_point": "《{title}》的要点：",
    "summary": "《{title}》概要：",
    "structure": "《{title}》分为 {n} 部分：",
}
HEADS_EN = {
    "main_point": "The main point of “{title}”:",
    "summary": "A summary of “{title}”:",
    "structure": "“{title}” has {n} parts:",
}
META_EN = {"author": "The byline", "outlet": "The outlet", "date": "The publication date", "title": "The title"}
LEAD_ZH, LEAD_EN = "导语", "the opening"
ENGLISH_SENTENCES = 4  # rendered by the model: each costs ~40 generated tokens and a check


class WholeDocument:
    """Answers questions about a whole document of one retriever's index."""

    def __init__(
        self,
        retriever: HybridRetriever,
        llm: BaseChatModel,
        side_calls: SideCalls,
        replies: Replies,
        *,
        similarity: Similarity | None = None,
        translate_claims: bool = True,
    ) -> None:
        self.retriever = retriever
        self.side_calls = side_calls
        self.replies = replies  # refusals, and the models and policy answers are given under
        self.policy = replies.policy
        self.similarity = similarity
        self.translate_claims = translate_claims
        prompt = chat_prompt(prompts.DOCUMENT_SYSTEM_EN, prompts.DOCUMENT_USER_EN)
        self.render_en = prompt | llm.bind(max_tokens=200) | StrOutputParser()

    def warm(self) -> None:
        """Read the outlines and check one sentence now (the verifier's word tables load on first use), so the
        first question about a whole document is answered as quickly as the next."""
        for outline in list(self.retriever.outlines.values())[:1]:
            if outline.sections:
                lede = outline.sections[0].sentences[0]
                self._verify([(lede.text, 1)], [lede.chunk])

    def match(self, question: str, history: Sequence[str] = ()) -> tuple[Asked, Outline] | None:
        """The whole-document question `question` is and the document it is about, or None for a fact question."""
        documents = self.retriever.outlines
        asked = classify(question, list(documents.values()))
        if asked is None or not documents:
            return None
        if asked.source in documents:
            return asked, documents[asked.source]
        if len(documents) == 1:
            return asked, next(iter(documents.values()))
        probe = " ".join(history[-2:]) or question  # "this article": the one the conversation is about
        hits = self.retriever.search(probe, k=1)
        source = hits[0].chunk.source if hits else next(iter(documents))
        return asked, documents[source]

    def stream(self, turn: Turn, asked: Asked, outline: Outline) -> Iterator[str | Evidence | Answer]:
        """The answer to `asked` about `outline` (and, for English prose, the first sentence's quote first;
        a fast turn: the quotes only, no model call, in either language)."""
        if asked.kind in METADATA:
            yield self._metadata(turn, asked, outline)
            return
        chosen = select(outline, asked)
        if not chosen:
            detail = f"the document has no section named {asked.section}" if asked.section else "no sentence to quote"
            yield self._refusal(turn, detail)
            return
        if not turn.english or asked.kind == "structure" or turn.fast:
            yield self._quoted(turn, asked, outline, chosen)
            return
        chosen = chosen[:ENGLISH_SENTENCES]
        first = chosen[0]
        turn.since_start("evidence_s")
        yield Evidence(quoted(first.text, True), self.replies.cite(1, first.chunk, first.text))
        yield self._in_english(turn, asked, outline, chosen)

    # -- answers -----------------------------------------------------------------------------------

    def _metadata(self, turn: Turn, asked: Asked, outline: Outline) -> Answer:
        item = outline.meta(METADATA[asked.kind])
        if not item or outline.card is None:
            return self._refusal(turn, f"the document card has no {asked.kind}")
        report = self._verify([(item, 1)], [outline.card])
        if not report[0]["kept"]:
            return self._refusal(turn, f"{asked.kind} not supported by the card")
        value = item.removeprefix(CARD_SECTION + "：").partition("：")[2]
        if turn.english:
            text = f"{META_EN[asked.kind]} of “{outline.title}”: {value} [1]."
        else:
            text = f"《{outline.title}》的{item.removeprefix(CARD_SECTION + '：')}。[1]"
        return self._answer(turn, text, (self.replies.cite(1, outline.card, item),), report, quoted_only=False)

    def _quoted(
        self, turn: Turn, asked: Asked, outline: Outline, chosen: list[Sentence], *, model_called: bool = False
    ) -> Answer:
        """The chosen sentences themselves, each cited to its passage (verified), under a head naming the document
        (`model_called`: an English rendering was tried and failed its checks, so `models` names the model)."""
        english = turn.english
        chunks = _chunks(chosen)
        numbers = {c.chunk_id: n for n, c in enumerate(chunks, start=1)}
        report = self._verify([(s.text, numbers[s.chunk.chunk_id]) for s in chosen], chunks)
        kept = [s for s, row in zip(chosen, report, strict=True) if row["kept"]]
        if not kept:
            return self._refusal(turn, "no chosen sentence verified")
        heads = HEADS_EN if english else HEADS_ZH
        head = heads.get(asked.kind, "“{section}”:" if english else "「{section}」一节：")
        section = asked.section or section_of(outline, kept[0])
        citations = Citations(self.replies.locate)
        lines = []
        for s in kept:
            label = section_of(outline, s) or (LEAD_EN if english else LEAD_ZH)
            n = citations.cite(s.chunk, s.text)
            body = f"“{s.text}” [{n}]" if english else f"{s.text}[{n}]"
            lines.append(f"{label}：{body}" if asked.kind == "structure" else body)
        sep = "\n" if asked.kind in ("summary", "structure") else ("" if not english else " ")
        text = head.format(title=outline.title, n=len(lines), section=section) + ("\n" if sep == "\n" else "")
        text += sep.join(lines)
        return self._answer(turn, text, citations.all, report, quoted_only=not model_called)

    def _in_english(self, turn: Turn, asked: Asked, outline: Outline, chosen: list[Sentence]) -> Answer:
        """One model call renders the chosen sentences in English; each rendered sentence is verified."""
        chunks = _chunks(chosen)
        numbers = {c.chunk_id: n for n, c in enumerate(chunks, start=1)}
        passages = "\n".join(f"[{numbers[s.chunk.chunk_id]}] {s.text}" for s in chosen)
        t = time.perf_counter()
        try:
            raw = self.render_en.invoke({"passages": passages, "question": turn.question})
        except Exception as exc:  # a model that fails: the quotes stand
            log.warning("rendering the document answer in English failed (%s): quoting instead", exc)
            raw = ""
        turn.timings["generate_s"] = time.perf_counter() - t
        raw = LEADING_MARKER.sub(r"\2 [\1]", raw)  # "[2] It says…" -> "It says… [2]": a marker ends its sentence
        translate = self.side_calls.to_chinese if self.translate_claims and self.retriever.corpus_is_cjk else None
        scored = score_claims(raw, chunks, similarity=self.similarity, english=True, translate=translate)
        verdict = judge(scored, self.policy)
        if not verdict.claims:
            log.info("no English sentence of %r verified: quoting", raw)
            return self._quoted(turn, asked, outline, chosen, model_called=True)
        head = HEADS_EN.get(asked.kind, "“{section}”:").format(
            title=outline.title, n=len(chosen), section=asked.section or section_of(outline, chosen[0])
        )
        first = {numbers[s.chunk.chunk_id]: s.text for s in reversed(chosen)}  # each passage's first sentence
        citations = Citations(self.replies.locate)
        lines = []
        for claim in verdict.claims:
            markers = "".join(f"[{citations.cite(chunks[p - 1], first[p])}]" for p in claim.passages)
            lines.append(f"{claim.text.rstrip('.')} {markers}.")
        return self._answer(turn, f"{head} {' '.join(lines)}", citations.all, verdict.report, quoted_only=False)

    # -- parts ----------------------------------------------------------------------------------------

    def _verify(self, claims: list[tuple[str, int]], chunks: list[Chunk]) -> list[dict[str, Any]]:
        """Each (sentence, passage number) checked against its passage, as any answer sentence is."""
        scored = score_claims(" ".join(f"{text}[{n}]" for text, n in claims), chunks, similarity=self.similarity)
        rows = judge(scored, self.policy).report
        if len(rows) != len(claims):  # the sentences split otherwise than chosen: check one by one
            rows = [judge(score_claims(f"{text}[1]", [chunks[n - 1]]), self.policy).report[0] for text, n in claims]
        return rows

    def _answer(
        self,
        turn: Turn,
        text: str,
        citations: Sequence[Citation],
        report: Sequence[dict[str, Any]],
        *,
        quoted_only: bool,
    ) -> Answer:
        turn.since_start("total_s")
        models = self.replies.models
        models = {**models, "llm": "none (the document's own sentences)"} if quoted_only else models
        return Answer.answered(turn.question, text, citations, timings=turn.timings, models=models, verification=report)

    def _refusal(self, turn: Turn, detail: str) -> Answer:
        return self.replies.refusal(turn, Decision(True, NOT_COVERED, detail))


def _chunks(chosen: list[Sentence]) -> list[Chunk]:
    """The passages the chosen sentences stand in, in order of first use (their numbers in the prompt)."""
    return list({s.chunk.chunk_id: s.chunk for s in chosen}.values())
