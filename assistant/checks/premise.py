"""Premise: what a question takes for granted, and whether the passage that states the answer agrees.

A question names things (people, places, organisations, products, versions) and constraints (years,
ordinals, qualifiers, read by `question`). A sentence answers *this* question only when the passage it
cites binds its fact to those same things: asked what a company built with phone maker B, a passage
that says it built the feature with phone maker A supports the sentence but does not answer the
question. `unbound` lists what the question names that a passage lacks; `correction` says what the
passage states instead ("文章说的是 A，不是 B"), for the premise correction `answer` renders. How much
weight these carry is `decide`'s (`VerifyPolicy.premise`), chosen on the calibration sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from assistant.checks.question import ORDINAL, QUALIFIERS, Asked, unmet_constraints
from assistant.text import GENERIC_WORDS, STOPWORDS, squash

# jieba's tags for names: people, places, organisations, other proper nouns, Latin-script words
NAME_FLAGS = frozenset({"nr", "nrt", "ns", "nt", "nz", "eng"})
CODE = re.compile(r"[a-z][a-z0-9]*(?:[-.][a-z0-9]+)*\d[a-z0-9]*|[a-z]+-?\d+(?:\.\d+)?", re.I)  # Step-3, v2.5, k2
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d])")


@dataclass(frozen=True)
class Premise:
    """A supported sentence whose passage does not bind the fact to what the question names."""

    passage: int  # 1-based, as numbered in the prompt
    quote: str  # the passage sentence that states the fact
    missing: tuple[str, ...]  # what the question names that the passage lacks ("B", "2022", "第三届")
    instead: str = ""  # what the passage names in its place, when one thing of the same kind stands there


@lru_cache(maxsize=2048)
def names(text: str) -> tuple[str, ...]:
    """The names and version codes a text holds, as written, longest first."""
    import jieba.posseg as pseg  # its tables cost ~0.4 s to import, and `--fast` never needs them

    found = {
        word.strip()
        for word, flag in pseg.cut(text)
        if flag in NAME_FLAGS
        and len(w := squash(word)) >= 2
        and w not in GENERIC_WORDS
        and w not in STOPWORDS
        and not _NUMBER.fullmatch(w)
    }
    found |= {m.group() for m in CODE.finditer(text)}
    # a name inside a longer one ("Step" in "Step-3") is checked by the longer one
    kept = [n for n in found if not any(squash(n) != squash(m) and squash(n) in squash(m) for m in found)]
    return tuple(sorted(kept, key=lambda n: (-len(n), n)))


def unbound(question_names: tuple[str, ...], context: str) -> tuple[str, ...]:
    """The question's names that the (squashed) passage context does not hold."""
    return tuple(n for n in question_names if squash(n) not in context)


def missing(asked: Asked, question_names: tuple[str, ...], context: str) -> tuple[str, ...]:
    """Everything the question takes for granted that the passage lacks: names first, then constraints."""
    return unbound(question_names, context) + tuple(unmet_constraints(asked, context))


def instead(missing_item: str, quote: str, question: str) -> str:
    """What the quote names where the question names `missing_item`: what stands in the quote between the
    same words that surround it in the question ("与[比亚迪]合作" asked, "与吉利合作" quoted), else the one
    thing of the same kind (a name, a year or number, an ordinal, a qualifier) that the quote holds and the
    question does not; "" when there is none or more than one (no guess)."""
    q = squash(question)
    if aligned := _aligned(squash(missing_item), squash(quote), q):
        return aligned
    if ORDINAL.fullmatch(missing_item):
        options = {m.group() for m in ORDINAL.finditer(squash(quote)) if m.group() not in q}
    elif _NUMBER.fullmatch(missing_item):
        width = len(missing_item)
        options = {n for n in _NUMBER.findall(squash(quote)) if n not in q and len(n) == width}
    elif missing_item in QUALIFIERS:
        options = {w for w in QUALIFIERS if w in squash(quote) and w not in q}
    else:
        options = {n for n in names(quote) if squash(n) not in q}
    return next(iter(options)) if len(options) == 1 else ""


def _aligned(missing_item: str, quote: str, question: str) -> str:
    """The span of `quote` between the words on both sides of `missing_item` in `question` (all squashed)."""
    at = question.find(missing_item)
    if at < 0:
        return ""
    for width in (2, 1):
        left, right = (
            question[max(0, at - width) : at],
            question[at + len(missing_item) : at + len(missing_item) + width],
        )
        if len(left) < width or len(right) < width or not (left + right).strip("，。、？?"):
            continue
        found = re.search(re.escape(left) + r"(.{1,12}?)" + re.escape(right), quote)
        if found and found.group(1) not in question and found.group(1) != missing_item:
            return found.group(1)
    return ""
