"""Retrieve: a question in, ranked `Hit`s out.

Hybrid search over one `Index`: the dense top-n from Chroma and the BM25 top-n over jieba tokens
are fused by reciprocal rank (RRF), so a chunk that both agree on rises, and an English question
still finds a Chinese passage through the multilingual embeddings. The fused top candidates are
then re-scored by how much of the question one of their sentences covers (character bigrams), which
puts the window holding the answering sentence first. The keyword index is built in memory from
the tokens stored with the chunks. `LangChainRetriever` wraps it as a LangChain `BaseRetriever`.
Rewriting follow-up questions with a model is left to `answer`.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.corpus.chunk import split_sentences
from assistant.index.collection import Index
from assistant.index.keyword import BM25, tokenize
from assistant.index.outline import Outline, outlines
from assistant.text import QUESTION_WORDS, bigrams, is_chinese
from assistant.types import Chunk, Hit

log = logging.getLogger(__name__)

# Questions about the document itself (who wrote it, where and when it appeared), which its card answers.
ABOUT_THE_DOCUMENT = re.compile(
    r"作者|谁写|撰写|撰文|记者|编辑|发表|发布于|刊登|刊发|刊载|哪家媒体|什么媒体|媒体|来源|出处|哪个网站|网址|链接|标题|题目|"
    r"author|wrote|written|byline|published|publication|outlet|source|url|link|headline|title",
    re.I,
)


@dataclass(frozen=True)
class FusionWeights:
    """Reciprocal-rank fusion: score = sum of weight / (k + rank) over the retrievers that found it."""

    dense: float = 1.0
    keyword: float = 1.0
    k: int = 10
    candidates: int = 30  # how deep each retriever looks before fusion
    rerank_depth: int = 20  # fused candidates re-scored by sentence overlap
    overlap: float = 0.5  # weight of the best sentence's question coverage against the normalised RRF score


class HybridRetriever:
    """Dense + BM25 search over an `Index`, fused by reciprocal rank."""

    def __init__(self, index: Index, weights: FusionWeights | None = None) -> None:
        self.index = index
        self.weights = weights or FusionWeights()
        started = time.perf_counter()
        self._dense = index.dense_searcher()  # one version: its vectors, and its chunks for the keyword side
        stored = index.stored_chunks(self._dense.vectors)
        self.chunks: list[Chunk] = [s.chunk for s in stored]
        self._by_id = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._bm25 = BM25([s.tokens for s in stored])
        self._order: dict[str, list[Chunk]] | None = None  # each document's chunks in order (`lead_in`)
        self._outlines: dict[str, Outline] | None = None  # each document's outline (`document`), by source
        self.documents = len({c.source for c in self.chunks})
        sample = "".join(c.text[:200] for c in self.chunks[:200])
        self.corpus_is_cjk = is_chinese(sample)
        log.info("keyword index over %d chunks built in %.2fs", len(self.chunks), time.perf_counter() - started)

    def lead_in(self, chunk: Chunk) -> str:
        """The window just before `chunk` in its document ("" at its start, and for a card): where a name that
        the chunk refers back to ("该模型", "其") is stated."""
        if self._order is None:
            by_source: dict[str, list[Chunk]] = {}
            for c in self.chunks:
                if c.paragraph:
                    by_source.setdefault(c.source, []).append(c)
            self._order = {s: sorted(cs, key=lambda c: c.start) for s, cs in by_source.items()}
        return lead_in(chunk, self._order.get(chunk.source, []))

    @property
    def outlines(self) -> dict[str, Outline]:
        """Each document's outline (card, sections, sentences), by source: read once from the stored chunks."""
        if self._outlines is None:
            self._outlines = outlines(self.chunks)
        return self._outlines

    def weight(self, token: str) -> float:
        """How telling a keyword is in this corpus (BM25 IDF; unseen tokens count as rare)."""
        return self._bm25.idf(token)

    def search(self, query: str, k: int = 5, history: list[str] | None = None) -> list[Hit]:
        """The `k` best chunks for `query`, best first (empty for a blank query).

        `history` (earlier user turns) is added to the search text, so a follow-up such as
        "他有什么经验？" still finds the person the conversation is about.
        """
        if not query.strip() or not self.chunks:
            return []
        search_text = " ".join([*(history or [])[-2:], query])
        depth = max(self.weights.candidates, k)
        started = time.perf_counter()
        dense = [(self._by_id[cid], s) for cid, s in self._dense(search_text, depth) if cid in self._by_id]
        dense_s = time.perf_counter() - started
        keyword = self._bm25.search(tokenize(search_text), depth)
        ranked = self._rerank(query, self._fuse(dense, keyword))
        if not ABOUT_THE_DOCUMENT.search(query):  # a document card answers questions about the document only
            ranked = [replace(h, rank=i) for i, h in enumerate((h for h in ranked if h.chunk.paragraph), start=1)]
        hits = ranked[:k]
        log.info("retrieved %d hits in %.3fs (dense %.3fs)", len(hits), time.perf_counter() - started, dense_s)
        return hits

    def _fuse(self, dense: list[tuple[int, float]], keyword: list[tuple[int, float]]) -> list[dict[str, float]]:
        w = self.weights
        fused: dict[int, dict[str, float]] = {}
        for name, weight, ranked in (("dense", w.dense, dense), ("keyword", w.keyword, keyword)):
            for rank, (i, score) in enumerate(ranked, start=1):
                entry = fused.setdefault(i, {"i": i, "rrf": 0.0})
                entry["rrf"] += weight / (w.k + rank)
                entry[f"{name}_score"], entry[f"{name}_rank"] = score, rank
        return sorted(fused.values(), key=lambda e: (-e["rrf"], e["i"]))

    def _rerank(self, query: str, fused: list[dict[str, float]]) -> list[Hit]:
        """Re-score the top candidates: normalised RRF plus the best sentence's question coverage."""
        if not fused:
            return []
        w = self.weights
        best_rrf = fused[0]["rrf"]
        question = bigrams(QUESTION_WORDS.sub(" ", query))
        for e in fused[: w.rerank_depth]:
            e["overlap"] = self._coverage(int(e["i"]), question)
            e["score"] = e["rrf"] / best_rrf + w.overlap * e["overlap"]
        for e in fused[w.rerank_depth :]:
            e["score"] = e["rrf"] / best_rrf
        order = sorted(fused, key=lambda e: (-e["score"], e["i"]))
        return [_hit(self.chunks[int(e["i"])], rank, e) for rank, e in enumerate(order, start=1)]

    def _coverage(self, i: int, question: set[str]) -> float:
        """The largest share of the question's bigrams that one sentence of chunk `i` contains."""
        if not question:
            return 0.0
        text = self.chunks[i].text
        return max(
            (len(question & bigrams(text[s:e])) / len(question) for s, e in split_sentences(text, 0, len(text))),
            default=0.0,
        )


def lead_in(chunk: Chunk, ordered: list[Chunk]) -> str:
    """The text of the chunk before `chunk` among its document's chunks `ordered` by offset ("" if none)."""
    before = [c for c in ordered if c.start < chunk.start]
    return before[-1].text if before and chunk.paragraph else ""


def _hit(chunk: Chunk, rank: int, e: dict[str, float]) -> Hit:
    return Hit(
        chunk=chunk,
        rank=rank,
        score=e["score"],
        dense_score=e.get("dense_score"),
        dense_rank=_int(e.get("dense_rank")),
        keyword_score=e.get("keyword_score"),
        keyword_rank=_int(e.get("keyword_rank")),
        overlap=e.get("overlap"),
    )


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
