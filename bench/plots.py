"""Plots of bench/out/results.json: PNGs in docs/bench/ (or bench/out/plots/ when any part was --quick).

scaling.png (build time, query latency against the model's first token, memory, all against corpus
size), latency.png (each answering stage, assistant and baseline), cold_start.png (start-up and
where the imports go), stores.png (embedded store against a Chroma server). A part that has not
been run is skipped. Needs matplotlib (`pip install -e ".[bench]"`; `make bench` installs it).
Run: `.venv/bin/python bench/plots.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common import DOCS, OUT, read_results

ASSISTANT, BASELINE, GREY = "#1f77b4", "#ff7f0e", "#7f7f7f"


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        sys.exit('matplotlib is missing: run `.venv/bin/pip install -e ".[bench]"` (or `make bench`)')
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scaling(plt: Any, results: dict[str, Any], path: Path) -> None:
    """Build time, query latency (with the model's first token for scale) and memory against chunks."""
    rows = sorted(results["parts"]["scaling"]["rows"], key=lambda r: r["build"]["chunks"])
    chunks = [r["build"]["chunks"] for r in rows]
    fig, (build, query, memory) = plt.subplots(1, 3, figsize=(15, 4.5))
    build.plot(chunks, [r["build"]["build_s"] for r in rows], "o-", label="build (fresh index)")
    build.plot(chunks, [r["reindex_unchanged_process_s"] for r in rows], "s--", label="re-index unchanged (process)")
    build.plot(chunks, [r["build"]["reindex_unchanged_s"] for r in rows], "^:", label="re-index unchanged (in process)")
    _axes(build, "index build", "seconds", loglog=True)
    for way, style in (("hybrid", "o-"), ("dense", "s--"), ("embed_query", "^:")):
        if way in rows[0]["search"]:
            query.plot(chunks, [r["search"][way]["p50"] * 1000 for r in rows], style, label=f"{way} p50")
    query.plot(chunks, [r["search"]["hybrid"]["p95"] * 1000 for r in rows], "o-", alpha=0.35, label="hybrid p95")
    first_token = results["parts"].get("latency", {}).get("stages", {}).get("assistant", {}).get("first_token")
    if first_token:
        query.axhline(first_token["p50"] * 1000, color=GREY, ls="--", label="answer: first token p50")
    _axes(query, "warm query latency", "milliseconds", loglog=True)
    memory.plot(chunks, [r["build"]["peak_rss_mb"] for r in rows], "o-", label="build process, peak")
    memory.plot(chunks, [r["search"]["rss_mb"] for r in rows], "s--", label="searching process")
    serve = results["parts"].get("serve_memory")
    if serve:
        memory.axhline(serve["peak_rss_mb"], color=GREY, ls="--", label="`assistant serve` peak (article)")
    _axes(memory, "memory (RSS)", "MB", loglog=False)
    _save(fig, path / "scaling.png")


def latency(plt: Any, results: dict[str, Any], path: Path) -> None:
    """Each stage's p50 (bar) and p95 (whisker), assistant against its earlier settings and the baseline, log scale."""
    stages = results["parts"]["latency"]["stages"]
    names = [s for s in ("embed_query", "retrieve", "condense", "translate", "prompt_eval", "generate", "verify")]
    names += ["evidence", "first_token", "total"]
    fig, ax = plt.subplots(figsize=(9, 6))
    systems = [(-0.27, "assistant", ASSISTANT), (0.0, "before", GREY), (0.27, "baseline", BASELINE)]
    for offset, system, color in (s for s in systems if s[1] in stages):
        stats = [stages[system].get(n) for n in names]
        ys = [i + offset for i, s in enumerate(stats) if s]
        p50 = [s["p50"] for s in stats if s]
        p95 = [s["p95"] - s["p50"] for s in stats if s]
        ax.barh(ys, p50, height=0.26, color=color, xerr=[[0] * len(p50), p95], capsize=3, label=f"{system} p50 (p95)")
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log)")
    ax.set_title(f"where an answer's time goes ({results['parts']['latency']['items']} questions, same run)")
    ax.legend()
    _save(fig, path / "latency.png")


def cold_start(plt: Any, results: dict[str, Any], path: Path) -> None:
    """Time to answer of a new process (p50, min-max range), and the packages whose imports cost most."""
    part = results["parts"]["cold_start"]
    fig, (runs, imports) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1.4]})
    labels = ["ask --fast", "ask (model)"]
    stats = [part["fast"]["answer_s"], part["model"]["answer_s"]]
    p50 = [s["p50"] for s in stats]
    spread = [[s["p50"] - s["min"] for s in stats], [s["max"] - s["p50"] for s in stats]]
    bars = runs.bar(labels, p50, yerr=spread, capsize=4, color=[ASSISTANT, GREY])
    runs.bar_label(bars, labels=[f"{v:.2f} s" for v in p50], label_type="center", color="white")
    runs.axhline(2, color=BASELINE, ls="--", label="target for --fast: ~2 s")
    runs.set_ylabel("seconds, process start to answer")
    runs.set_title("cold start (p50, min-max)")
    runs.legend()
    packages = list(part["imports"]["by_package_s"].items())[:10]
    imports.barh([p for p, _ in packages], [s for _, s in packages], color=ASSISTANT)
    imports.invert_yaxis()
    imports.set_xlabel("seconds (own import time)")
    imports.set_title(f"imports of `ask --fast`: {part['imports']['total_s']:.2f} s in all")
    _save(fig, path / "cold_start.png")


def stores(plt: Any, results: dict[str, Any], path: Path) -> None:
    """Search latency p50 and p95 per set, embedded store against a Chroma server."""
    rows = results["parts"]["stores"]["rows"]
    sets = list(dict.fromkeys(r["set"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, (store, color) in ((-0.2, ("embedded", ASSISTANT)), (0.2, ("server", BASELINE))):
        mine = {r["set"]: r for r in rows if r["store"] == store}
        p50 = [mine[s]["latency_p50_s"] * 1000 for s in sets]
        p95 = [(mine[s]["latency_p95_s"] - mine[s]["latency_p50_s"]) * 1000 for s in sets]
        xs = [i + offset for i in range(len(sets))]
        ax.bar(xs, p50, width=0.38, color=color, yerr=[[0] * len(p50), p95], capsize=4, label=f"{store} p50 (p95)")
    ax.set_xticks(range(len(sets)), [f"{s} (hit@5 {_hit5(rows, s)})" for s in sets])
    ax.set_ylabel("milliseconds per search")
    ax.set_title("hybrid search: embedded Chroma vs `chroma run` server")
    ax.legend()
    _save(fig, path / "stores.png")


def _hit5(rows: list[dict[str, Any]], name: str) -> str:
    return " / ".join(str(r["hit@5"]) for r in rows if r["set"] == name)


def _axes(ax: Any, title: str, ylabel: str, loglog: bool) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if loglog:
        ax.set_yscale("log")
    ax.set_xlabel("chunks (passages) indexed")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def draw(results: dict[str, Any]) -> Path:
    """Every plot whose part has been run; the directory they went to."""
    plt = pyplot()
    quick = any(part.get("quick") for part in results["parts"].values())
    path = OUT / "plots" if quick else DOCS
    path.mkdir(parents=True, exist_ok=True)
    for name, plot in (("scaling", scaling), ("latency", latency), ("cold_start", cold_start), ("stores", stores)):
        if name in results["parts"]:
            plot(plt, results, path)
            plt.close("all")
    return path


def main() -> int:
    draw(read_results())
    return 0


if __name__ == "__main__":
    sys.exit(main())
