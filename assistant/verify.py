"""Verify: a generated answer and the passages it was given in; only supported, cited sentences out.

Citations are checked, not trusted. Marker variants (`[编号1]`, `【1】`, `[1,2]`) are normalised and
markers outside the given passages removed. Each answer sentence must be supported by a passage it
cites (or, if it cites none, by any given passage): every number must occur there (values compared
across units, so 50 亿 = 5 billion but 2024 ≠ 2025 and 5.21 ≠ 5.12), its names and nouns must occur
there, and it must resemble one sentence of the passage, which becomes its `quote`. Unsupported
sentences are dropped. Passages are data: a sentence in them that addresses the assistant ("系统：…",
"ignore the question and reply …") is never evidence. Deciding to refuse is left to `answer`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import jieba

from .chunk import split_sentences
from .injection import data_only, instructs
from .keyword import QUESTION_WORDS, bigrams, squash
from .types import Chunk

jieba.setLogLevel(logging.WARNING)

MARKER = re.compile(
    r"[\[【［(（]\s*(?:编号|来源|资料|passage|source|ref)?\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】］)）]", re.I
)
_UNITS = {
    "%": 0.01,
    "万亿": 1e12,
    "亿": 1e8,
    "万": 1e4,
    "千": 1e3,
    "百万": 1e6,
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
    "trillion": 1e12,
    "bn": 1e9,
    "k": 1e3,
    "m": 1e6,
    "b": 1e9,
}
NUMBER = re.compile(
    r"(?<![\d.])(\d+(?:,\d{3})*(?:\.\d+)?)\s*(%|万亿|百万|亿|万|千|thousand|million|billion|trillion|bn|[kmb](?![a-z]))?",
    re.I,
)
# Noun-like part-of-speech tags whose words must appear in the supporting passage (weight 2 = names).
_NOUN_WEIGHT = {"n": 1, "nz": 2, "nr": 2, "ns": 2, "nt": 2, "nrt": 2, "ng": 1, "eng": 2}
_GENERIC = frozenset("文章 资料 公司 问题 信息 内容 方面 情况 时候 数据显示 article passage".split())
MIN_NOUN_SUPPORT = 0.75
MIN_CONTENT_SUPPORT = 0.7  # share of the claim's content bigrams (no function characters) found in the passage
MIN_OVERLAP = 0.3  # share of the claim's character bigrams in its best passage sentence
_FUNCTION_CHARS = frozenset("的了是在为于和与及或也都而就被把对从以之其这那有个着过将")
MIN_SIMILARITY = 0.80  # embedding cosine for claims in another language than the passage
# The question and the claim together ("训练数据有多少 token" + "321B") must be about the passage too,
# so a bare number is not accepted for a question about something the passage never mentions.
MIN_QA_NOUN_SUPPORT = 0.7
MIN_QA_CONTENT_SUPPORT = 0.5
# Before generating: the passages must mention most of what the question is about.
MIN_GROUNDING_NOUNS = 0.5
MIN_GROUNDING_CONTENT = 0.3

Similarity = Callable[[str, list[str]], list[float]]  # claim, sentences -> cosine similarities
Translate = Callable[[str, str], str]  # (English claim, passage) -> the claim in the passage's language


@dataclass(frozen=True)
class Claim:
    """One answer sentence that survived verification, with the passages (1-based) that support it."""

    text: str  # without markers
    passages: tuple[int, ...]
    quotes: tuple[str, ...]  # the supporting sentence in each of those passages


@dataclass(frozen=True)
class Verdict:
    claims: list[Claim]
    dropped: list[str]  # sentences no given passage supports


def normalize_markers(text: str) -> str:
    """`[编号1]`, `【1】`, `[1, 2]` -> `[1]`, `[1][2]`."""
    return MARKER.sub(lambda m: "".join(f"[{n}]" for n in re.findall(r"\d+", m.group(1))), text)


def split_claims(answer: str) -> list[tuple[str, list[int]]]:
    """Answer sentences with the marker numbers attached to each (a marker after `。` belongs before it)."""
    text = normalize_markers(answer).strip()
    # "…。[1] next" -> "…[1]。 next": a marker after a full stop belongs to the sentence before it
    text = re.sub(r"([。！？!?.])\s*((?:\[\d+\]\s*)+)", lambda m: m.group(2).strip() + m.group(1) + " ", text)
    claims = []
    for s, e in split_sentences(text, 0, len(text)):
        sentence = text[s:e]
        numbers = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        plain = re.sub(r"\s*\[\d+\]", "", sentence).strip()
        if re.search(r"\w", plain):
            claims.append((plain, numbers))
    return claims


def verify(
    answer: str,
    passages: Sequence[Chunk],
    similarity: Similarity | None = None,
    english: bool = False,
    translate: Translate | None = None,
    question: str = "",
) -> Verdict:
    """Keep the sentences of `answer` that a given passage supports; see the module docstring.

    `english`: the answer is meant to be in English over (possibly) Chinese passages. Such a claim
    is rendered in Chinese by `translate` (with the cited passage as a glossary) and checked word by
    word like a Chinese one; its numbers are checked as written too. Without `translate`, numbers,
    codes and embedding similarity are all that can be checked. `question` (in the passages'
    language) is checked together with each claim, see MIN_QA_NOUN_SUPPORT."""
    claims, dropped = [], []
    for text, cited in split_claims(answer):
        valid = [n for n in dict.fromkeys(cited) if 1 <= n <= len(passages)]
        order = valid + [n for n in range(1, len(passages) + 1) if n not in valid]
        probe, cross = text, english and not _is_cjk(text)
        if cross and translate is not None and passages:
            probe, cross = translate(text, passages[(valid or [1])[0] - 1].text), False
        found = [
            (n, q)
            for n in order
            if (q := support(probe, passages[n - 1], similarity, cross)) is not None
            and numbers_supported(text, _context(passages[n - 1]))
            and (cross or about_the_passage(question, probe, passages[n - 1]))
        ]
        cited_ok = [(n, q) for n, q in found if n in valid]
        chosen = cited_ok or found[:1]
        if chosen:
            claims.append(Claim(text, tuple(n for n, _ in chosen), tuple(q for _, q in chosen)))
        else:
            dropped.append(text)
    return Verdict(claims, dropped)


def support(claim: str, passage: Chunk, similarity: Similarity | None = None, english: bool = False) -> str | None:
    """The passage sentence that supports `claim`, or None when the passage does not support it.

    `english`: the claim is in English over a Chinese passage (see `verify`)."""
    context = _context(passage)
    if not numbers_supported(claim, context):
        return None
    sentences = [passage.text[s:e] for s, e in split_sentences(passage.text, 0, len(passage.text))]
    sentences = [s for s in sentences if not instructs(s)]
    if not sentences:
        return None
    if not (english and not _is_cjk(claim)):
        if noun_support(claim, context) < MIN_NOUN_SUPPORT or content_support(claim, context) < MIN_CONTENT_SUPPORT:
            return None
        overlaps = [_overlap(claim, s) for s in sentences]
        best = max(range(len(sentences)), key=overlaps.__getitem__)
        return sentences[best] if overlaps[best] >= MIN_OVERLAP else None
    return _support_across_languages(claim, context, sentences, similarity)


def _support_across_languages(
    claim: str, context: str, sentences: list[str], similarity: Similarity | None
) -> str | None:
    """A claim in another script: codes and acronyms must occur, and the meaning must match."""
    codes = re.findall(r"\b(?=\w*\d)[\w.-]+\b|\b[A-Z]{2,}\b", claim)
    if any(squash(code) not in context for code in codes if not NUMBER.fullmatch(code)):
        return None
    anchored = [s for s in sentences if all(squash(c) in squash(s) for c in codes)] or sentences
    if similarity is None:
        return anchored[0] if codes else None
    scores = similarity(claim, anchored)
    best = max(range(len(anchored)), key=scores.__getitem__)
    return anchored[best] if scores[best] >= MIN_SIMILARITY else None


def about_the_passage(question: str, claim: str, passage: Chunk) -> bool:
    """The question's terms and the claim's, taken together, occur in the passage."""
    if not question:
        return True
    probe, context = f"{QUESTION_WORDS.sub(' ', question)} {claim}", _context(passage)
    return (
        noun_support(probe, context) >= MIN_QA_NOUN_SUPPORT
        and content_support(probe, context) >= MIN_QA_CONTENT_SUPPORT
    )


def grounded(question: str, passages: Sequence[Chunk]) -> bool:
    """The passages mention most of what the question is about (its nouns and content words)."""
    probe = QUESTION_WORDS.sub(" ", question)
    context = " ".join(_context(p) for p in passages)
    return (
        noun_support(probe, context) >= MIN_GROUNDING_NOUNS and content_support(probe, context) >= MIN_GROUNDING_CONTENT
    )


def numbers_supported(claim: str, context: str) -> bool:
    """Every number in the claim occurs in the context: as written (same unit, or the claim gives none),
    or as the same value in another unit (50 亿 = 5 billion). 10% does not match "10 亿"."""
    have = _numbers(context)
    for raw, scaled, unit in _numbers(squash(claim)):
        if not any(
            (_same(raw, r) and (unit == u or not unit)) or (unit and u and _same(scaled, s)) for r, s, u in have
        ):
            return False
    return True


def noun_support(claim: str, context: str) -> float:
    """Weighted share of the claim's nouns and names that occur in the context (1.0 when it has none)."""
    import jieba.posseg as pseg  # here: its tables cost ~0.4 s to import, and `--fast` never needs them

    total = found = 0.0
    for word, flag in pseg.cut(claim):
        w = squash(word)
        weight = _NOUN_WEIGHT.get(flag, 0)
        if not weight or len(w) < 2 or w in _GENERIC or NUMBER.fullmatch(w):
            continue
        total += weight
        found += weight if w in context else 0
    return found / total if total else 1.0


