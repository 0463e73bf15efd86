"""Compose: a judged draft in, the answer's text with its `[n]` markers and its citations out.

`Citations` numbers cited passages 1..n in order of first use (the one place markers are numbered);
`render` gives a judged draft's kept sentences their markers and citations; `quoted` labels a verbatim
sentence as a quote (the extractive answer); `correction` says what the passage states where the
question's premise is wrong. Which sentences are kept is `decide`'s; how an interface shows the result is
its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import replace

from assistant.answering import prompts
from assistant.checks.decide import Verdict
from assistant.types import Chunk, Citation


class Citations:
    """Citations numbered 1..n in order of first use: a passage cited again keeps its number and its first quote.
    The one place markers are numbered (a draft's kept sentences, a document's chosen sentences, the parts
    of a question joined into one answer)."""

    def __init__(self, locate: Callable[[str], str] = str) -> None:
        self.locate = locate  # the file a corpus-relative source is in (a citation's `path`)
        self._by_key: dict[Hashable, Citation] = {}

    def cite(self, chunk: Chunk, quote: str, key: Hashable = None) -> int:
        """The number of `chunk` (or of `key`, where one chunk may be cited apart, e.g. for another quote)."""
        key = chunk.chunk_id if key is None else key
        if key not in self._by_key:
            self._by_key[key] = Citation.of(len(self._by_key) + 1, chunk, quote, self.locate(chunk.source))
        return self._by_key[key].n

    def carry(self, citation: Citation) -> int:
        """The number `citation` (another answer's) takes here: a passage cited for the same quote keeps one."""
        key = (citation.chunk_id, citation.quote)
        if key not in self._by_key:
            self._by_key[key] = replace(citation, n=len(self._by_key) + 1)
        return self._by_key[key].n

    @property
    def all(self) -> tuple[Citation, ...]:
        return tuple(self._by_key.values())


def render(
    verdict: Verdict, chunks: list[Chunk], locate: Callable[[str], str] = str
) -> tuple[str, tuple[Citation, ...]]:
    """Answer text with markers renumbered 1..n in order of first use, and the matching citations
    (`locate` gives the file a corpus-relative source is in)."""
    citations = Citations(locate)
    sentences = []
    for claim in verdict.claims:
        numbers = [citations.cite(chunks[p - 1], q, key=p) for p, q in zip(claim.passages, claim.quotes, strict=True)]
        markers = "".join(f"[{n}]" for n in numbers)
        # one claim, one line: its marker stays on it
        body, end = _split_terminator(re.sub(r"\s*\n\s*", " ", claim.text))
        # Chinese: "…。[1]" keeps the sentence, its full stop included, one unbroken quote-able span
        sentences.append(f"{body} {markers}{end}" if body.isascii() else f"{body}{end}{markers}")
    text = " ".join(sentences) if all(s.isascii() for s in sentences) else "".join(sentences)
    return text, citations.all


def renumber(text: str, numbers: dict[int, int]) -> str:
    """`text` with each `[n]` marker renumbered by `numbers` (a marker it lacks stays)."""
    return re.sub(r"\[(\d+)\]", lambda m: f"[{numbers.get(int(m[1]), int(m[1]))}]", text)


def correction(missing: str, instead: str, quote: str, english: bool) -> str:
    """A premise correction: what the question got wrong, and the passage's own sentence, cited [1]."""
    if english:
        head = (
            f'The article says "{instead}", not "{missing}"'
            if instead
            else f'The article does not say this of "{missing}"'
        )
        return f"{head}. It says: “{quote}” [1]"
    head = f"文章说的是“{instead}”，不是“{missing}”" if instead else f"文章没有把这一点与“{missing}”联系起来"
    return f"{head}。原文：“{quote}” [1]"


def quoted(quote: str, english: bool) -> str:
    """A verbatim sentence, labelled as a quote rather than a generated answer."""
    return f"{prompts.EXTRACTIVE_EN if english else prompts.EXTRACTIVE_ZH} “{quote}” [1]"


def _split_terminator(text: str) -> tuple[str, str]:
    """The sentence and its one closing mark ("好。。" -> "好", "。": a doubled stop would split the
    sentence from its marker); a trailing "；" or "," is dropped (the marker would land after a break)."""
    text = re.sub(r"[;；,，、:：\s]+$", "", text)
    m = re.search(r"[。！？!?.]+$", text)
    return (text[: m.start()].rstrip(), m.group()[-1]) if m else (text, "")
