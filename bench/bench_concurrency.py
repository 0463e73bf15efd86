"""Concurrency benchmark: N clients asking the real server (`build_server`) at once over loopback.

Indexes corpus/ with fake embeddings into a temporary index, serves it with uvicorn on a free
127.0.0.1 port (rate limit off, `--queue-size` waiting places), and lets `--clients` threads POST
/api/ask in a loop for `--seconds`; a 503 (busy) is retried after its Retry-After. Reports throughput,
latency, queue wait (client latency minus the server's `timings.total_s`), busy replies, errors, answers
sent to the wrong client and /healthz latency under load. The default chat model sleeps `--delay` s
per call and quotes passage [1], so no real model runs. Writes bench/out/concurrency.json (or `--out`).
Run: `.venv/bin/python bench/bench_concurrency.py [--clients 50 --seconds 60 --queue-size 8] [--llm NAME]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.core import Assistant  # noqa: E402
from assistant.factory import build_assistant  # noqa: E402
from assistant.interfaces.http.server import build_server  # noqa: E402
from assistant.settings import Settings  # noqa: E402

QUESTIONS = ("阶跃星辰融资了多少？", "Step-3 总参数量是多少？", "本轮融资的投资方有哪些？", "投后估值是多少？")
FIRST_SENTENCE = re.compile(r"^\[1\] (.+?[。！？])", re.M)


class SleepingChat(BaseChatModel):
    """Sleeps `delay` s (standing in for generation), then quotes passage [1]'s first sentence, citing [1]."""

    delay: float = 0.2

    @property
    def _llm_type(self) -> str:
        return "sleeping-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        time.sleep(self.delay)
        found = FIRST_SENTENCE.search(messages[-1].text)
        reply = f"{found.group(1)[:-1]} [1]{found.group(1)[-1]}" if found else ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


@dataclass
class Tally:
    """One client's record, merged across clients at the end."""

    latency: list[float] = field(default_factory=list)  # the POST that got the answer
    wait: list[float] = field(default_factory=list)  # that latency minus the server's total_s
    end_to_end: list[float] = field(default_factory=list)  # first attempt to answer, busy retries included
    errors: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)  # every HTTP status received, 503s included
    refused: int = 0
    busy_503: int = 0
    mixed_up: int = 0  # answers to a question this client did not send
    abandoned_at_end: int = 0  # still being turned away (503) when the time was up


def build(llm: str, delay: float, queue_size: int, workdir: Path) -> Assistant:
    options = {"api_queue_size": queue_size, "api_rate_limit": 0, "llm": llm or "fake", "embeddings": "fake"}
    settings = Settings.load(env={}, corpus=ROOT / "corpus", index_dir=workdir, **options)
    assistant = build_assistant(settings, llm=None if llm else SleepingChat(delay=delay))
    assistant.build_index()
    return assistant


