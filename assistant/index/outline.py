"""Outline: one document as the index stores it, read back in order (card, sections, sentences).

Built from the stored chunks (`HybridRetriever.outlines`): overlapping windows are deduplicated, each
sentence keeps the first chunk holding it (the passage to cite) and its offset in the document, and a
sentence that gives the assistant orders is left out. Questions about the document as a whole
(`answering/document.py`) are answered from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assistant.checks.injection import instructs
from assistant.corpus.chunk import CARD_LABELS, CARD_SECTION, split_sentences
from assistant.types import Chunk


@dataclass(frozen=True)
class Sentence:
    chunk: Chunk  # the passage to cite (the first chunk holding the sentence)
    text: str
    start: int  # offset in the document


@dataclass(frozen=True)
class Section:
    heading: str  # "" for the lead before the first heading
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True)
class Outline:
    """One document as the index stores it: title, card and sections in order."""

    source: str
    title: str
    card: Chunk | None
    sections: tuple[Section, ...]

    @classmethod
    def of(cls, chunks: Sequence[Chunk]) -> Outline:
        """The outline of one document from its chunks (any order; overlapping windows deduplicated)."""
        ordered = sorted(chunks, key=lambda c: (c.start, c.paragraph))
        card = next((c for c in ordered if c.paragraph == 0), None)
        seen: set[int] = set()
        sections: list[tuple[str, list[Sentence]]] = []
        for chunk in (c for c in ordered if c.paragraph):
            if not sections or sections[-1][0] != chunk.section:
                sections.append((chunk.section, []))
            for a, b in split_sentences(chunk.text, 0, len(chunk.text)):
                text = chunk.text[a:b].strip()
                if chunk.start + a in seen or not text or instructs(text):
                    continue
                seen.add(chunk.start + a)
                sections[-1][1].append(Sentence(chunk, text, chunk.start + a))
        title = ordered[0].title if ordered else ""
        source = ordered[0].source if ordered else ""
        return cls(source, title, card, tuple(Section(h, tuple(ss)) for h, ss in sections if ss))

    @property
    def headings(self) -> list[str]:
        return [s.heading for s in self.sections if s.heading]

    def meta(self, key: str) -> str:
        """A metadata item as the card states it ("作者：…"), or "" when the card has none."""
        label = dict(CARD_LABELS).get(key, "")
        if self.card is None or not label:
            return ""
        items = self.card.section.split("；")  # as `verify` reads a card: the first holds the card's own label
        return next((i for i in items if i.removeprefix(CARD_SECTION + "：").partition("：")[0] == label), "")


def outlines(chunks: Sequence[Chunk]) -> dict[str, Outline]:
    """Every document's outline, by source."""
    by_source: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append(chunk)
    return {source: Outline.of(cs) for source, cs in by_source.items()}
