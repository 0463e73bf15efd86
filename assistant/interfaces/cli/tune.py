"""`assistant calibrate`: draft answers to calibration questions with the real model (`--collect N`,
resumable), then sweep `VerifyPolicy` over the stored drafts, print the trade-off, plot the curve and
name the operating point. `tune` does the work; the sets are `calibration`'s. Output goes to
`docs/calibration/` (drafts.jsonl, sweep.json, curve.png) so the curve can be redrawn without the model.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigurationError, ModelUnavailableError

if TYPE_CHECKING:
    from assistant.core import Assistant

DOCS = Path(__file__).resolve().parents[3] / "docs" / "calibration"
# The cut-offs before calibration (set by hand on the 32-item article dev set), drawn for comparison.
BEFORE = dict(
    min_grounding_nouns=0.5, min_grounding_content=0.3, min_nouns=0.75, min_content=0.7, min_overlap=0.3,
    min_qa_nouns=0.7, min_qa_content=0.5, min_question_nouns=0.0, min_question_content=0.0,
    min_question_at_answer=0.0, min_answer_content=0.0, premise=False, constraints=False, kind=False,
)  # fmt: skip
# The operating point issue 12 chose (on DRCD labels since corrected): main before the premise and content rules.
PREVIOUS = dict(
    min_grounding_nouns=0.2, min_grounding_content=0.2, min_nouns=0.5, min_content=0.6, min_overlap=0.3,
    min_qa_nouns=0.5, min_qa_content=0.3, min_question_nouns=0.5, min_question_content=0.3,
    min_question_at_answer=0.0, min_answer_content=0.0, premise=False, constraints=True, kind=True,
)  # fmt: skip


def cmd_calibrate(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.checks.decide import VerifyPolicy
    from assistant.quality import calibration, collect, tune

    before_policy = VerifyPolicy(**BEFORE)  # type: ignore[arg-type]
    out = Path(args.out) if args.out else DOCS
    out.mkdir(parents=True, exist_ok=True)
    drafts = out / "drafts.jsonl"
    if args.evidence:
        _evidence(args, out)
    if args.collect:
        _collect(args, drafts)
    current = _current_ids()
    stored = collect.read_jsonl(drafts)
    stale = sum(r["id"] not in current for r in stored)
    if stale:  # e.g. DRCD questions removed when their labels were corrected: never scored again
        print(f"{stale} stored drafts are of questions no longer in the sets: left out", file=sys.stderr)
    halves = {split: [r for r in stored if r.get("split") == split and r["id"] in current] for split in SPLITS}
    if not halves[args.split]:
        raise ConfigurationError(f"no drafts of the {args.split!r} split in {drafts}: run with --collect N first")
    report: dict[str, Any] = {"split": args.split}
    leads = tune.LeadIns(_corpora())
    prepared = {split: tune.prepare(rs + tune.content_free(rs), leads=leads) for split, rs in halves.items() if rs}
    grounding = None
    evidence = [
        r for r in collect.read_jsonl(out / "evidence.jsonl") if r["split"] == args.split and r["id"] in current
    ]
    if evidence:  # chosen on every question of the split, not just the drafted ones (stale questions left out)
        curve = tune.grounding_curve(evidence)
        (out / "grounding.json").write_text(json.dumps(curve, indent=1), encoding="utf-8")
        early = tune.choose_grounding(curve)
        grounding = [(early["min_grounding_nouns"], early["min_grounding_content"])]
        report["grounding"] = {"questions": len(evidence), **early}
    rows = tune.sweep(prepared[args.split], tune.grid(grounding=grounding))
    policy, chosen = tune.choose(rows)
    previous = VerifyPolicy(**PREVIOUS)  # type: ignore[arg-type]
    policies = {"before": before_policy, "previous": previous, "defaults": VerifyPolicy(), "chosen": policy}
    report["drafts"] = {s: len(rs) for s, rs in halves.items()}
    report["chosen"] = {"policy": asdict(policy), **chosen}
    for split, ps in prepared.items():
        report[split] = {
            "drafts": len(ps),
            **{which: tune.metrics(ps, pol) for which, pol in policies.items()},
            "by_set": {
                name: {
                    which: tune.metrics([p for p in ps if p.record["set"] == name], pol)
                    for which, pol in policies.items()
                }
                for name in (*calibration.SETS, "empty")
            },  # fmt: skip
            "rules": tune.rule_effects(ps, policy),
        }
    # the curve, compactly: per policy, the cut-offs the grid moves and the four rates (one row a line)
    moved = [k for k in asdict(policy) if len({getattr(p, k) for p, _ in rows}) > 1]
    rates = ("refusal_accuracy", "false_refusal_rate", "answer_accuracy", "wrong_answer_rate")
    report["curve"] = [{**{k: getattr(p, k) for k in moved}, **{k: m[k] for k in rates}} for p, m in rows]
    before = report[args.split]["before"]
    out.mkdir(parents=True, exist_ok=True)
    curve = report.pop("curve")
    text = json.dumps(report, ensure_ascii=False, indent=1)[:-2]
    text += ',\n "curve": [\n' + ",\n".join(json.dumps(row) for row in curve) + "\n ]\n}\n"
    (out / "sweep.json").write_text(text, encoding="utf-8")
    _plot(rows, policy, {"before calibration": before, "main before issue 19": report[args.split]["previous"]},
          out / "curve.png")  # fmt: skip
    print(_summary(report))
    return 0


SPLITS = ("calibrate", "holdout")


def _current_ids() -> set[str]:
    """The ids of every question in the calibration sets as they are built now."""
    from assistant.quality import calibration, collect
    from assistant.quality.gate import default_index_root

    root = default_index_root().parent / "calibration"
    return {i["id"] for name in calibration.SETS for i in collect.read_jsonl(calibration.build(name, root).qa)}


def _corpora() -> dict[str, Path]:
    """Each calibration set's corpus directory."""
    from assistant.quality import calibration
    from assistant.quality.gate import default_index_root

    root = default_index_root().parent / "calibration"
    return {name: calibration.build(name, root).corpus for name in calibration.SETS}