@contextmanager
def serving(assistant: Assistant) -> Iterator[str]:
    """The server for `assistant` on a free loopback port; yields its base URL."""
    config = uvicorn.Config(build_server(assistant), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


def ask_once(http: httpx.Client, question: str, history: list[str], deadline: float, tally: Tally) -> None:
    """One question until it is answered (retrying 503s after Retry-After) or the time is up."""
    first = time.perf_counter()
    while time.monotonic() < deadline:
        sent = time.perf_counter()
        try:
            r = http.post("/api/ask", json={"question": question, "history": history})
        except httpx.HTTPError as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            return
        tally.statuses[r.status_code] += 1
        if r.status_code == 503 and "Retry-After" in r.headers:
            tally.busy_503 += 1
            time.sleep(max(0.0, min(float(r.headers["Retry-After"]), deadline - time.monotonic())))
            continue
        if r.status_code != 200:
            tally.errors.append(f"{r.status_code}: {r.text[:200]}")
            return
        done, body = time.perf_counter(), r.json()
        tally.latency.append(done - sent)
        tally.wait.append(max(0.0, done - sent - body["timings"]["total_s"]))
        tally.end_to_end.append(done - first)
        tally.refused += body["refused"]
        tally.mixed_up += body["question"] != question
        return
    tally.abandoned_at_end += 1


def client(n: int, base: str, deadline: float, max_requests: int, tally: Tally) -> None:
    history = [f"client {n} earlier turn"]
    with httpx.Client(base_url=base, timeout=300, trust_env=False) as http:
        for i in range(max_requests):
            if time.monotonic() >= deadline:
                return
            # numbered （client-sequence）: unique, yet no topic word that would make the answer a refusal
            ask_once(http, f"{QUESTIONS[(n + i) % len(QUESTIONS)]}（{n}-{i}）", history, deadline, tally)


def sample_health(base: str, stop: threading.Event, out: list[float]) -> None:
    """GET /healthz every 0.5 s until `stop` (at most 10 minutes), recording each latency (10 s on failure)."""
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as http:
        for _ in range(1200):
            started = time.perf_counter()
            try:
                ok = http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append(time.perf_counter() - started if ok else 10.0)
            if stop.wait(0.5):
                return


def pct(values: list[float], p: int) -> float:
    """The nearest-rank `p`th percentile (NaN when there are no values)."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3) if ordered else float("nan")


def load(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the clients and the /healthz sampler to the end; the summary."""
    tallies, stop, health = [Tally() for _ in range(args.clients)], threading.Event(), list[float]()
    deadline, started = time.monotonic() + args.seconds, time.perf_counter()
    sampler = threading.Thread(target=sample_health, args=(base, stop, health))
    clients = [
        threading.Thread(target=client, args=(n, base, deadline, args.requests, t)) for n, t in enumerate(tallies)
    ]
    for thread in (sampler, *clients):
        thread.start()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    return summary(args, tallies, elapsed, health)


def summary(args: argparse.Namespace, tallies: list[Tally], elapsed: float, health: list[float]) -> dict[str, Any]:
    every = {k: [v for t in tallies for v in getattr(t, k)] for k in ("latency", "wait", "end_to_end", "errors")}
    total = {k: sum(getattr(t, k) for t in tallies) for k in ("refused", "busy_503", "abandoned_at_end", "mixed_up")}
    latency, wait, health_max = every["latency"], every["wait"], max(health, default=float("nan"))
    statuses = sum((t.statuses for t in tallies), Counter[int]())
    return {
        "clients": args.clients,
        "queue_size": args.queue_size,
        "llm": args.llm or f"sleeping fake, {args.delay} s a call",
        "duration_s": round(elapsed, 1),
        "answered": len(latency),
        "answers_per_s": round(len(latency) / elapsed, 2),
        "answers_per_client_min_max": [min(len(t.latency) for t in tallies), max(len(t.latency) for t in tallies)],
        "clients_never_answered": sum(not t.latency for t in tallies),
        **total,
        "errors": len(every["errors"]),
        "http_statuses": dict(sorted(statuses.items())),
        "5xx_other_than_busy_503": sum(n for code, n in statuses.items() if code >= 500) - total["busy_503"],
        **{f"latency_p{p}_s": pct(latency, p) for p in (50, 95, 100)},
        **{f"queue_wait_p{p}_s": pct(wait, p) for p in (50, 95)},
        "with_retries_p95_s": pct(every["end_to_end"], 95),
        "healthz_samples": len(health),
        "healthz_p95_s": pct(health, 95),
        "healthz_max_s": round(health_max, 3),
        "healthz_under_0.5s": health_max < 0.5,
        "error_examples": every["errors"][:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="stop starting questions after this long")
    parser.add_argument("--requests", type=int, default=10_000, help="at most this many questions per client")
    parser.add_argument("--queue-size", type=int, default=8, help="api_queue_size: waiting places before 503")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the default fake model takes a call")
    parser.add_argument("--llm", default="", help="a chat model name instead (e.g. llama-cpp, fake:<reply>)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "concurrency.json"), help="where to write JSON")
    args = parser.parse_args()
    logging.getLogger("assistant.interfaces.http.errors").setLevel(logging.ERROR)  # one "turned a request away" per 503
    with tempfile.TemporaryDirectory() as tmp, serving(build(args.llm, args.delay, args.queue_size, Path(tmp))) as url:
        result = load(url, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print("| metric | value |\n|---|---|")
    print("\n".join(f"| {key} | {value} |" for key, value in result.items() if key != "error_examples"))
    print("".join(f"error: {example}\n" for example in result["error_examples"]), end="")
    return 0 if not result["errors"] and not result["mixed_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
