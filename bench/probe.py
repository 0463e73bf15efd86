"""One measured step in a fresh process, so its memory is its own: `build` an index or `search` it.

`probe.py build --corpus C --index-dir I [--chroma-url U]` indexes C, then indexes it again unchanged,
and prints one JSON line: documents, chunks, build and re-index seconds, peak RSS.
`probe.py search --corpus C --index-dir I --questions Q.jsonl [--scored]` warms up with one search,
then times every question three ways (embedding the query alone, dense search, the hybrid search
the assistant uses) and prints p50/p95 of each, hit@k when scored, and the process's memory.
Run by `scaling.py` and `bench_retrieval.py`; choosing corpora and tabulating is theirs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import self_memory_mb, summary

from assistant.core import Assistant
from assistant.factory import build_assistant
from assistant.quality.evaluate import Item, is_hit, read_items
from assistant.settings import Settings

DENSE_DEPTH = 30  # how deep the hybrid retriever's dense search looks
WRITE_BATCH = 32  # chunks embedded between progress reports (the index's batch size)


def open_assistant(args: argparse.Namespace) -> Assistant:
    settings = Settings.load(env={}, corpus=args.corpus, index_dir=args.index_dir, chroma_url=args.chroma_url)
    return build_assistant(settings)


def build(args: argparse.Namespace) -> dict[str, Any]:
    """Index from scratch (model load included), then again with nothing changed."""
    started = time.perf_counter()
    assistant = open_assistant(args)
    first = assistant.build_index(progress=report_progress)
    build_s = time.perf_counter() - started
    again = assistant.build_index()
    return {
        "documents": first.documents,
        "chunks": first.chunks,
        "embedded": first.embedded,
        "build_s": round(build_s, 2),
        "sync_s": round(first.seconds, 2),
        "chunks_per_s": round(first.embedded / first.seconds, 1) if first.seconds else None,
        "reindex_unchanged_s": round(again.seconds, 3),
        "reindex_embedded": again.embedded,
        **self_memory_mb(),
    }


def report_progress(done: int, total: int) -> None:
    """A line on stderr at every tenth of the chunks embedded."""
    if total and (done == total or done * 10 // total != (done - WRITE_BATCH) * 10 // total):
        print(f"  embedded {done:,}/{total:,} chunks", file=sys.stderr, flush=True)


def timers(assistant: Assistant) -> dict[str, Callable[[Item], Any]]:
    """The ways one question is timed: the hybrid search always; its parts where the index exposes them."""
    ways: dict[str, Callable[[Item], Any]] = {
        "hybrid": lambda item: assistant.search(item.turns[-1], k=5, history=item.turns[:-1]),
    }
    index = assistant.index
    if hasattr(index, "dense_search") and hasattr(index, "embeddings"):
        ways["embed_query"] = lambda item: index.embeddings.embed_query(item.turns[-1])
        ways["dense"] = lambda item: index.dense_search(item.turns[-1], DENSE_DEPTH)
    return ways


def search(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then time each question every way; hit@k of the hybrid results when scored."""
    items = read_items(Path(args.questions))
    started = time.perf_counter()
    assistant = open_assistant(args)
    assistant.search(items[0].turns[-1], k=5)  # loads the model and builds the keyword index
    ready_s = time.perf_counter() - started
    ways = timers(assistant)
    times: dict[str, list[float]] = {name: [] for name in ways}
    first_hits: list[int | None] = []
    for item in items:
        for name, way in ways.items():
            t = time.perf_counter()
            result = way(item)
            times[name].append(time.perf_counter() - t)
            if name == "hybrid" and args.scored and item.answerable and item.evidence:
                first_hits.append(next((h.rank for h in result if is_hit(h, item)), None))
    return {
        "questions": len(items),
        "ready_s": round(ready_s, 2),
        **{name: summary(values) for name, values in times.items()},
        **hits_at(first_hits, (1, 5)),
        **self_memory_mb(),
    }


def hits_at(first_hits: list[int | None], ks: tuple[int, ...]) -> dict[str, Any]:
    """hit@k from the rank of each question's first hit (None: not in the results); {} if none scored."""
    if not first_hits:
        return {}
    shares = {f"hit@{k}": round(sum(r is not None and r <= k for r in first_hits) / len(first_hits), 3) for k in ks}
    return {"scored_questions": len(first_hits), **shares}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["build", "search"])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--index-dir", required=True)
    parser.add_argument("--chroma-url")
    parser.add_argument("--questions", help="JSON Lines eval items (search)")
    parser.add_argument("--scored", action="store_true", help="the questions' evidence refers to this corpus")
    args = parser.parse_args()
    print(json.dumps(build(args) if args.step == "build" else search(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
