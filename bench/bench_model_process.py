"""The cost of running the chat model in a process of its own (issue 28): the same completions in process and
through `assistant.models.worker`, interleaved in one run, plus the transport alone.

Each round asks one question (a different one per round, the same for both sides), with the answer prompt's
shape: a system line, a few passages and the question. Both sides run the packaged model with the same
settings; the in-process side calls the very function the child runs (`worker.generate`). Per side: median
wall time, prompt and generated tokens, and tokens/s; the paired difference per round is the boundary's
cost. The transport alone: a socket pair carrying one message per generated token, as a completion does.
Run: `.venv/bin/python bench/bench_model_process.py [--rounds N]`; prints JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from assistant.models import build, model_file, model_load, model_process, worker

PASSAGES = (
    "[1] 阶跃星辰完成 B+ 轮融资，金额为 50 亿元人民币。\n"
    "[2] Step-3 模型总参数量 321B，每次推理激活 38B 参数。\n"
    "[3] 公司由前微软全球副总裁姜大昕创立。\n"
)
QUESTIONS = ("融资金额是多少？", "Step-3 激活多少参数？", "创始人是谁？", "总参数量是多少？", "这轮是什么轮次？")


class Quiet:
    """Stands in for the child's connection in process: no cancel ever arrives."""

    def poll(self) -> bool:
        return False


def request(question: str, cores: int) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "只根据给出的段落回答，用两三句话解释，用 [n] 标出处。"},
        {"role": "user", "content": f"{PASSAGES}\n问题：{question}"},
    ]
    return {"op": "complete", "context": 0, "messages": messages, "stop": [], "temperature": 0.0,
            "max_tokens": 48, "repeat_penalty": 1.0, "threads": (cores, cores), "timeout": None}  # fmt: skip


def timed(replies: Any) -> dict[str, float]:
    started = time.perf_counter()
    first, done = 0.0, {}
    for reply in replies:
        first = first or time.perf_counter() - started
        if reply.get("done"):
            done = reply
    total = time.perf_counter() - started
    return {"total_s": total, "first_s": first, "prompt_tokens": done["prompt_tokens"],
            "cached": done["cached"], "generated": done["output_tokens"]}  # fmt: skip


def transport_us(messages: int = 2000) -> float:
    """Microseconds per token message over a socket pair (sender and reader in two threads)."""
    ours, theirs = socket.socketpair()
    send, receive = Connection(theirs.detach()), Connection(ours.detach())

    def sender() -> None:
        for _ in range(messages):
            send.send({"text": "字"})
        send.send({"done": True})

    started = time.perf_counter()
    thread = threading.Thread(target=sender)
    thread.start()
    while not receive.recv().get("done"):
        pass
    thread.join()
    return (time.perf_counter() - started) / messages * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    path = model_file.packaged_model_path()
    local = model_load.load(Path(path), 4096, cores, cores)
    process = model_process.process_for(Path(path), 4096)
    process.ready()
    rows: dict[str, list[dict[str, float]]] = {"in process": [], "model process": []}
    for i in range(args.rounds):
        one = request(QUESTIONS[i % len(QUESTIONS)] + f"（第 {i + 1} 次）", cores)
        sides = [("in process", lambda r=one: worker.generate(local, r, Quiet())),  # type: ignore[arg-type]
                 ("model process", lambda r=one: process.complete(r, None))]  # fmt: skip
        for name, run in sides if i % 2 else sides[::-1]:  # alternate who goes first
            rows[name].append(timed(run()))
    paired = [b["total_s"] - a["total_s"] for a, b in zip(rows["in process"], rows["model process"], strict=True)]
    result = {
        "machine": {"cores": cores, "llama.cpp": build.system_info().strip()},
        "rounds": args.rounds,
        "sides": {name: summarise(values) for name, values in rows.items()},
        "model_process_minus_in_process_ms": {
            "median": round(statistics.median(paired) * 1000, 1),
            "min": round(min(paired) * 1000, 1),
            "max": round(max(paired) * 1000, 1),
        },
        "transport_us_per_token": round(transport_us(), 1),
    }
    print(json.dumps(result, ensure_ascii=False, indent=1))
    process.stop()
    return 0


def summarise(values: list[dict[str, float]]) -> dict[str, float]:
    total = statistics.median(v["total_s"] for v in values)
    generated = statistics.median(v["generated"] for v in values)
    decode_s = statistics.median(v["total_s"] - v["first_s"] for v in values)
    return {
        "median_total_s": round(total, 3),
        "median_first_token_s": round(statistics.median(v["first_s"] for v in values), 3),
        "prompt_tokens": statistics.median(v["prompt_tokens"] for v in values),
        "prompt_tokens_evaluated": statistics.median(v["prompt_tokens"] - v["cached"] for v in values),
        "generated_tokens": generated,
        "generated_tokens_per_s": round(generated / decode_s, 1) if decode_s else 0.0,
    }


if __name__ == "__main__":
    raise SystemExit(main())