def _gate_ids() -> set[str]:
    """The ids of the items the quality gate's sampled model suites ask (quality_gate.toml beside the package)."""
    from assistant.quality.gate import load_suites, suite_items

    gate_file = Path(__file__).resolve().parents[3] / "quality_gate.toml"
    return {i.id for s in load_suites(gate_file) if s.sample and not s.fast for i in suite_items(s)}


def _runner(name: str, llm: str | None) -> tuple[Any, Assistant]:
    """The calibration set `name` and an assistant over its corpus, in an index of its own (built once)."""
    from assistant.factory import build_assistant
    from assistant.quality import calibration
    from assistant.quality.gate import default_index_root
    from assistant.settings import Settings, collection_name

    root = default_index_root().parent / "calibration"
    cal = calibration.build(name, root)
    settings = Settings.load(corpus=cal.corpus, index_dir=root / "index" / cal.corpus.parent.name, llm=llm)
    runner = build_assistant(replace(settings, chroma_url=None, collection=collection_name(cal.corpus)))
    runner.build_index()
    return cal, runner


def _collect(args: argparse.Namespace, drafts: Path) -> None:
    """Draft `args.collect` more questions per set and kind (answerable, unanswerable) of the chosen split."""
    from assistant.models.llm import UnavailableChatModel
    from assistant.quality import calibration, collect

    done = {r["id"] for r in collect.read_jsonl(drafts)}
    if args.split == "holdout":  # drafts that set the gate's thresholds never hold an item the gate asks
        done |= _gate_ids()
    for name in args.set or calibration.SETS:
        cal, runner = _runner(name, args.llm)
        items = [i for i in collect.read_jsonl(cal.qa) if i["split"] == args.split and i["id"] not in done]
        rng = random.Random(f"{name}-{args.split}")
        picked = []
        for answerable in (True, False):
            pool = [i for i in items if i["answerable"] == answerable]
            picked += rng.sample(pool, min(args.collect, len(pool)))
        rng.shuffle(picked)
        if isinstance(runner.llm, UnavailableChatModel):
            raise ModelUnavailableError(f"drafting needs the chat model, which is unavailable: {runner.llm.reason}")
        print(f"set {name}: drafting {len(picked)} questions into {drafts}", file=sys.stderr)
        collect.collect(runner, picked, drafts, name, on_result=_progress(len(picked)))


