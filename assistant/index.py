"""Index: `Document`s in, a Chroma collection of chunk vectors out (and chunks back for search).

Chroma, through `langchain-chroma`, is the one store: embedded (`PersistentClient` in the index
directory) or a server (`HttpClient`). Each chunk's record holds its text, its metadata (source,
title, section, paragraph, offsets, the document's sha256) and its jieba tokens, so the keyword
index is persisted with the vectors and rebuilt from them by `retrieve`. The collection records
which embedding model built it; a query with another model is refused. `sync` re-embeds only
chunks whose text is new: an unchanged corpus costs one metadata read.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from .chunk import chunk_document
from .errors import ConfigurationError, IndexMismatchError, IndexNotFoundError, StoreUnavailableError
from .keyword import tokenize
from .types import Chunk, Document

log = logging.getLogger(__name__)

SCHEMA = 1
WRITE_BATCH = 32
Progress = Callable[[int, int], None]  # (chunks embedded so far, chunks to embed)


@dataclass(frozen=True)
class SyncReport:
    """What `Index.sync` did."""

    documents: int
    chunks: int
    added: list[str] = field(default_factory=list)  # sources
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    embedded: int = 0  # chunks that needed a new embedding
    seconds: float = 0.0


@dataclass(frozen=True)
class StoredChunk:
    chunk: Chunk
    tokens: list[str]


def embed_text(chunk: Chunk) -> str:
    """What the embedding model sees: the chunk with its title and section as context."""
    context = " · ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{context}\n{chunk.text}" if context else chunk.text


def connect(index_dir: Path, chroma_url: str | None) -> Any:
    """A Chroma client: the server at `chroma_url` if given, else the embedded store in `index_dir`."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if not chroma_url:
        return chromadb.PersistentClient(path=str(index_dir / "chroma"), settings=settings)
    url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigurationError(f"ASSISTANT_CHROMA_URL {chroma_url!r} is not a URL like http://127.0.0.1:8000")
    port = url.port or (443 if url.scheme == "https" else 8000)
    try:
        return chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https", settings=settings)
    except Exception as exc:  # chromadb raises plain ValueError/ConnectionError subclasses here
        raise StoreUnavailableError(
            f"cannot reach the Chroma server at {chroma_url} ({exc}): start it with "
            f"`chroma run --path DIR --host {url.hostname} --port {port}`, or unset ASSISTANT_CHROMA_URL "
            "to use the embedded store"
        ) from exc


