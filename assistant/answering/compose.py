"""Compose: a judged draft in, the answer's text with its `[n]` markers and its citations out.

`render` renumbers the kept sentences' markers 1..n in order of first use and builds the matching
`Citation`s; `quoted` labels a verbatim sentence as a quote (the extractive answer); `correction` says
what the passage states where the question's premise is wrong. Which sentences
are kept is `decide`'s; how an interface shows the result is its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from assistant.answering import prompts
from assistant.checks.decide import Verdict
from assistant.types import Chunk, Citation


def render(
    verdict: Verdict, chunks: list[Chunk], locate: Callable[[str], str] = str
) -> tuple[str, tuple[Citation, ...]]:
    """Answer text with markers renumbered 1..n in order of first use, and the matching citations
    (`locate` gives the file a corpus-relative source is in)."""
    numbering: dict[int, int] = {}
    quotes: dict[int, str] = {}
    sentences = []
    for claim in verdict.claims:
        for passage, quote in zip(claim.passages, claim.quotes, strict=True):
            numbering.setdefault(passage, len(numbering) + 1)
            quotes.setdefault(passage, quote)
        markers = "".join(f"[{numbering[p]}]" for p in claim.passages)
        body, end = _split_terminator(
            re.sub(r"\s*\n\s*", " ", claim.text)
        )  # one claim, one line: its marker stays on it
        # Chinese: "…。[1]" keeps the sentence, its full stop included, one unbroken quote-able span
        sentences.append(f"{body} {markers}{end}" if body.isascii() else f"{body}{end}{markers}")
    citations = tuple(
        Citation.of(new, chunks[old - 1], quotes[old], locate(chunks[old - 1].source)) for old, new in numbering.items()
    )
    return " ".join(sentences) if all(s.isascii() for s in sentences) else "".join(sentences), citations


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