def _evidence(args: argparse.Namespace, out: Path) -> None:
    """The checks before the model over every question of the split (no model), and their curve."""
    from assistant.quality import calibration, collect, tune

    path = out / "evidence.jsonl"
    for name in args.set or calibration.SETS:
        cal, runner = _runner(name, args.llm)
        items = [i for i in collect.read_jsonl(cal.qa) if i["split"] == args.split]
        print(f"set {name}: retrieving for {len(items)} questions into {path}", file=sys.stderr)
        collect.collect_evidence(runner, items, path, name)
    records = [r for r in collect.read_jsonl(path) if r["split"] == args.split]
    curve = tune.grounding_curve(records)
    (out / "grounding.json").write_text(json.dumps(curve, indent=1), encoding="utf-8")
    keys = ("min_grounding_nouns", "min_grounding_content", "refusal_accuracy", "false_refusal_rate")
    print(f"checks before the model, {len(records)} questions:\n| " + " | ".join(keys) + " |")
    for row in curve:
        if row["min_grounding_content"] in (0.0, 0.2, 0.3):
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")


def _progress(total: int) -> Any:
    def report(n: int, record: dict[str, Any]) -> None:
        print(f"  [{n}/{total}] {record['id']} {record['seconds']:.1f}s", file=sys.stderr)

    return report


POLICIES = ("before", "previous", "defaults", "chosen")


def _summary(report: dict[str, Any]) -> str:
    keys = ("refusal_accuracy", "false_refusal_rate", "answer_accuracy", "wrong_answer_rate", "draft_accuracy")
    lines = []
    for split in SPLITS:
        if split not in report:
            continue
        r = report[split]
        lines += [f"{r['drafts']} drafts of the {split} split (with a content-free twin of each answerable one)", ""]
        lines += ["| set | policy | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
        for name, row in [("all", {w: r[w] for w in POLICIES}), *r["by_set"].items()]:
            for which in POLICIES:
                lines.append(f"| {name} | {which} | " + " | ".join(str(row[which].get(k)) for k in keys) + " |")
        effects = ("wrong_answers_prevented", "false_refusals_caused", "right_answers_lost")
        lines += ["", "| rule (switched off alone) | " + " | ".join(e.replace("_", " ") for e in effects) + " |"]
        lines += ["|---|---|---|---|"]
        lines += [f"| {x['rule']} | " + " | ".join(str(x[e]) for e in effects) + " |" for x in r["rules"]]
        lines.append("")
    chosen = report["chosen"]["policy"]
    defaults = report[report["split"]]["defaults"]
    from assistant.checks.decide import VerifyPolicy

    changed = {k: v for k, v in chosen.items() if asdict(VerifyPolicy())[k] != v}
    lines += [f"chosen policy (changes from the defaults in decide.VerifyPolicy): {changed or 'none'}"]
    lines += [f"defaults on this split: { ({k: defaults[k] for k in keys}) }"]
    return "\n".join(lines)


def _plot(rows: list[Any], chosen: Any, marks: dict[str, dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print('no plot: matplotlib is missing (`.venv/bin/pip install -e ".[bench]"`)', file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    xs = [m["false_refusal_rate"] for _, m in rows]
    ys = [m["refusal_accuracy"] for _, m in rows]
    cs = [m["wrong_answer_rate"] or 0 for _, m in rows]
    points = ax.scatter(xs, ys, c=cs, cmap="viridis_r", s=12, alpha=0.7)
    fig.colorbar(points, label="wrong-answer rate (of answers given)")
    pick = next(m for p, m in rows if p == chosen)
    ax.scatter([pick["false_refusal_rate"]], [pick["refusal_accuracy"]], marker="*", s=250, c="red", label="chosen")
    for (label, m), marker in zip(marks.items(), ("X", "P"), strict=False):
        ax.scatter([m["false_refusal_rate"]], [m["refusal_accuracy"]], marker=marker, s=120, c="k", label=label)
    ax.axhline(0.9, color="grey", ls=":", lw=1)
    ax.set_xlabel("false-refusal rate (answerable questions refused)")
    ax.set_ylabel("refusal accuracy (unanswerable questions refused)")
    ax.set_title("VerifyPolicy sweep over stored drafts (calibrate split)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
