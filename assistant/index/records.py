"""Records: how a `Chunk` is stored in Chroma and read back, and what a sync must change.

A record holds the chunk's text, its metadata (source, title, section, paragraph, offsets, the
document's sha256) and its jieba tokens, so the keyword index is persisted with the vectors.
`Plan.between` compares what is stored with the corpus; embedding and writing are `writing`'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.corpus.chunk import chunk_document
from assistant.index.keyword import tokenize
from assistant.types import Chunk, Document


@dataclass(frozen=True)
class StoredChunk:
    chunk: Chunk
    tokens: list[str]


def embed_text(chunk: Chunk) -> str:
    """What the embedding model sees: the chunk with its title and section as context."""
    context = " · ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{context}\n{chunk.text}" if context else chunk.text


@dataclass(frozen=True)
class Plan:
    """What a sync must do: embed the chunks of new or changed documents, drop those of the rest."""

    stale: list[Document]  # new or changed documents
    removed: list[str]  # sources no longer in the corpus
    chunks: list[Chunk]  # the stale documents' chunks
    doc_sha: dict[str, str]
    old_ids: set[str]  # stored chunk ids of stale and removed documents

    @classmethod
    def between(cls, existing: dict[str, dict[str, Any]], documents: Sequence[Document]) -> Plan:
        wanted = {d.source for d in documents}
        removed = sorted(set(existing) - wanted)
        stale = [d for d in documents if existing.get(d.source, {}).get("sha256") != d.sha256]
        return cls(
            stale=stale,
            removed=removed,
            chunks=[c for d in stale for c in chunk_document(d)],
            doc_sha={d.source: d.sha256 for d in stale},
            old_ids={cid for s in removed + [d.source for d in stale] for cid in existing.get(s, {}).get("ids", [])},
        )


def stored_documents(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """source -> {sha256, title, chunks, ids} from the metadatas of a `get`."""
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


def record_metadata(chunk: Chunk, doc_sha256: str) -> dict[str, Any]:
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


def chunk_from_record(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
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