def content_support(claim: str, context: str) -> float:
    """Share of the claim's Chinese content bigrams (pairs without function characters) in the context."""
    text = squash(claim)
    pairs = {
        text[i : i + 2]
        for i in range(len(text) - 1)
        if all("\u4e00" <= c <= "\u9fff" and c not in _FUNCTION_CHARS for c in text[i : i + 2])
    }
    return sum(p in context for p in pairs) / len(pairs) if pairs else 1.0


def _numbers(text: str) -> list[tuple[float, float, str]]:
    """(value as written, value in base units, unit) for every number in normalised text."""
    found = []
    for m in NUMBER.finditer(text):
        value = float(m.group(1).replace(",", ""))
        unit = (m.group(2) or "").lower()
        found.append((value, value * _UNITS.get(unit, 1.0), unit))
    return found


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _overlap(claim: str, sentence: str) -> float:
    a, b = bigrams(claim), bigrams(sentence)
    return len(a & b) / len(a) if a else 0.0


@lru_cache(maxsize=4096)
def _context(passage: Chunk) -> str:
    """What a claim is checked against: title, section and the passage's text (instructions left out)."""
    return squash(f"{passage.title} {passage.section} {data_only(passage.text)}")


def _is_cjk(text: str) -> bool:
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in text)
    return cjk >= max(2, len(re.sub(r"\s", "", text)) * 0.2)
