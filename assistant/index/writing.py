"""Writing: a sync's `Plan` into a build, and the `SyncReport` of what it changed.

`write_plan` upserts the plan's chunks in batches of `WRITE_BATCH` with precomputed vectors: a chunk
whose text is stored already keeps its vector, only new texts are embedded; then it deletes the chunks
no document holds any more. `Index.sync` (`collection`) plans, opens the build and switches it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from assistant.index.records import Plan, embed_text, record_metadata

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
    chunked: dict[str, int] = field(default_factory=dict)  # source -> chunks, of each added or changed document


def write_plan(
    vectors: Chroma, embeddings: Embeddings, plan: Plan, progress: Progress | None, alive: Callable[[], None]
) -> int:
    """Upsert the plan's chunks (reusing the stored vectors of unchanged texts), delete obsolete ones."""
    chunks = plan.chunks
    reuse_ids = sorted(plan.old_ids & {c.chunk_id for c in chunks})
    known: dict[str, Any] = {}
    if reuse_ids:
        got = vectors.get(ids=reuse_ids, include=["embeddings"])
        known = dict(zip(got["ids"], got["embeddings"], strict=True))
    todo = [c for c in chunks if c.chunk_id not in known]
    done = 0
    if progress:
        progress(0, len(todo))
    for i in range(0, len(chunks), WRITE_BATCH):
        batch = chunks[i : i + WRITE_BATCH]
        fresh = [c for c in batch if c.chunk_id not in known]
        embedded = embeddings.embed_documents([embed_text(c) for c in fresh]) if fresh else []
        known.update(zip((c.chunk_id for c in fresh), embedded, strict=True))
        vectors._collection.upsert(  # precomputed vectors: LangChain's add_texts would re-embed
            ids=[c.chunk_id for c in batch],
            embeddings=np.asarray([known[c.chunk_id] for c in batch], dtype=np.float32),
            documents=[c.text for c in batch],
            metadatas=[record_metadata(c, plan.doc_sha[c.source]) for c in batch],
        )
        done += len(fresh)
        alive()
        if progress and fresh:
            progress(done, len(todo))
    obsolete = sorted(plan.old_ids - {c.chunk_id for c in chunks})
    if obsolete:
        vectors.delete(ids=obsolete)
    return done
