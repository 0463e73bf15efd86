"""Retrieve: a question in, ranked `Hit`s out.

Hybrid search over one `Index`: the dense top-n from Chroma and the BM25 top-n over jieba tokens
are fused by reciprocal rank (RRF), so a chunk that both agree on rises, and an English question
still finds a Chinese passage through the multilingual embeddings. The keyword index is built in
memory from the tokens stored with the chunks, once per retriever. `LangChainRetriever` wraps it
as a LangChain `BaseRetriever`. Rewriting follow-up questions is left to `answer`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .index import Index
from .keyword import BM25, tokenize
from .types import Chunk, Hit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionWeights:
    """Reciprocal-rank fusion: score = sum of weight / (k + rank) over the retrievers that found it."""

    dense: float = 1.0
    keyword: float = 1.0
    k: int = 60
    candidates: int = 30  # how deep each retriever looks before fusion


class HybridRetriever:
    """Dense + BM25 search over an `Index`, fused by reciprocal rank."""

    def __init__(self, index: Index, weights: FusionWeights | None = None) -> None:
        self.index = index
        self.weights = weights or FusionWeights()
        started = time.perf_counter()
        stored = index.stored_chunks()
        self.chunks: list[Chunk] = [s.chunk for s in stored]
        self._by_id = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._bm25 = BM25([s.tokens for s in stored])
        log.info("keyword index over %d chunks built in %.2fs", len(self.chunks), time.perf_counter() - started)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` best chunks for `query`, best first (empty for a blank query)."""
        if not query.strip() or not self.chunks:
            return []
        depth = max(self.weights.candidates, k)
        started = time.perf_counter()
        dense = [(self._by_id[cid], score) for cid, score in self.index.dense_search(query, depth) if cid in self._by_id]
        dense_s = time.perf_counter() - started
        keyword = self._bm25.search(tokenize(query), depth)
        hits = self._fuse(dense, keyword)[:k]
        log.info("retrieved %d hits in %.3fs (dense %.3fs)", len(hits), time.perf_counter() - started, dense_s)
        return hits

    def _fuse(self, dense: list[tuple[int, float]], keyword: list[tuple[int, float]]) -> list[Hit]:
        w = self.weights
        fused: dict[int, dict[str, float]] = {}
        for name, weight, ranked in (("dense", w.dense, dense), ("keyword", w.keyword, keyword)):
            for rank, (i, score) in enumerate(ranked, start=1):
                entry = fused.setdefault(i, {"score": 0.0})
                entry["score"] += weight / (w.k + rank)
                entry[f"{name}_score"], entry[f"{name}_rank"] = score, rank
        order = sorted(fused.items(), key=lambda item: (-item[1]["score"], item[0]))
        return [
            Hit(
                chunk=self.chunks[i],
                rank=rank,
                score=e["score"],
                dense_score=e.get("dense_score"),
                dense_rank=_int(e.get("dense_rank")),
                keyword_score=e.get("keyword_score"),
                keyword_rank=_int(e.get("keyword_rank")),
            )
            for rank, (i, e) in enumerate(order, start=1)
        ]


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


class LangChainRetriever(BaseRetriever):
    """The hybrid retriever as a LangChain `BaseRetriever`: `invoke(question)` -> `Document`s."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: HybridRetriever
    k: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: object
    ) -> list[LCDocument]:
        k = kwargs.get("k", self.k)
        hits = self.retriever.search(query, k=int(k) if isinstance(k, int) else self.k)
        return [to_langchain(hit) for hit in hits]


def to_langchain(hit: Hit) -> LCDocument:
    meta = hit.to_dict()
    text = meta.pop("text")
    return LCDocument(page_content=text, metadata=meta, id=hit.chunk.chunk_id)
