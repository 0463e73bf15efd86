"""The whole benchmark (`make bench`): every part in turn, then the plots and the tables.

Runs each part as its own process (each script also runs alone): cold start, serve memory, answer
latency against the earlier settings and the baseline, the smaller prompt's accuracy on calibration
questions, English questions searched as asked or translated first, embedded store against a Chroma
server, and scaling up to ~10,000 passages. Samples the load average throughout (others may share the
machine), records the command, wall time and load in bench/out/results.json, draws the plots
(`plots.py`) and prints a headline table against the targets, then each part's table.
Run: `.venv/bin/python bench/run.py [--quick] [--parts cold_start,latency]` (about 90 minutes in full);
`--report` runs nothing and redraws the plots and tables from results.json.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import dur, load_average, markdown_table, part_parser, read_results, record_run
from plots import draw

PARTS = {  # part name -> its script, in the order they run
    "cold_start": "cold_start.py",
    "serve_memory": "serve_memory.py",
    "latency": "bench_answer.py",
    "generation": "generation.py",
    "prompt": "prompt_ab.py",
    "crosslingual": "crosslingual.py",
    "stores": "bench_retrieval.py",
    "scaling": "scaling.py",
    "replicas": "replicas.py",
}


class LoadSampler(threading.Thread):
    """The 1-minute load average every `every` seconds until stopped."""

    def __init__(self, every: float = 15) -> None:
        super().__init__(daemon=True)
        self.every, self.samples = every, [load_average()[0]]
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.samples.append(load_average()[0])

    def summary(self) -> dict[str, float]:
        return {
            "min": min(self.samples),
            "mean": round(sum(self.samples) / len(self.samples), 2),
            "max": max(self.samples),
        }


def run_parts(names: list[str], quick: bool) -> dict[str, Any]:
    """Each part's script in a new process; its wall time and exit code."""
    outcome = {}
    for name in names:
        print(f"\n== {name} ==", file=sys.stderr, flush=True)
        started = time.perf_counter()
        cmd = [sys.executable, str(Path(__file__).with_name(PARTS[name])), *(["--quick"] if quick else [])]
        code = subprocess.run(cmd).returncode
        outcome[name] = {"wall_s": round(time.perf_counter() - started, 1), "exit_code": code}
    return outcome


def headline(results: dict[str, Any]) -> str:
    """The judged numbers against their targets."""
    parts = results["parts"]
    rows = [row for make in (_cold_start_rows, _scaling_rows, _latency_rows, _memory_rows) for row in make(parts)]
    return markdown_table(["measure", "target", "measured"], rows)


def _cold_start_rows(parts: dict[str, Any]) -> list[list[str]]:
    if "cold_start" not in parts:
        return []
    fast, model = (parts["cold_start"][key]["answer_s"] for key in ("fast", "model"))
    return [
        ["`assistant ask --fast` cold start, to answer (p50 / min)", "~2 s", _pair(fast, "p50", "min")],
        ["`assistant ask` cold start, to answer (p50 / min)", "–", _pair(model, "p50", "min")],
    ]


def _scaling_rows(parts: dict[str, Any]) -> list[list[str]]:
    if "scaling" not in parts:
        return []
    big = max(parts["scaling"]["rows"], key=lambda r: r["build"]["chunks"])
    build, n = big["build"], f"{big['build']['chunks']:,} passages"
    reindex = f"{dur(build['reindex_unchanged_s'])} / {dur(big['reindex_unchanged_process_s'])}"
    cost = f"{dur(build['build_s'])} ({build['chunks_per_s']} chunks/s), peak RSS {build['peak_rss_mb']:.0f} MB"
    return [
        [f"warm hybrid search at {n} (p50 / p95)", "tens of ms", _pair(big["search"]["hybrid"], "p50", "p95")],
        [f"no-change re-index at {n} (in process / whole `assistant index`)", "near-instant", reindex],
        [f"index build, {n}", "measured", cost],
    ]


