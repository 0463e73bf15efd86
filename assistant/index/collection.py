"""Index: `Document`s in, a Chroma collection of chunk vectors out (and chunks back for search).

Chroma, through `langchain-chroma`, is the one vector store: embedded in the index directory or a
server (`storage`). Records carry each chunk's text, metadata and jieba tokens (`records`), so the
keyword index is rebuilt from them by `retrieve`. The collection records which embedding model
built it; a query with another model is refused. `sync` re-embeds only chunks whose text is new
(`writing`; an unchanged corpus costs one metadata read) and writes into a new build that is switched
in at the end, so readers never see a half-written index; `refresh` notices a build switched in elsewhere.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from assistant.errors import AssistantError, IndexCorruptError, IndexMismatchError, IndexNotFoundError
from assistant.index.records import Plan, StoredChunk, chunk_from_record, stored_documents
from assistant.index.storage import Storage, is_missing
from assistant.index.writing import Progress, SyncReport, write_plan
from assistant.types import Document

log = logging.getLogger(__name__)

SCHEMA = 1


class Index:
    """One Chroma collection of chunks, embedded with one named model, in a `Storage`."""

    def __init__(self, storage: Storage, collection: str, embeddings: Embeddings, embeddings_name: str) -> None:
        self.storage = storage
        self.collection_name = collection
        self.embeddings = embeddings
        self.embeddings_name = embeddings_name
        self.generation = 0  # changes when another build is switched in: keyword indexes must be rebuilt
        self._version = storage.version()
        self._client: Any = None
        self._vectors: Chroma | None = None
        self._retired: list[Any] = []  # clients of replaced builds, closed when no request still reads them
        self._pins: dict[int, int] = {}  # id(client) -> requests (and reads) still on it
        self._released: collections.deque[Any] = collections.deque()  # pins given up, counted under the lock
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        return f"{self.storage.location} (collection {self.collection_name})"

    # -- the open client -------------------------------------------------------------------------

    def refresh(self) -> int:
        """Reopen if a new build was switched in (by any process) since the last call; one `stat`."""
        version = self.storage.version()
        if version != self._version:
            with self._lock:
                if version != self._version:
                    self._reset()
                    self._version = version
                    self.generation += 1
        return self.generation

    def close(self) -> None:
        with self._lock:
            self._reset()
            for client in self._retired:
                self.storage.close(client)
            self._retired.clear()

    def _client_or_none(self) -> Any | None:
        with self._lock:
            if self._client is None:
                self._client = self.storage.open()
            return self._client

    def _reset(self) -> None:
        """Stop using the open client. It is closed as soon as no request reads it (`pin`): a request keeps
        its build however many builds are switched in meanwhile."""
        with self._lock:
            if self._client is not None:
                self._retired.append(self._client)
            self._client, self._vectors = None, None
            self._settle()

    def pin(self) -> Callable[[], None]:
        """Keep the open client (and so its build) open until the returned `release` is called. `release`
        never waits for a lock (it may run in a garbage collection, in any thread): it leaves the pin in a
        queue that the next call holding the lock settles."""
        with self._lock:
            self._settle()
            client = self._client_or_none()
            if client is None:
                return lambda: None
            self._pins[id(client)] = self._pins.get(id(client), 0) + 1
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return
            released.set()
            self._released.append(client)
            if self._lock.acquire(blocking=False):
                try:
                    self._settle()
                finally:
                    self._lock.release()

        return release

    def _settle(self) -> None:
        """Count the pins given up, and close each replaced client no request reads any more (lock held)."""
        while self._released:
            key = id(self._released.popleft())
            self._pins[key] -= 1
            if self._pins[key] == 0:
                del self._pins[key]
        for client in [c for c in self._retired if id(c) not in self._pins]:
            self._retired.remove(client)
            self.storage.close(client)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Chroma's exceptions as errors that say what to do; after one, the next call reconnects. The open
        client stays open for the block, whatever build is switched in meanwhile."""
        release: Callable[[], None] = lambda: None  # noqa: E731
        try:
            release = self.pin()
            yield
        except AssistantError:
            raise
        except Exception as exc:
            error = self.storage.failure(exc)
            if error is None and is_missing(exc):  # e.g. rebuilt on the server by another process
                error = IndexNotFoundError(
                    f"the index at {self.location} was replaced or removed: try again, or run `assistant index`"
                )
            if error is None:
                raise
            self._reset()
            raise error from exc
        finally:
            release()

    # -- reading ---------------------------------------------------------------------------------

    @property
    def vectors(self) -> Chroma:
        """The LangChain vector store over the collection; refuses a missing or mismatched index."""
        vectors = self._vectors
        if vectors is None:
            meta = self._collection_metadata()
            if meta is None:
                raise IndexNotFoundError(f"no index at {self.location}: run `assistant index` first")
            self._check_model(meta)
            with self._reading():
                name = self.storage.serving(self.collection_name)
                vectors = self._vectors = self._open_vectors(self._client_or_none(), name, create=False)
        return vectors

    def dense_search(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the `k` nearest chunks."""
        return self.dense_searcher()(query, k)

    def dense_searcher(self) -> DenseSearcher:
        """`dense_search` bound to the version open now: a retriever built on one version keeps searching
        it (with its keyword index) while a newer one is switched in, so no answer mixes versions."""
        with self._lock:  # the vectors and the pin are of one client
            vectors = self.vectors
            release = self.pin()
        return DenseSearcher(self, vectors, release)

    def stored_chunks(self, vectors: Chroma | None = None) -> list[StoredChunk]:
        """Every chunk in the collection (of `vectors`, a version a retriever holds; default: the one open now)
        with its keyword tokens, in document order."""
        with self._reading():
            data = (vectors or self.vectors).get(include=["documents", "metadatas"])
        stored = [
            StoredChunk(chunk_from_record(cid, text, meta), str(meta.get("tokens", "")).split())
            for cid, text, meta in zip(data["ids"], data["documents"], data["metadatas"], strict=True)
        ]
        return sorted(stored, key=lambda s: (s.chunk.source, s.chunk.start))

    def documents(self) -> dict[str, dict[str, Any]]:
        """source -> {sha256, title, chunks, ids} for what is indexed now."""
        if self._collection_metadata() is None:
            return {}
        with self._reading():
            return stored_documents(self._collection().get(include=["metadatas"]))

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
        """Make the collection hold exactly `documents`, embedding only chunks it lacks. The store writes
        a changed index aside and switches it in at the end; an unchanged corpus costs one metadata read."""
        started = time.perf_counter()
        with self.storage.locked():
            self.refresh()
            existing, readable = self._existing(rebuild)
            plan = Plan.between(existing, documents)
            embedded, total = 0, sum(d["chunks"] for d in existing.values())
            if rebuild or plan.stale or plan.removed:
                if plan.stale:  # load the model first: its errors are about the model, not the index directory
                    self.embeddings.embed_query("warm-up")
                meta = {"embeddings": self.embeddings_name, "schema": SCHEMA}
                with self.storage.writing(self.collection_name, meta, copy=readable, rebuild=rebuild) as build:
                    vectors = self._open_vectors(build.client, build.name, create=True)
                    if readable and not rebuild:  # planned again from what this build copied, which another
                        copied = build.client.get_collection(build.name).get(include=["metadatas"])  # builder may
                        existing = stored_documents(copied)  # have replaced since the first look
                        plan = Plan.between(existing, documents)
                    embedded = write_plan(vectors, self.embeddings, plan, progress, build.alive)
                    total = vectors._collection.count()
                self._reset()  # a server's collection may have been recreated: read it afresh
        self.refresh()
        return SyncReport(
            documents=len(documents),
            chunks=total,
            added=sorted(d.source for d in plan.stale if d.source not in existing),
            changed=sorted(d.source for d in plan.stale if d.source in existing),
            removed=plan.removed,
            embedded=embedded,
            seconds=time.perf_counter() - started,
            chunked=dict(collections.Counter(c.source for c in plan.chunks)),
        )

    def _existing(self, rebuild: bool) -> tuple[dict[str, dict[str, Any]], bool]:
        """What is indexed now (nothing for a rebuild), and whether the current data can be read
        (a rebuild of an unreadable index starts from nothing instead of a copy)."""
        try:
            meta = self._collection_metadata()
        except IndexCorruptError:
            if not rebuild:
                raise
            return {}, False
        if meta is None or rebuild:
            return {}, True
        self._check_model(meta, hint="run `assistant index --rebuild` to re-embed with the configured model")
        return self.documents(), True

    # -- helpers ---------------------------------------------------------------------------------

    def _collection(self) -> Any:
        """Chroma's own collection object (cheaper than LangChain's store when only reading records)."""
        client = self._client_or_none()
        if client is None:
            raise IndexNotFoundError(f"no index at {self.location}: run `assistant index` first")
        return client.get_collection(self.storage.serving(self.collection_name))

    def _collection_metadata(self) -> dict[str, Any] | None:
        with self._reading():
            try:
                return dict(self._collection().metadata or {})
            except IndexNotFoundError:
                return None
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise

    def _check_model(self, meta: dict[str, Any], hint: str | None = None) -> None:
        built_with = meta.get("embeddings")
        if built_with != self.embeddings_name or meta.get("schema") != SCHEMA:
            raise IndexMismatchError(
                f"the index at {self.location} was built with embeddings {built_with!r} "
                f"(schema {meta.get('schema')}), but {self.embeddings_name!r} (schema {SCHEMA}) is configured: "
                + (hint or f"run `assistant index --rebuild`, or set ASSISTANT_EMBEDDINGS={built_with}")
            )

    def _open_vectors(self, client: Any, name: str, create: bool) -> Chroma:
        return Chroma(
            collection_name=name,
            embedding_function=self.embeddings,
            client=client,
            collection_metadata={"embeddings": self.embeddings_name, "schema": SCHEMA},
            collection_configuration={"hnsw": {"space": "cosine"}},
            create_collection_if_not_exists=create,
        )


class DenseSearcher:
    """`Index.dense_search` bound to one version (`vectors`): the build stays open while a retriever (a request)
    holds it, and is released when it is dropped."""

    def __init__(self, index: Index, vectors: Chroma, release: Callable[[], None]) -> None:
        self.index, self.vectors = index, vectors
        weakref.finalize(self, release)

    def __call__(self, query: str, k: int) -> list[tuple[str, float]]:
        vector = self.index.embeddings.embed_query(query)
        with self.index._reading():
            results = self.vectors.similarity_search_by_vector_with_relevance_scores(vector, k=k)
        return [(doc.id or "", 1.0 - distance) for doc, distance in results]
