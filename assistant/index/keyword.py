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
from array import array
from collections import Counter
from collections.abc import Sequence

import jieba
import numpy as np

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
    """Okapi BM25 over an inverted index (k1=1.2, b=0.75): scores only the documents that match.

    The postings are flat numpy arrays (document numbers and term counts, grouped by token), about
    6 bytes a posting: a replica's keyword side for 100,000 passages is 176 MB of RSS where Python
    lists of tuples took 794 MB (`bench/replicas.py`)."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.size = len(documents)
        vocabulary: dict[str, int] = {}
        token_ids, doc_ids, counts = array("i"), array("i"), array("i")
        lengths = array("i")
        for i, doc in enumerate(documents):
            lengths.append(len(doc))
            for token, tf in Counter(doc).items():
                token_ids.append(vocabulary.setdefault(token, len(vocabulary)))
                doc_ids.append(i)
                counts.append(tf)
        order = np.argsort(np.frombuffer(token_ids, dtype=np.int32), kind="stable")
        self._docs = np.frombuffer(doc_ids, dtype=np.int32)[order].copy()
        self._tfs = np.frombuffer(counts, dtype=np.int32)[order].clip(0, 65535).astype(np.uint16)
        per_token = np.bincount(np.frombuffer(token_ids, dtype=np.int32), minlength=len(vocabulary))
        self._starts = np.concatenate(([0], np.cumsum(per_token))).astype(np.int64)
        self._vocabulary = vocabulary
        self.lengths = np.frombuffer(lengths, dtype=np.int32).astype(np.float64)
        self.avg_length = float(self.lengths.mean()) if self.size else 0.0

    def _postings(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        t = self._vocabulary.get(token)
        if t is None:
            return _EMPTY, _EMPTY
        start, end = self._starts[t], self._starts[t + 1]
        return self._docs[start:end], self._tfs[start:end]

    def idf(self, token: str) -> float:
        n = len(self._postings(token)[0])
        return math.log(1.0 + (self.size - n + 0.5) / (n + 0.5))

    def search(self, query: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The top `k` (document index, score) pairs for the query tokens, best first (ties: lower index)."""
        scores = np.zeros(self.size)
        for token in set(query):
            docs, tfs = self._postings(token)
            if not len(docs):
                continue
            tf = tfs.astype(np.float64)
            norm = self.k1 * (1 - self.b + self.b * self.lengths[docs] / self.avg_length)
            np.add.at(scores, docs, self.idf(token) * tf * (self.k1 + 1) / (tf + norm))
        matched = np.flatnonzero(scores)
        best = matched[np.lexsort((matched, -scores[matched]))][:k]
        return [(int(i), float(scores[i])) for i in best]


_EMPTY = np.zeros(0, dtype=np.int32)
