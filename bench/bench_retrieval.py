"""Retrieval against the embedded store and against a Chroma server: hit@k, query latency, build time.

Starts `chroma run --path TMP --port FREE` (the chroma CLI of this venv), indexes the article and the
CMRC 2018 trial corpus (256 passages) into it and into embedded stores in a temporary directory, then
asks every answerable eval question of each set (blank ones left out) against both, back to back,
after one warm-up search.
The metrics are `assistant eval-retrieval`'s. Records part `stores` of bench/out/results.json.
Run: `.venv/bin/python bench/bench_retrieval.py [--quick]` (quick: the first 20 CMRC passages).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import corpora
from common import (
    BIN,
    background,
    dur,
    free_port,
    markdown_table,
    part_parser,
    run_part,
    wait_for_http,
)

from assistant.core import Assistant
from assistant.factory import build_assistant
from assistant.quality.evaluate import retrieval_metrics
from assistant.settings import Settings

STORES = ("embedded", "server")


@contextmanager
def chroma_server(tmp: Path) -> Iterator[str]:
    """A `chroma run` server on a free loopback port, storing in `tmp`; yields its URL."""
    port = free_port()
    cmd = [str(BIN / "chroma"), "run", "--path", str(tmp / "server"), "--host", "127.0.0.1", "--port", str(port)]
    with background(cmd, tmp / "chroma.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/api/v2/heartbeat", proc, timeout=120)
        yield url


def sets_for(args: argparse.Namespace, tmp: Path) -> list[corpora.Corpus]:
    """The article and the CMRC trial set (all of it, or its first 20 passages with --quick)."""
    if args.quick:
        return [corpora.article(), corpora.cmrc_subset(20, tmp / "cmrc-20", max_questions=10_000)]
    return [corpora.article(), corpora.cmrc()]


def build(corpus: corpora.Corpus, index_dir: Path, url: str | None) -> tuple[Assistant, dict[str, Any]]:
    """An assistant over `corpus` in the embedded store at `index_dir`, or on the server at `url`."""
    settings = Settings.load(env={}, corpus=corpus.path, index_dir=index_dir, chroma_url=url)
    started = time.perf_counter()
    assistant = build_assistant(settings)
    report = assistant.build_index()
    again = assistant.build_index()
    built = {"chunks": report.chunks, "build_s": round(time.perf_counter() - started, 2)}
    return assistant, built | {"reindex_unchanged_s": round(again.seconds, 3)}


def search_metrics(assistant: Assistant, corpus: corpora.Corpus) -> dict[str, Any]:
    """`assistant eval-retrieval`'s hit@k and latency, after one warm-up search."""
    assistant.search(corpus.questions[0].turns[-1], k=5)
    metrics = retrieval_metrics(lambda q, k, h: assistant.search(q, k=k, history=h), corpus.questions)
    metrics.pop("not_first")
    return metrics


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as name, chroma_server(Path(name)) as url:
        tmp = Path(name)
        for corpus in sets_for(args, tmp):
            print(f"stores: indexing {corpus.name} in both stores ...", file=sys.stderr, flush=True)
            built = {s: build(corpus, tmp / s / corpus.name, url if s == "server" else None) for s in STORES}
            for store, (assistant, build_info) in built.items():
                rows.append({"set": corpus.name, "store": store, **build_info, **search_metrics(assistant, corpus)})
    return {"embeddings": "e5-small", "chroma": "chromadb 1.5.9 `chroma run`, loopback", "rows": rows}


def table(part: dict[str, Any]) -> str:
    headers = ["set", "store", "chunks", "build", "re-index unchanged", "questions", "hit@1", "hit@3", "hit@5"]
    headers += ["search p50", "search p95"]
    rows = [
        [r["set"], r["store"], r["chunks"], dur(r["build_s"]), dur(r["reindex_unchanged_s"]), r["questions"]]
        + [r["hit@1"], r["hit@3"], r["hit@5"], dur(r["latency_p50_s"]), dur(r["latency_p95_s"])]
        for r in part["rows"]
    ]
    return markdown_table(headers, rows)


def main() -> int:
    args = part_parser(__doc__).parse_args()
    return run_part("stores", args, measure, table)


if __name__ == "__main__":
    sys.exit(main())
