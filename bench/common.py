"""Helpers shared by the benchmark parts: paths, percentiles, machine facts, results, processes.

Every part (`scaling.py`, `cold_start.py`, `bench_answer.py`, `bench_retrieval.py`, `serve_memory.py`)
records its numbers under its own key of bench/out/results.json with `record_part`, so each runs
alone or from `run.py`. Nothing here measures anything by itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "data" / "eval"  # the evaluation sets, in the repo
OUT = ROOT / "bench" / "out"
RESULTS = OUT / "results.json"
DOCS = ROOT / "docs" / "bench"
BIN = Path(sys.executable).parent  # the venv's bin: `assistant`, `chroma`
ARTICLE_CORPUS = ROOT / "corpus"
ARTICLE_QA = EVAL / "article_qa_dev.jsonl"
CMRC_CORPUS = EVAL / "cmrc2018-trial" / "corpus"
CMRC_QA = EVAL / "cmrc2018-trial" / "qa.jsonl"
QUIET_ENV = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "TOKENIZERS_PARALLELISM": "false"}


# -- numbers ---------------------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float | None:
    """The nearest-rank `p`th percentile (None when there are no values)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """n, p50, p95, min and max of `values` (seconds), rounded."""
    rounded = {f"p{p}": percentile(values, p) for p in (50, 95)}
    rounded |= {"min": min(values, default=None), "max": max(values, default=None)}
    return {"n": len(values), **{k: None if v is None else round(v, digits) for k, v in rounded.items()}}


def dur(seconds: float | None) -> str:
    """Seconds for a table: milliseconds below one second, '–' for None."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("–" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# -- the machine -----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU model, RAM, OS, Python."""
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (as `uptime` shows them)."""
    return [round(x, 2) for x in os.getloadavg()]


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


# -- results ---------------------------------------------------------------------------------------


def read_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {"parts": {}}


def record_part(name: str, data: dict[str, Any]) -> None:
    """Store one part's result in results.json (other parts' results are kept)."""
    results = read_results()
    results.setdefault("parts", {})[name] = data
    _write(results)


def record_run(data: dict[str, Any]) -> None:
    """Store how the whole benchmark was run (command, wall time, load) in results.json."""
    _write({**read_results(), "run": data})


def _write(results: dict[str, Any]) -> None:
    results["machine"] = machine_info()
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")


def part_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few questions, for development")
    return parser


def run_part(
    name: str,
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
) -> int:
    """Run `measure`, wrap its result with the load and wall time around it, record it, and print
    the part's `table` from the results file (a part script's whole `main`)."""
    load_before, started = load_average(), time.perf_counter()
    data = measure(args)
    meta = {
        "quick": args.quick,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "wall_s": round(time.perf_counter() - started, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }
    record_part(name, {**meta, **data})
    print(table(read_results()["parts"][name]))
    return 0


# -- processes -------------------------------------------------------------------------------------


def assistant_cmd(*args: str) -> list[str]:
    """The installed `assistant` command, as a user runs it."""
    return [str(BIN / "assistant"), *args]


def run_json(cmd: Sequence[str]) -> dict[str, Any]:
    """Run a command that prints one JSON object as its last stdout line (its stderr shows); that object."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=QUIET_ENV)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {done.returncode} (its error is above)")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def timed_run(cmd: Sequence[str]) -> float:
    """Wall seconds of a command that must succeed (its output is discarded unless it fails)."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=QUIET_ENV)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, proc: subprocess.Popen[Any], timeout: float = 300) -> float:
    """Poll `url` until it answers 200; the seconds it took. Fails if `proc` exits first."""
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def background(cmd: Sequence[str], log: Path) -> Any:
    """Start `cmd` (output to `log`), yield its Popen, and stop it (SIGTERM, then SIGKILL) afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=QUIET_ENV)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of one process, in MB (0 when it is gone)."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in _lines(f"/proc/{pid}/status"):
        key = line.split(":", 1)[0]
        if key in values:
            values[key] = int(line.split()[1]) / 1024
    return {"rss_mb": round(values["VmRSS"], 1), "peak_rss_mb": round(values["VmHWM"], 1)}


def self_memory_mb() -> dict[str, float]:
    """This process's current and peak RSS in MB."""
    return memory_mb(os.getpid())


def directory_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024**2, 1)