def _latency_rows(parts: dict[str, Any]) -> list[list[str]]:
    """Issue 12's targets, each against the same run's `before` (and baseline), with the machine's speed."""
    if "latency" not in parts:
        return []
    latency = parts["latency"]
    now, was, base = (latency["stages"][name] for name in ("assistant", "before", "baseline"))
    speed = _speed(now)
    english = latency.get("english", {}).get("assistant", {}).get("calls", {})
    quality = latency["quality"]
    p50 = now["total"]["p50"]
    ratio = f"{p50 / was['total']['p50']:.2f}× before, {p50 / base['total']['p50']:.2f}× baseline"
    return [
        ["prompt tokens p50 / p95, now vs before", "p50 ≤ 200", f"{_tokens(now)} vs {_tokens(was)}"],
        ["model calls per English question (max)", "1", f"{english.get('max', '–')}"],
        [f"first cited content on screen p50 / p95 ({speed})", "≤ 0.5 s", _pair(now["evidence"], "p50", "p95")],
        [
            f"total p50 / p95, now vs before vs baseline ({speed})",
            "≤ 0.5× before, ≤ 0.4× baseline",
            f"{_pair(now['total'], 'p50', 'p95')} vs {_pair(was['total'], 'p50', 'p95')} vs "
            f"{_pair(base['total'], 'p50', 'p95')}: {ratio}",
        ],
        [
            "answer / refusal accuracy, now vs before",
            "not lower",
            f"{quality['assistant']['answer_accuracy']} / {quality['assistant']['refusal_accuracy']} vs "
            f"{quality['before']['answer_accuracy']} / {quality['before']['refusal_accuracy']}",
        ],
    ]


def _tokens(stages: dict[str, Any]) -> str:
    return f"{stages['prompt_tokens']['p50']:.0f} / {stages['prompt_tokens']['p95']:.0f}"


def _speed(stages: dict[str, Any]) -> str:
    """The machine's llama.cpp speed in that run: prompt and generated tokens a second (p50)."""
    prompt, generated = stages["prompt_tokens_per_s"]["p50"], stages["generated_tokens_per_s"]["p50"]
    return f"machine: {prompt:.0f} prompt / {generated:.0f} generated tokens/s"


def _memory_rows(parts: dict[str, Any]) -> list[list[str]]:
    if "serve_memory" not in parts:
        return []
    peak = f"{parts['serve_memory']['peak_rss_mb']:.0f} MB"
    return [["peak RSS of `assistant serve`, default models", "under ~3 GB", peak]]


def _pair(stat: dict[str, Any], first: str, second: str) -> str:
    return f"{dur(stat[first])} / {dur(stat[second])}"


def part_tables(results: dict[str, Any]) -> str:
    """Each recorded part's own table, under its name."""
    sections = []
    for name, script in PARTS.items():
        if name in results["parts"]:
            module = importlib.import_module(script.removesuffix(".py"))
            sections.append(f"### {name}\n\n{module.table(results['parts'][name])}")
    return "\n\n".join(sections)


def measure_all(names: list[str], quick: bool) -> bool:
    """Run the parts and record how (command, wall time, load); whether every part succeeded."""
    sampler, started = LoadSampler(), time.perf_counter()
    sampler.start()
    outcome = run_parts(names, quick)
    sampler.stopped.set()
    record_run(
        {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "quick": quick,
            "wall_s": round(time.perf_counter() - started, 1),
            "parts": outcome,
            "load_1min": sampler.summary(),
        }
    )
    return all(o["exit_code"] == 0 for o in outcome.values())


def main() -> int:
    parser = part_parser(__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--report", action="store_true", help="run nothing: plots and tables from results.json")
    args = parser.parse_args()
    names = [n for n in args.parts.split(",") if n]
    unknown = set(names) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    ok = args.report or measure_all(names, args.quick)
    results = read_results()
    where = draw(results)
    print(f"\n## Headline\n\n{headline(results)}\n\n{part_tables(results)}\n")
    print(f"plots in {where}; results in bench/out/results.json; the run: {results.get('run')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
