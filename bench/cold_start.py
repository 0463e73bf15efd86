"""Cold start: `assistant ask --fast Q` and `assistant ask Q` as new processes, process start to answer.

Indexes the article into a temporary directory, runs each command once to warm the OS file cache
(not counted), then times repeated runs: until the answer is printed (first byte on stdout) and until
the process exits. `python -X importtime` of one `--fast` run shows where start-up time goes: the
packages whose own import time is largest, and the slowest top-level imports.
Records part `cold_start` of bench/out/results.json.
Run: `.venv/bin/python bench/cold_start.py [--quick]`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

from common import (
    ARTICLE_CORPUS,
    QUIET_ENV,
    assistant_cmd,
    dur,
    markdown_table,
    part_parser,
    run_part,
    summary,
    timed_run,
)

# Questions of our own about the article (not from the eval sets), asked in turn.
QUESTIONS = ("阶跃星辰这一轮融了多少钱？", "Step-3 模型的总参数量是多少？", "阶跃星辰的创始人是谁？")


def run_once(cmd: list[str]) -> dict[str, float]:
    """Seconds from process start to the first byte of the answer on stdout, and to exit."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=QUIET_ENV)
    assert proc.stdout is not None
    proc.stdout.read(1)
    answered = time.perf_counter() - started
    proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}")
    return {"answer_s": answered, "exit_s": time.perf_counter() - started}


def repeat(where: list[str], fast: bool, runs: int) -> dict[str, Any]:
    """One warm-up run, then `runs` timed ones; p50/min/max of time to answer and to exit."""
    flags = ["--fast"] if fast else []
    run_once(assistant_cmd("ask", QUESTIONS[0], *flags, *where))
    timed = [run_once(assistant_cmd("ask", QUESTIONS[i % len(QUESTIONS)], *flags, *where)) for i in range(runs)]
    return {key: summary([t[key] for t in timed], digits=3) for key in ("answer_s", "exit_s")}


def import_times(where: list[str], top: int = 12) -> dict[str, Any]:
    """`-X importtime` of one `ask --fast`: own import time per top-level package, slowest top-level imports."""
    cmd = [sys.executable, "-X", "importtime", "-m", "assistant", "ask", "--fast", QUESTIONS[0], *where]
    done = subprocess.run(cmd, capture_output=True, text=True, env=QUIET_ENV, check=True)
    own: dict[str, int] = defaultdict(int)
    top_level: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        own[name.strip().split(".")[0]] += int(self_us)
        if not name[1:].startswith(" "):  # nesting is shown by two spaces a level
            top_level[name.strip()] = int(cumulative_us)
    by_package = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    slowest = sorted(top_level.items(), key=lambda kv: -kv[1])[:top]
    return {
        "total_s": round(sum(top_level.values()) / 1e6, 3),
        "by_package_s": {name: round(us / 1e6, 3) for name, us in by_package},
        "top_level_s": {name: round(us / 1e6, 3) for name, us in slowest},
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        where = ["--corpus", str(ARTICLE_CORPUS), "--index-dir", tmp]
        index_s = timed_run(assistant_cmd("index", *where))
        fast = repeat(where, fast=True, runs=3 if args.quick else 7)
        model = repeat(where, fast=False, runs=1 if args.quick else 3)
        imports = import_times(where)
    return {"index_process_s": round(index_s, 2), "fast": fast, "model": model, "imports": imports}


def table(part: dict[str, Any]) -> str:
    rows = []
    for label, key in (("`assistant ask --fast Q`", "fast"), ("`assistant ask Q`", "model")):
        answer, exit_ = part[key]["answer_s"], part[key]["exit_s"]
        rows.append([label, answer["n"], dur(answer["p50"]), dur(answer["min"]), dur(answer["max"]), dur(exit_["p50"])])
    text = markdown_table(["command", "runs", "to answer p50", "min", "max", "to exit p50"], rows)
    imports = part["imports"]
    packages = ", ".join(f"{name} {s:.2f} s" for name, s in list(imports["by_package_s"].items())[:8])
    return f"{text}\n\nimports of `ask --fast`: {imports['total_s']:.2f} s in all; own time by package: {packages}"


def main() -> int:
    args = part_parser(__doc__).parse_args()
    return run_part("cold_start", args, measure, table)


if __name__ == "__main__":
    sys.exit(main())
