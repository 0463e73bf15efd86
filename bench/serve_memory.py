"""Peak memory of `assistant serve` with the default models (e5-small, the local Qwen model).

Indexes the article into a temporary directory, starts `assistant serve` on a free loopback port,
waits for /readyz, asks a few questions over HTTP (`POST /api/ask`, the real model answers), and
samples the resident memory of the server and its children (the chat model's process) every 0.2 s; at
the end, each process's RSS at rest, split into anonymous memory and mapped files. The peak is VmHWM from
/proc/PID/status, summed over the process tree, and the largest sampled total. The server is
stopped at the end. Records part `serve_memory` of bench/out/results.json.
Run: `.venv/bin/python bench/serve_memory.py [--quick]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import (
    ARTICLE_CORPUS,
    assistant_cmd,
    background,
    dur,
    free_port,
    markdown_table,
    memory_mb,
    part_parser,
    process_tree,
    run_part,
    timed_run,
    wait_for_http,
)

# Our own questions (not from the eval sets): Chinese, English (translated for retrieval), and a quote.
QUESTIONS = (
    ("阶跃星辰这一轮融了多少钱？", False),
    ("What is the total parameter count of Step-3?", False),
    ("阶跃星辰的创始人是谁？", False),
    ("阶跃星辰的投资方有哪些？", True),
)


class MemorySampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped; keeps the largest total."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.largest_mb = pid, every, 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.largest_mb = max(self.largest_mb, tree_memory(self.pid)["rss_mb"])


def tree_memory(pid: int) -> dict[str, Any]:
    """Current and peak RSS (MB) summed over `pid` and its descendants; `processes` counted, and `each`
    process's RSS split into anonymous memory and mapped files (the server; the chat model's process)."""
    pids = process_tree(pid)
    each = [memory_mb(p) for p in pids]
    return {
        "rss_mb": round(sum(m["rss_mb"] for m in each), 1),
        "peak_rss_mb": round(sum(m["peak_rss_mb"] for m in each), 1),
        "processes": len(each),
        "each": [{"process": process_name(p)} | memory_mb(p) | rss_split_mb(p) for p in pids],
    }


def process_name(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in command if w]
    return "model process" if "assistant.models.worker" in words else " ".join(Path(w).name for w in words[1:3])


def rss_split_mb(pid: int) -> dict[str, float]:
    """RssAnon and RssFile of one process, in MB."""
    values = {"RssAnon": 0.0, "RssFile": 0.0}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {"anon_mb": 0.0, "file_mb": 0.0}
    for line in lines:
        key = line.split(":", 1)[0]
        if key in values:
            values[key] = int(line.split()[1]) / 1024
    return {"anon_mb": round(values["RssAnon"], 1), "file_mb": round(values["RssFile"], 1)}


def ask_all(base: str, questions: tuple[tuple[str, bool], ...]) -> list[dict[str, Any]]:
    """POST each question; client latency and the server's own timings."""
    answers = []
    with httpx.Client(base_url=base, timeout=600, trust_env=False) as http:
        for question, fast in questions:
            started = time.perf_counter()
            reply = http.post("/api/ask", json={"question": question, "fast": fast})
            reply.raise_for_status()
            body = reply.json()
            answers.append(
                {"question": question, "fast": fast, "latency_s": round(time.perf_counter() - started, 2)}
                | {"refused": body["refused"], "timings": body["timings"], "llm": body["models"]["llm"]}
            )
    return answers


def measure(args: argparse.Namespace) -> dict[str, Any]:
    questions = QUESTIONS[:1] if args.quick else QUESTIONS
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as name:
        tmp = Path(name)
        where = ["--corpus", str(ARTICLE_CORPUS), "--index-dir", str(tmp / "index")]
        timed_run(assistant_cmd("index", *where))
        port = free_port()
        with background(assistant_cmd("serve", "--port", str(port), *where), tmp / "serve.log") as proc:
            ready_s = wait_for_http(f"http://127.0.0.1:{port}/readyz", proc)
            idle = tree_memory(proc.pid)
            sampler = MemorySampler(proc.pid)
            sampler.start()
            answers = ask_all(f"http://127.0.0.1:{port}", questions)
            sampler.stopped.set()
            sampler.join()
            final = tree_memory(proc.pid)
    return {
        "ready_s": round(ready_s, 2),
        "idle": idle,
        "after_questions": final,
        "peak_rss_mb": final["peak_rss_mb"],
        "largest_sampled_rss_mb": max(sampler.largest_mb, final["rss_mb"]),
        "answers": answers,
    }


def table(part: dict[str, Any]) -> str:
    rows = [
        ["ready (process start to /readyz 200)", dur(part["ready_s"])],
        ["RSS when ready (before any question)", f"{part['idle']['rss_mb']:.0f} MB"],
        ["peak RSS (VmHWM, server + children)", f"{part['peak_rss_mb']:.0f} MB"],
        ["largest sampled RSS", f"{part['largest_sampled_rss_mb']:.0f} MB"],
        ["RSS after the questions, at rest", f"{part['after_questions']['rss_mb']:.0f} MB"],
        ["processes", part["after_questions"]["processes"]],
    ]
    rows += [
        [f"· {p['process']} at rest", f"{p['rss_mb']:.0f} MB ({p['anon_mb']:.0f} anonymous, {p['file_mb']:.0f} files)"]
        for p in part["after_questions"].get("each", [])
    ]
    rows += [
        [f"answer {'(fast) ' if a['fast'] else ''}{a['question']}", f"{dur(a['latency_s'])} ({a['llm']})"]
        for a in part["answers"]
    ]
    return markdown_table(["`assistant serve`", "value"], rows)


def main() -> int:
    args = part_parser(__doc__).parse_args()
    return run_part("serve_memory", args, measure, table)


if __name__ == "__main__":
    sys.exit(main())
