"""Claims: a model's draft in, its sentences with the passage numbers each cites out.

Marker variants are normalised (`[编号1]`, `【1】`, `[1, 2]` -> `[1]`, `[1][2]`), words that name a passage
instead of marking it ("根据资料[3]，…") become its marker, and a marker after a full stop is given to
the sentence before it. Whether a claim is supported is `verify`'s.
"""

from __future__ import annotations

import re

from assistant.corpus.chunk import split_sentences

MARKER = re.compile(
    r"[\[【［(（]\s*(?:编号|来源|资料|passage|source|ref)?\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】］)）]", re.I
)


def normalize_markers(text: str) -> str:
    """`[编号1]`, `【1】`, `[1, 2]` -> `[1]`, `[1][2]`."""
    return MARKER.sub(lambda m: "".join(f"[{n}]" for n in re.findall(r"\d+", m.group(1))), text)


_CITES = r"(?:根据|依据|参考|参见|出自|来自)的?(?:上述)?(?:资料|材料|段落)(?:编号)?(?:为|是)?[：:]?"
_MARKS = r"((?:\s*\[\d+\]\s*(?:和|与|及|、|,|，)?)*)"
_LEADING_CITE = re.compile(rf"(^|[。！？!?]\s*){_CITES}{_MARKS}[，,：:]?\s*([^。！？!?]*)")
_TRAILING_CITE = re.compile(rf"[，,。；;]?\s*{_CITES}{_MARKS}\s*(?=[。！？!?]|$)")


def cite_phrases(text: str) -> str:
    """Words that name a passage instead of marking it become its marker, at the end of its sentence:
    "根据资料[3]，X。" -> "X[3]。", "X。依据的资料编号为 [2]。" -> "X[2]。", "X，依据资料编号。" -> "X。"."""

    def marks(found: str) -> str:
        return "".join(re.findall(r"\[\d+\]", found))

    text = _LEADING_CITE.sub(lambda m: m.group(1) + m.group(3) + marks(m.group(2)), text)
    return _TRAILING_CITE.sub(lambda m: marks(m.group(1)), text)


def split_claims(answer: str) -> list[tuple[str, list[int]]]:
    """Answer sentences with the marker numbers attached to each (a marker after `。` belongs before it)."""
    text = cite_phrases(normalize_markers(answer).strip())
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