class Index:
    """One Chroma collection of chunks, embedded with one named model."""

    def __init__(self, client: Any, collection: str, embeddings: Embeddings, embeddings_name: str, location: str):
        self.client = client
        self.collection_name = collection
        self.embeddings = embeddings
        self.embeddings_name = embeddings_name
        self.location = location
        self._store: Chroma | None = None

    # -- reading ---------------------------------------------------------------------------------

    @property
    def store(self) -> Chroma:
        """The LangChain vector store over the collection; refuses a missing or mismatched index."""
        if self._store is None:
            meta = self._collection_metadata()
            if meta is None:
                raise IndexNotFoundError(f"no index at {self.location}: run `assistant index` first")
            self._check_model(meta)
            self._store = self._open_store(create=False)
        return self._store

    def dense_search(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the `k` nearest chunks."""
        vector = self.embeddings.embed_query(query)
        results = self.store.similarity_search_by_vector_with_relevance_scores(vector, k=k)
        return [(doc.id or "", 1.0 - distance) for doc, distance in results]

    def stored_chunks(self) -> list[StoredChunk]:
        """Every chunk in the collection with its keyword tokens, in document order."""
        data = self.store.get(include=["documents", "metadatas"])
        stored = [
            StoredChunk(_chunk_from_record(cid, text, meta), str(meta.get("tokens", "")).split())
            for cid, text, meta in zip(data["ids"], data["documents"], data["metadatas"], strict=True)
        ]
        return sorted(stored, key=lambda s: (s.chunk.source, s.chunk.start))

    def documents(self) -> dict[str, dict[str, Any]]:
        """source -> {sha256, title, chunks, ids} for what is indexed now."""
        if self._collection_metadata() is None:
            return {}
        data = self._open_store(create=False).get(include=["metadatas"])
        docs: dict[str, dict[str, Any]] = defaultdict(lambda: {"sha256": set(), "ids": []})
        for cid, meta in zip(data["ids"], data["metadatas"], strict=True):
            doc = docs[str(meta["source"])]
            doc["sha256"].add(meta.get("doc_sha256"))
            doc["ids"].append(cid)
            doc["title"] = meta.get("title", "")
        return {
            source: {
                "sha256": next(iter(d["sha256"])) if len(d["sha256"]) == 1 else None,
                "title": d["title"],
                "chunks": len(d["ids"]),
                "ids": d["ids"],
            }
            for source, d in docs.items()
        }

    def info(self) -> dict[str, Any]:
        meta = self._collection_metadata()
        docs = self.documents()
        return {
            "location": self.location,
            "collection": self.collection_name,
            "exists": meta is not None,
            "embeddings": (meta or {}).get("embeddings"),
            "configured_embeddings": self.embeddings_name,
            "documents": len(docs),
            "chunks": sum(d["chunks"] for d in docs.values()),
            "sources": {s: {"title": d["title"], "chunks": d["chunks"]} for s, d in sorted(docs.items())},
        }

    # -- writing ---------------------------------------------------------------------------------

    def sync(
        self, documents: Sequence[Document], *, rebuild: bool = False, progress: Progress | None = None
    ) -> SyncReport:
        """Make the collection hold exactly `documents`, embedding only chunks it lacks."""
        started = time.perf_counter()
        meta = self._collection_metadata()
        if meta is not None and rebuild:
            self.client.delete_collection(self.collection_name)
            meta = None
        if meta is not None:
            self._check_model(meta, hint="run `assistant index --rebuild` to re-embed with the configured model")
        self._store = self._open_store(create=True)
        existing = self.documents()
        wanted = {d.source: d for d in documents}
        removed = sorted(set(existing) - set(wanted))
        stale = [d for d in documents if existing.get(d.source, {}).get("sha256") != d.sha256]
        chunks = [c for d in stale for c in chunk_document(d)]
        doc_sha = {d.source: d.sha256 for d in stale}
        old_ids = {cid for s in removed + [d.source for d in stale] for cid in existing.get(s, {}).get("ids", [])}
        embedded = self._write(chunks, doc_sha, reusable=old_ids, progress=progress)
        obsolete = sorted(old_ids - {c.chunk_id for c in chunks})
        if obsolete:
            self.store.delete(ids=obsolete)
        total = sum(d["chunks"] for d in self.documents().values())
        return SyncReport(
            documents=len(documents),
            chunks=total,
            added=sorted(d.source for d in stale if d.source not in existing),
            changed=sorted(d.source for d in stale if d.source in existing),
            removed=removed,
            embedded=embedded,
            seconds=time.perf_counter() - started,
        )

    def _write(
        self, chunks: list[Chunk], doc_sha: dict[str, str], reusable: set[str], progress: Progress | None
    ) -> int:
        """Upsert chunks; vectors of chunks whose id (hence text) is already stored are reused."""
        reuse_ids = sorted(reusable & {c.chunk_id for c in chunks})
        known: dict[str, Any] = {}
        if reuse_ids:
            got = self.store.get(ids=reuse_ids, include=["embeddings"])
            known = dict(zip(got["ids"], got["embeddings"], strict=True))
        todo = [c for c in chunks if c.chunk_id not in known]
        done = 0
        if progress:
            progress(0, len(todo))
        for i in range(0, len(chunks), WRITE_BATCH):
            batch = chunks[i : i + WRITE_BATCH]
            fresh = [c for c in batch if c.chunk_id not in known]
            vectors = self.embeddings.embed_documents([embed_text(c) for c in fresh]) if fresh else []
            known.update(zip((c.chunk_id for c in fresh), vectors, strict=True))
            self.store._collection.upsert(  # precomputed vectors: LangChain's add_texts would re-embed
                ids=[c.chunk_id for c in batch],
                embeddings=np.asarray([known[c.chunk_id] for c in batch], dtype=np.float32),
                documents=[c.text for c in batch],
                metadatas=[_record_metadata(c, doc_sha[c.source]) for c in batch],
            )
            done += len(fresh)
            if progress and fresh:
                progress(done, len(todo))
        return done

    # -- helpers ---------------------------------------------------------------------------------

    def _collection_metadata(self) -> dict[str, Any] | None:
        try:
            return dict(self.client.get_collection(self.collection_name).metadata or {})
        except Exception as exc:  # chromadb raises NotFoundError (or ValueError in older releases)
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                return None
            raise StoreUnavailableError(f"cannot read the index at {self.location}: {exc}") from exc

    def _check_model(self, meta: dict[str, Any], hint: str | None = None) -> None:
        built_with = meta.get("embeddings")
        if built_with != self.embeddings_name or meta.get("schema") != SCHEMA:
            raise IndexMismatchError(
                f"the index at {self.location} was built with embeddings {built_with!r} "
                f"(schema {meta.get('schema')}), but {self.embeddings_name!r} (schema {SCHEMA}) is configured: "
                + (hint or f"run `assistant index --rebuild`, or set ASSISTANT_EMBEDDINGS={built_with}")
            )

    def _open_store(self, create: bool) -> Chroma:
        return Chroma(
            collection_name=self.collection_name,
            embedding_function=self.embeddings,
            client=self.client,
            collection_metadata={"embeddings": self.embeddings_name, "schema": SCHEMA},
            collection_configuration={"hnsw": {"space": "cosine"}},
            create_collection_if_not_exists=create,
        )


def _record_metadata(chunk: Chunk, doc_sha256: str) -> dict[str, Any]:
    tokens = tokenize(" ".join((chunk.title, chunk.section, chunk.text)))
    return {
        "source": chunk.source,
        "title": chunk.title,
        "section": chunk.section,
        "paragraph": chunk.paragraph,
        "start": chunk.start,
        "end": chunk.end,
        "doc_sha256": doc_sha256,
        "tokens": " ".join(tokens),
    }


def _chunk_from_record(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=chunk_id,
        source=str(meta["source"]),
        title=str(meta.get("title", "")),
        section=str(meta.get("section", "")),
        paragraph=int(meta.get("paragraph", 0)),
        start=int(meta["start"]),
        end=int(meta["end"]),
        text=text,
    )
