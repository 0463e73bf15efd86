"""Verify: a generated answer and the passages it was given in; scored claims out, judged by a `VerifyPolicy`.

Citations are checked, not trusted. The draft's sentences and their markers come from `claims`;
markers outside the given passages removed. Each answer sentence is scored against every given
passage (`score_claims`): its numbers must occur there (`numbers`: values compared across units, so
50 亿 = 5 billion but 2024 ≠ 2025 and 5.21 ≠ 5.12; a hard check), its names, nouns and content words, its
closest sentence (which becomes its `quote`), and whether the passage meets the question's own
constraints (years, ordinals, qualifiers) and the sentence gives the kind of answer asked (`question`).
`judge` applies a policy's cut-offs to those scores: supported sentences are kept, the others dropped,
each with the check that failed. Passages are data: a sentence in them that addresses the assistant is
never evidence. The decision to refuse is `decide`'s.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import jieba

from assistant.checks import premise
from assistant.checks.claims import split_claims
from assistant.checks.injection import data_only, instructs
from assistant.checks.numbers import NUMBER, numbers_supported
from assistant.checks.question import Asked, answer_kind_ok, unmet_constraints
from assistant.checks.question import read as read_question
from assistant.corpus.chunk import split_sentences
from assistant.text import (
    FUNCTION_CHARS,
    GENERIC_WORDS,
    QUESTION_WORDS,
    bigrams,
    is_han,
    mostly_latin,
    squash,
)
from assistant.types import Chunk

jieba.setLogLevel(logging.WARNING)

# Noun-like part-of-speech tags whose words must appear in the supporting passage (weight 2 = names).
_NOUN_WEIGHT = {"n": 1, "nz": 2, "nr": 2, "ns": 2, "nt": 2, "nrt": 2, "ng": 1, "eng": 2}

Similarity = Callable[[str, list[str]], list[float]]  # claim, sentences -> cosine similarities
Translate = Callable[[str, str], str]  # (English claim, passage) -> the claim in the passage's language


@dataclass(frozen=True)
class Check:
    """One answer sentence against one given passage: the scores a `VerifyPolicy` judges, and the hard
    checks that failed (no cut-off moves those: a number the passage lacks is never supported)."""

    passage: int  # 1-based, as numbered in the prompt
    quote: str  # the passage sentence closest to the claim ("" when the passage has no usable sentence)
    scores: dict[str, float]  # nouns, content, overlap (same script) or similarity (across scripts); qa_*, question_*
    failed: tuple[str, ...] = ()  # hard checks: "numbers", "no sentence", "codes"
    unmet: tuple[str, ...] = ()  # the question's constraints (years, ordinals, qualifiers) the passage lacks
    kind_ok: bool = True  # the claim gives the kind of answer asked (a quantity in its unit, a date, a name)
    cross: bool = False  # an English claim judged by embedding similarity, not word by word
    translated: bool = False  # an English claim rendered in the passage's Chinese and checked word by word
    unbound: tuple[str, ...] = ()  # the question's names and versions the passage lacks (`premise`)


@dataclass(frozen=True)
class Scored:
    """One answer sentence with its markers and its checks against every given passage."""

    text: str  # without markers
    cited: tuple[int, ...]  # valid markers, in order
    checks: tuple[Check, ...]  # cited passages first, then the others


def score_claims(
    answer: str,
    passages: Sequence[Chunk],
    *,
    question: str = "",
    similarity: Similarity | None = None,
    english: bool = False,
    translate: Translate | None = None,
    leads: Sequence[str] = (),
) -> list[Scored]:
    """Every sentence of `answer` scored against every passage; see the module docstring.

    `leads`: for each passage, the text just before it in its document (`HybridRetriever.lead_in`), where
    the question's names and constraints may be stated ("Step-3 模型…" before "其 INT8 版本…").

    `question` is in the passages' language (empty: no question checks). `english`: the answer is meant
    to be in English over (possibly) Chinese passages; such a claim is rendered in Chinese by `translate`
    (with the cited passage as a glossary) and scored word by word; without `translate` only numbers,
    codes and embedding similarity can be checked."""
    asked = read_question(question) if question else None
    scored = []
    for text, cited in split_claims(answer):
        valid = tuple(n for n in dict.fromkeys(cited) if 1 <= n <= len(passages))
        order = list(valid) + [n for n in range(1, len(passages) + 1) if n not in valid]
        probe, cross = text, english and mostly_latin(text)
        if cross and translate is not None and passages:
            probe, cross = translate(text, passages[(valid or (1,))[0] - 1].text), False
        checks = tuple(
            _check(
                text,
                probe,
                n,
                passages[n - 1],
                question=question,
                asked=asked,
                similarity=similarity,
                cross=cross,
                lead=_at(leads, n - 1),
            )  # fmt: skip
            for n in order
        )
        if probe != text:
            checks = tuple(replace(c, translated=True) for c in checks)
        scored.append(Scored(text, valid, checks))
    return scored


def _check(
    text: str,
    probe: str,
    n: int,
    passage: Chunk,
    *,
    question: str,
    asked: Asked | None,
    similarity: Similarity | None,
    cross: bool,
    lead: str = "",
) -> Check:
    """`text` (as written) and `probe` (in the passage's language) against passage `n` (`lead`: the text
    before it in its document, which may state the question's names and constraints)."""
    context = passage_context(passage)
    sentences = [passage.text[s:e] for s, e in split_sentences(passage.text, 0, len(passage.text))]
    sentences = [s for s in sentences if not instructs(s)]
    if passage.paragraph == 0:  # a document card: its metadata items count as its sentences
        sentences += [item for item in passage.section.split("；") if item and not instructs(item)]
    failed = [] if numbers_supported(text, context) and numbers_supported(probe, context) else ["numbers"]
    failed += ["a question"] if text.rstrip().endswith(("？", "?")) else []  # an echoed question answers nothing
    if not cross and (missing := missing_names(probe, context, question)):
        failed.append(f"name {missing[0]}")
    if not sentences:
        return Check(n, "", {}, (*failed, "no sentence"), cross=cross)
    if cross:
        quote, scores, codes_ok = _across_languages(probe, context, sentences, similarity)
        return Check(n, quote, scores, tuple(failed + ([] if codes_ok else ["codes"])), cross=True)
    overlaps = [_overlap(probe, s) for s in sentences]
    best = max(range(len(sentences)), key=overlaps.__getitem__)
    scores = {"nouns": noun_support(probe, context), "content": content_support(probe, context)}
    scores["overlap"] = overlaps[best]
    unmet: tuple[str, ...] = ()
    unbound: tuple[str, ...] = ()
    kind_ok = True
    if question and asked is not None:
        bare = QUESTION_WORDS.sub(" ", question)
        scores["qa_nouns"] = noun_support(f"{bare} {probe}", context)
        scores["qa_content"] = content_support(f"{bare} {probe}", context)
        scores["question_nouns"] = noun_support(bare, context)
        scores["question_content"] = content_support(bare, context)
        scores["question_at_answer"] = question_at_answer(bare, probe, sentences)
        scores["answer_content"] = answer_content(probe, question)
        binding = context + squash(lead)
        unmet = tuple(unmet_constraints(asked, binding))
        unbound = premise.unbound(premise.names(question), binding)
        kind_ok = answer_kind_ok(asked, probe, question)
    return Check(n, sentences[best], scores, tuple(failed), unmet, kind_ok, unbound=unbound)


def _across_languages(
    claim: str, context: str, sentences: list[str], similarity: Similarity | None
) -> tuple[str, dict[str, float], bool]:
    """A claim in another script: its codes, acronyms and the words it keeps in the passage's script (a
    name written as the passage writes it) must occur, and its meaning match a sentence."""
    found = re.findall(r"\b(?=\w*\d)[\w.-]+\b|\b[A-Z]{2,}\b|[\u4e00-\u9fff]{2,}", claim)
    codes = [c for c in found if not NUMBER.fullmatch(c)]
    codes_ok = all(squash(code) in context for code in codes)
    anchored = [s for s in sentences if all(squash(c) in squash(s) for c in codes)] or sentences
    if similarity is None:  # nothing but the codes to go on: a claim without any is not supported
        return anchored[0], {"similarity": 1.0 if found else 0.0}, codes_ok
    scores = similarity(claim, anchored)
    best = max(range(len(anchored)), key=scores.__getitem__)
    return anchored[best], {"similarity": scores[best]}, codes_ok


def question_at_answer(question: str, claim: str, sentences: list[str]) -> float:
    """Where the passage states what the claim adds to the question (its answer part), how much of the
    question is stated there too (that sentence with its neighbours). A claim that rewrites the question
    around a fragment from elsewhere in the passage ("X 于 1900 年建成" from a sentence about 1900) scores
    low; a claim that adds nothing to the question scores 0."""
    asked = _content_pairs(question) or bigrams(question)  # its Chinese content words, if it has any
    answer = {
        b for b in bigrams(claim) - bigrams(question) if not any(c in FUNCTION_CHARS or not c.isalnum() for c in b)
    }
    if not answer or not asked:
        return 0.0 if not answer else 1.0
    windows = [bigrams("".join(sentences[max(0, i - 1) : i + 2])) for i in range(len(sentences))]
    best = max(windows, key=lambda w: len(answer & w))
    return len(asked & best) / len(asked) if answer & best else 0.0


def _at(items: Sequence[str], i: int) -> str:
    return items[i] if i < len(items) else ""


def answer_content(claim: str, question: str) -> float:
    """How much the claim says beyond the question: its distinct content characters (Chinese characters
    that are not grammar) and its numbers and Latin words that the question does not hold. 0: it restates
    the question ("X 在世界杯上的成绩是。") and answers nothing."""
    chars = {c for c in squash(claim) if is_han(c) and c not in FUNCTION_CHARS} - set(squash(question))
    # numbers and Latin words count whole ("22" says something beyond a question about "2025"), read with
    # their spaces kept; a word the question holds in another form ("raised" / "raise") is not new
    asked = _words(question)
    new = {w for w in _words(claim) if not any(w == a or (min(len(w), len(a)) >= 4 and w[:4] == a[:4]) for a in asked)}
    return float(len(chars) + len(new))


def _words(text: str) -> set[str]:
    """The numbers and Latin words of `text` (NFKC, lower-cased; "Step-3" and "Step 3" alike)."""
    return set(re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", unicodedata.normalize("NFKC", text).lower()))


def coverage(question: str, passages: Sequence[Chunk]) -> dict[str, float]:
    """How much of what the question is about (its nouns, its content words) the passages mention."""
    probe = QUESTION_WORDS.sub(" ", question)
    context = " ".join(passage_context(p) for p in passages)
    return {"nouns": noun_support(probe, context), "content": content_support(probe, context)}


def noun_support(claim: str, context: str) -> float:
    """Weighted share of the claim's nouns and names that occur in the context (1.0 when it has none)."""
    import jieba.posseg as pseg  # here: its tables cost ~0.4 s to import, and `--fast` never needs them

    total = found = 0.0
    for word, flag in pseg.cut(claim):
        w = squash(word)
        weight = _NOUN_WEIGHT.get(flag, 0)
        if not weight or len(w) < 2 or w in GENERIC_WORDS or NUMBER.fullmatch(w):
            continue
        total += weight
        found += weight if w in context else 0
    return found / total if total else 1.0


def missing_names(claim: str, context: str, question: str = "") -> list[str]:
    """Names in the claim (people, places, organisations, Latin-script words) that neither the passage nor the
    question holds: a claim that brings in a name from nowhere is not supported, whatever the cut-offs."""
    import jieba.posseg as pseg

    asked = squash(question)
    return [
        word
        for word, flag in pseg.cut(claim)
        if _NOUN_WEIGHT.get(flag) == 2
        and len(w := squash(word)) >= 2
        and w not in GENERIC_WORDS
        and not NUMBER.fullmatch(w)
        and w not in context
        and w not in asked
    ]


def content_support(claim: str, context: str) -> float:
    """Share of the claim's Chinese content bigrams (pairs without function characters) in the context."""
    pairs = _content_pairs(claim)
    return sum(p in context for p in pairs) / len(pairs) if pairs else 1.0


def _content_pairs(text: str) -> set[str]:
    t = squash(text)
    return {t[i : i + 2] for i in range(len(t) - 1) if all(is_han(c) and c not in FUNCTION_CHARS for c in t[i : i + 2])}


def _overlap(claim: str, sentence: str) -> float:
    a, b = bigrams(claim), bigrams(sentence)
    return len(a & b) / len(a) if a else 0.0


@lru_cache(maxsize=4096)
def passage_context(passage: Chunk) -> str:
    """What a claim is checked against: title, section and the passage's text (instructions left out)."""
    return squash(f"{passage.title} {passage.section} {data_only(passage.text)}")
