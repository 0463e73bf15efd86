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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser

from assistant.answering import prompts
from assistant.answering.compose import quoted
from assistant.answering.document import METADATA, Asked, classify, section_of, select
from assistant.answering.side_calls import SideCalls, chat_prompt
from assistant.checks.decide import NOT_COVERED, VerifyPolicy, judge
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
        models: dict[str, str],
        policy: VerifyPolicy,
        similarity: Similarity | None = None,
        locate: Callable[[str], str] = str,
        translate_claims: bool = True,
    ) -> None:
        self.retriever = retriever
        self.side_calls = side_calls
        self.models = models
        self.policy = policy
        self.similarity = similarity
        self.locate = locate
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

    def stream(
        self, question: str, asked: Asked, outline: Outline, english: bool, started: float, fast: bool = False
    ) -> Iterator[str | Evidence | Answer]:
        """The answer to `asked` about `outline` (and, for English prose, the first sentence's quote first;
        `fast`: the quotes only, no model call, in either language)."""
        timings: dict[str, float] = {}
        if asked.kind in METADATA:
            yield self._metadata(question, asked, outline, english, timings, started)
            return
        chosen = select(outline, asked)
        if not chosen:
            detail = f"the document has no section named {asked.section}" if asked.section else "no sentence to quote"
            yield self._refusal(question, english, timings, started, detail)
            return
        if not english or asked.kind == "structure" or fast:
            yield self._quoted(question, asked, outline, chosen, english, timings, started)
            return
        chosen = chosen[:ENGLISH_SENTENCES]
        first = chosen[0]
        timings["evidence_s"] = time.perf_counter() - started
        yield Evidence(quoted(first.text, True), self._cite(1, first.chunk, first.text))
        yield self._in_english(question, asked, outline, chosen, timings, started)

    # -- answers -----------------------------------------------------------------------------------

    def _metadata(
        self, question: str, asked: Asked, outline: Outline, english: bool, timings: dict[str, float], started: float
    ) -> Answer:
        item = outline.meta(METADATA[asked.kind])
        if not item or outline.card is None:
            return self._refusal(question, english, timings, started, f"the document card has no {asked.kind}")
        report = self._verify([(item, 1)], [outline.card])
        if not report[0]["kept"]:
            return self._refusal(question, english, timings, started, f"{asked.kind} not supported by the card")
        value = item.removeprefix(CARD_SECTION + "：").partition("：")[2]
        if english:
            text = f"{META_EN[asked.kind]} of “{outline.title}”: {value} [1]."
        else:
            text = f"《{outline.title}》的{item.removeprefix(CARD_SECTION + '：')}。[1]"
        return self._answer(question, text, (self._cite(1, outline.card, item),), timings, started, report, False)

    def _quoted(
        self,
        question: str,
        asked: Asked,
        outline: Outline,
        chosen: list[Sentence],
        english: bool,
        timings: dict[str, float],
        started: float,
        model_called: bool = False,
    ) -> Answer:
        """The chosen sentences themselves, each cited to its passage (verified), under a head naming the document
        (`model_called`: an English rendering was tried and failed its checks, so `models` names the model)."""
        numbers = _numbering(chosen)
        chunks = _chunks(chosen, numbers)
        report = self._verify([(s.text, numbers[s.chunk.chunk_id]) for s in chosen], chunks)
        kept = [s for s, row in zip(chosen, report, strict=True) if row["kept"]]
        if not kept:
            return self._refusal(question, english, timings, started, "no chosen sentence verified")
        heads = HEADS_EN if english else HEADS_ZH
        head = heads.get(asked.kind, "“{section}”:" if english else "「{section}」一节：")
        section = asked.section or section_of(outline, kept[0])
        lines = []
        for s in kept:
            label = section_of(outline, s) or (LEAD_EN if english else LEAD_ZH)
            body = f"“{s.text}” [{numbers[s.chunk.chunk_id]}]" if english else f"{s.text}[{numbers[s.chunk.chunk_id]}]"
            lines.append(f"{label}：{body}" if asked.kind == "structure" else body)
        sep = "\n" if asked.kind in ("summary", "structure") else ("" if not english else " ")
        text = head.format(title=outline.title, n=len(lines), section=section) + ("\n" if sep == "\n" else "")
        text += sep.join(lines)
        citations = self._citations(kept, numbers, chunks)
        return self._answer(question, text, citations, timings, started, report, not model_called)

    def _in_english(
        self,
        question: str,
        asked: Asked,
        outline: Outline,
        chosen: list[Sentence],
        timings: dict[str, float],
        started: float,
    ) -> Answer:
        """One model call renders the chosen sentences in English; each rendered sentence is verified."""
        numbers = _numbering(chosen)
        chunks = _chunks(chosen, numbers)
        passages = "\n".join(f"[{numbers[s.chunk.chunk_id]}] {s.text}" for s in chosen)
        t = time.perf_counter()
        try:
            raw = self.render_en.invoke({"passages": passages, "question": question})
        except Exception as exc:  # a model that fails: the quotes stand
            log.warning("rendering the document answer in English failed (%s): quoting instead", exc)
            raw = ""
        timings["generate_s"] = time.perf_counter() - t
        raw = LEADING_MARKER.sub(r"\2 [\1]", raw)  # "[2] It says…" -> "It says… [2]": a marker ends its sentence
        translate = self.side_calls.to_chinese if self.translate_claims and self.retriever.corpus_is_cjk else None
        scored = score_claims(raw, chunks, "", self.similarity, True, translate)
        verdict = judge(scored, self.policy)
        if not verdict.claims:
            log.info("no English sentence of %r verified: quoting", raw)
            return self._quoted(question, asked, outline, chosen, True, timings, started, model_called=True)
        head = HEADS_EN.get(asked.kind, "“{section}”:").format(
            title=outline.title, n=len(chosen), section=asked.section or section_of(outline, chosen[0])
        )
        lines = [f"{c.text.rstrip('.')} {''.join(f'[{p}]' for p in c.passages)}." for c in verdict.claims]
        used = sorted({p for c in verdict.claims for p in c.passages})
        citations = tuple(
            Citation.of(p, chunks[p - 1], next(s.text for s in chosen if numbers[s.chunk.chunk_id] == p),
                        self.locate(chunks[p - 1].source))
            for p in used
        )  # fmt: skip
        return self._answer(question, f"{head} {' '.join(lines)}", citations, timings, started, verdict.report, False)

    # -- parts ----------------------------------------------------------------------------------------

    def _verify(self, claims: list[tuple[str, int]], chunks: list[Chunk]) -> list[dict[str, Any]]:
        """Each (sentence, passage number) checked against its passage, as any answer sentence is."""
        scored = score_claims(" ".join(f"{text}[{n}]" for text, n in claims), chunks, "", self.similarity)
        rows = judge(scored, self.policy).report
        if len(rows) != len(claims):  # the sentences split otherwise than chosen: check one by one
            rows = [judge(score_claims(f"{text}[1]", [chunks[n - 1]]), self.policy).report[0] for text, n in claims]
        return rows

    def _citations(self, kept: list[Sentence], numbers: dict[str, int], chunks: list[Chunk]) -> tuple[Citation, ...]:
        first = {numbers[s.chunk.chunk_id]: s.text for s in reversed(kept)}
        return tuple(Citation.of(n, chunks[n - 1], first[n], self.locate(chunks[n - 1].source)) for n in sorted(first))

    def _cite(self, n: int, chunk: Chunk, quote: str) -> Citation:
        return Citation.of(n, chunk, quote, self.locate(chunk.source))

    def _answer(
        self,
        question: str,
        text: str,
        citations: tuple[Citation, ...],
        timings: dict[str, float],
        started: float,
        report: Sequence[dict[str, Any]],
        quoted_only: bool,
    ) -> Answer:
        timings["total_s"] = time.perf_counter() - started
        models = {**self.models, "llm": "none (the document's own sentences)"} if quoted_only else self.models
        return Answer(question, text, False, citations, timings, models, verification=tuple(report))

    def _refusal(self, question: str, english: bool, timings: dict[str, float], started: float, detail: str) -> Answer:
        timings["total_s"] = time.perf_counter() - started
        text = prompts.REFUSAL_EN if english else prompts.REFUSAL_ZH
        return Answer(question, text, True, (), timings, self.models, (), NOT_COVERED, detail)


def _numbering(chosen: list[Sentence]) -> dict[str, int]:
    """Each cited chunk's number, 1..n in order of first use."""
    numbers: dict[str, int] = {}
    for s in chosen:
        numbers.setdefault(s.chunk.chunk_id, len(numbers) + 1)
    return numbers


def _chunks(chosen: list[Sentence], numbers: dict[str, int]) -> list[Chunk]:
    by_id = {s.chunk.chunk_id: s.chunk for s in chosen}
    return [by_id[cid] for cid, _ in sorted(numbers.items(), key=lambda kv: kv[1])]
