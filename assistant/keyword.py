"""Keyword side of the index: jieba tokens in, BM25 scores out.

`tokenize` turns Chinese, English or mixed text into lower-cased search tokens (jieba's search
mode, which also emits the short words inside long ones), without punctuation or function words.
`BM25` is a small in-memory inverted index built from token lists; the tokens themselves are
stored beside each chunk in the vector store by `index`, so this module persists nothing. The word
lists and the normal form texts are compared in are `text`'s.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence

import jieba

from assistant.text import STOPWORDS

jieba.setLogLevel(logging.WARNING)

_TOKEN = re.compile(r"\w", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Search tokens of `text` (NFKC, lower-cased, punctuation and stopwords removed)."""
    normalized = unicodedata.normalize("NFKC", text).lower()
    return [
        token
        for raw in jieba.lcut_for_search(normalized)
        if (token := raw.strip()) and _TOKEN.search(token) and token not in STOPWORDS
    ]


class BM25:
    """Okapi BM25 over an inverted index (k1=1.2, b=0.75): scores only the documents that match."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.size = len(documents)
        self.lengths = [len(d) for d in documents]
        self.avg_length = (sum(self.lengths) / self.size) if self.size else 0.0
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, doc in enumerate(documents):
            for token, tf in Counter(doc).items():
                self.postings[token].append((i, tf))

    def idf(self, token: str) -> float:
        n = len(self.postings.get(token, ()))
        return math.log(1.0 + (self.size - n + 0.5) / (n + 0.5))

    def search(self, query: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The top `k` (document index, score) pairs for the query tokens, best first."""
        scores: dict[int, float] = defaultdict(float)
        for token in set(query):
            postings = self.postings.get(token)
            if not postings:
                continue
            idf = self.idf(token)
            for i, tf in postings:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg_length)
                scores[i] += idf * tf * (self.k1 + 1) / (tf + norm)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
