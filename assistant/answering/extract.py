"""Extract: a question and retrieved hits in, the best supporting sentence out (no generation).

Used for `--fast` answers, as the fallback when the chat model fails or times out, and to show
the closest sentence of each related passage on a refusal. A sentence scores by the share of the
question's keywords it contains, each weighted by its rarity in the corpus (IDF), so "参数量" counts
for more than "模型"; questions in another script are matched by embedding similarity. Sentences that
address the assistant (`injection`) are never quoted and never reach the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from assistant.checks.injection import data_only, instructs
from assistant.checks.verify import Similarity
from assistant.corpus.chunk import split_sentences
from assistant.index.keyword import tokenize
from assistant.text import is_english, is_han, squash
from assistant.types import Chunk, Hit

PROMPT_CHARS = 180  # characters of passage text in the prompt: about 190 prompt tokens in all (p50, article dev)
Weight = Callable[[str], float]


_ASKS = re.compile(r"^\s*(who|what|which)\s+(is|are|was|were)\s+(.+?)\s*\??\s*$", re.I)


def in_english(question: str, claim: str) -> str:
    """A sentence the model wrote in Chinese for an English question, framed in English ("The CEO of
    StepFun is 姜大昕."); the Chinese words stay as the passage writes them, so they remain checkable."""
    cjk = sum(map(is_han, claim))
    if cjk < 0.3 * max(1, sum(c.isalpha() for c in claim)):
        return claim
    body = claim.rstrip("。.!！ ")
    if m := _ASKS.match(question):
        subject = m.group(3)[0].upper() + m.group(3)[1:]
        return f"{subject} {m.group(2).lower()} {body}."
    return f"The article says: {body}."


def best_sentences(
    question: str, hits: Sequence[Hit], *, weight: Weight, similarity: Similarity | None = None
) -> tuple[Chunk, str | None, float]:
    """The chunk and its sentence that best answer `question`, and how much of the question it holds (the
    IDF-weighted share of its keywords; 1.0 where an English question is matched by embedding similarity);
    (top chunk, None, 0.0) when no sentence can be quoted. Whether the coverage is enough is `decide`'s."""
    candidates = [
        (h.chunk, sentence)
        for h in hits
        for s, e in split_sentences(h.chunk.text, 0, len(h.chunk.text))
        if not instructs(sentence := h.chunk.text[s:e])
    ]
    if not candidates:
        return (hits[0].chunk if hits else None), None, 0.0  # type: ignore[return-value]
    if is_english(question) and similarity is not None:
        scores = similarity(question, [s for _, s in candidates])
        best = max(range(len(candidates)), key=scores.__getitem__)
        return candidates[best][0], candidates[best][1], 1.0
    keywords = {t: weight(t) for t in tokenize(question)}
    total = sum(keywords.values())
    scores = [sum(w for t, w in keywords.items() if t in squash(s)) / total if total else 0.0 for _, s in candidates]
    best = max(range(len(candidates)), key=scores.__getitem__)
    chunk, sentence = candidates[best]
    return chunk, sentence, scores[best]


def prompt_passages(
    chunks: Sequence[Chunk],
    query: str,
    *,
    weight: Weight,
    budget: int | None = PROMPT_CHARS,
    similarity: Similarity | None = None,
) -> str:
    """The numbered passages for the prompt, `[n]` as the model must cite them.

    With a `budget` (characters of passage text): only the sentences that matter, i.e. the best
    sentence, the sentences holding the query's keywords it lacks, a document card's metadata (whole),
    then the best sentence's neighbours and the next best sentences while the budget lasts;
    each passage keeps its number and its sentences their order ("…" marks a gap), and a passage with
    no chosen sentence is left out. A sentence scores by the query's keywords it holds (IDF-weighted),
    or by embedding similarity for a query in another script. Time to first token grows with every
    prompt token, so this halves the wait. Without a budget: the best chunk whole, the others cut to
    the sentences holding a keyword. Sentences that address the assistant are never included."""
    if budget is None:
        return _whole_passages(chunks, query, weight)
    sentences = [(n, [s for s in _sentences(chunk) if s]) for n, chunk in enumerate(chunks, start=1)]
    flat = [(n, i, s) for n, group in sentences for i, s in enumerate(group)]
    if not flat:
        return ""
    scores = _sentence_scores(query, [s for _, _, s in flat], weight, similarity)
    order = sorted(range(len(flat)), key=lambda j: (-scores[j], j))
    best = order[0]
    # a document card (retrieval offers it only for questions about the document) and the best sentence
    # always; then its neighbours (a "他" or "该公司" there often names what it speaks of), then the rest
    cards = [j for j, (n, _, _) in enumerate(flat) if chunks[n - 1].paragraph == 0]
    chosen = list(dict.fromkeys([*cards, best, *_covering(query, [s for _, _, s in flat], best, weight)]))
    picks = [j for j in (best - 1, best + 1) if 0 <= j < len(flat) and flat[j][0] == flat[best][0]]
    for j in dict.fromkeys(picks + [j for j in order[1:] if scores[j] > 0]):
        if j not in chosen and sum(len(flat[c][2]) for c in chosen) + len(flat[j][2]) <= budget:
            chosen.append(j)
    parts = []
    for n, _ in sentences:
        kept = [flat[j] for j in sorted(chosen) if flat[j][0] == n]
        if kept:
            gaps = ["…" if k and i != kept[k - 1][1] + 1 else "" for k, (_, i, _) in enumerate(kept)]
            parts.append(f"[{n}] " + "".join(gap + s for gap, (_, _, s) in zip(gaps, kept, strict=True)))
    return "\n".join(parts)


def _covering(query: str, sentences: list[str], best: int, weight: Weight, most: int = 2) -> list[int]:
    """Up to `most` more sentences, each holding the rarest keywords of the query that the sentences
    chosen so far lack ("谁是StepFun的CEO": the sentence naming StepFun, then the one naming its CEO)."""
    keywords = {t: weight(t) for t in tokenize(query) if weight(t) > 0}
    if is_english(query) or not keywords:
        return []
    covered = {t for t in keywords if t in squash(sentences[best])}
    picked: list[int] = []
    for _ in range(most):
        gains = [sum(w for t, w in keywords.items() if t not in covered and t in squash(s)) for s in sentences]
        j = max(range(len(sentences)), key=gains.__getitem__)
        if gains[j] <= 0:
            break
        picked.append(j)
        covered |= {t for t in keywords if t in squash(sentences[j])}
    return picked


def _sentences(chunk: Chunk) -> list[str]:
    """The chunk's sentences that are data (a document card's metadata items stand for its sentences)."""
    if chunk.paragraph == 0:
        return [data_only(chunk.section) or ""]
    return [
        s.strip() for a, b in split_sentences(chunk.text, 0, len(chunk.text)) if not instructs(s := chunk.text[a:b])
    ]


def _sentence_scores(query: str, sentences: list[str], weight: Weight, similarity: Similarity | None) -> list[float]:
    if is_english(query) and similarity is not None:
        return similarity(query, sentences)
    keywords = {t: weight(t) for t in tokenize(query) if weight(t) > 0}
    total = sum(keywords.values()) or 1.0
    return [sum(w for t, w in keywords.items() if t in squash(s)) / total for s in sentences]


def _whole_passages(chunks: Sequence[Chunk], query: str, weight: Weight) -> str:
    """The best chunk whole, the others cut to the sentences holding a keyword of the query."""
    keywords = [t for t in tokenize(query) if weight(t) > 0]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        text = data_only(chunk.text) or "…"
        if chunk.paragraph == 0:  # a document card: its metadata, not the raw header lines
            text = data_only(chunk.section) or text
        elif n > 1 and keywords:
            sentences = [text[s:e] for s, e in split_sentences(text, 0, len(text))]
            kept = [s for s in sentences if any(k in squash(s) for k in keywords)]
            text = "".join(kept) or text
        parts.append(f"[{n}] {text}")
    return "\n".join(parts)
