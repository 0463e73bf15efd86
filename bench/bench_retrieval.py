"""Retrieval benchmark: index build time, no-change re-index time, hit@k and query latency.

Indexes the article and the CMRC 2018 trial corpus (256 passages) into fresh temporary indexes
with the configured embeddings (default e5-small), re-indexes each unchanged, then asks every
answerable eval question. Writes bench/out/retrieval.json and prints a table.
Run: `make bench` (or `.venv/bin/python bench/bench_retrieval.py [--shared ../shared]`).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.evaluate import read_items, retrieval_metrics  # noqa: E402
from assistant.factory import build_assistant  # noqa: E402
from assistant.settings import Settings  # noqa: E402


def cold_reindex_seconds(corpus: Path, index_dir: Path, embeddings: str) -> float:
    """A whole `assistant index` process on an unchanged corpus: start-up included."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "index",
            "--corpus",
            str(corpus),
            "--index-dir",
            str(index_dir),
            "--embeddings",
            embeddings,
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def run_set(name: str, corpus: Path, qa: Path, embeddings: str, workdir: Path) -> dict[str, object]:
    index_dir = workdir / name
    assistant = build_assistant(Settings.load(env={}, corpus=corpus, index_dir=index_dir, embeddings=embeddings))
    first = assistant.build_index()
    again = assistant.build_index()
    metrics = retrieval_metrics(lambda q, k, h: assistant.search(q, k=k, history=h), read_items(qa))
    metrics.pop("not_first")
    return {
        "set": name,
        "documents": first.documents,
        "chunks": first.chunks,
        "index_s": round(first.seconds, 2),
        "chunks_per_s": round(first.embedded / first.seconds, 1),
        "reindex_unchanged_s": round(again.seconds, 3),
        "reindex_unchanged_process_s": round(cold_reindex_seconds(corpus, index_dir, embeddings), 2),
        **metrics,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the shared/ directory")
    parser.add_argument("--embeddings", default="e5-small")
    args = parser.parse_args()
    shared = Path(args.shared)
    sets = [
        ("article", ROOT / "corpus", shared / "eval" / "article_qa_dev.jsonl"),
        ("cmrc-trial", shared / "eval" / "cmrc2018-trial" / "corpus", shared / "eval" / "cmrc2018-trial" / "qa.jsonl"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_set(name, corpus, qa, args.embeddings, Path(tmp)) for name, corpus, qa in sets]
    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores",
        "embeddings": args.embeddings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "results": rows,
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    cols = [
        "set",
        "documents",
        "chunks",
        "index_s",
        "chunks_per_s",
        "reindex_unchanged_s",
        "reindex_unchanged_process_s",
        "questions",
        "hit@1",
        "hit@3",
        "hit@5",
        "latency_p50_s",
        "latency_p95_s",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    print(f"\nembeddings {args.embeddings}; peak RSS {result['peak_rss_mb']} MB; {result['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
