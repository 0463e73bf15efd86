"""Quality gate: eval suites with thresholds recorded in the repo (`quality_gate.toml`).

Each suite names an eval set, the corpus it is asked over, and the lowest (`min`) or highest
(`max`) value each metric of `evaluate.answer_metrics` may take. `run_suite` answers the set with
a real `Assistant`; `check` compares the metrics with the thresholds and returns one line per
breach. CI runs `assistant gate`, which exits 1 when any suite breaches, so a change that makes
answers worse does not land. Paths in the file are relative to the file.

A gate that a broken system could pass is no gate: every suite must gate answer accuracy and false
refusals (a refuse-everything and an answer-everything assistant each fail, `tests/test_gate.py`), a
gated metric with no value fails, a suite whose sample comes up short fails, and the models are the
defaults whatever the environment says (`suite_settings`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigurationError
from assistant.quality import calibration
from assistant.quality.evaluate import Item, answer_metrics, read_items, run_answers, sample
from assistant.settings import Settings, collection_name

if TYPE_CHECKING:
    from assistant.core import Assistant

GATED_METRICS = (
    "answer_accuracy",
    "refusal_accuracy",
    "false_refusals",
    "false_refusal_rate",
    "citation_support",
    "f1",
    "fallback_answers",
)


@dataclass(frozen=True)
class Suite:
    name: str
    eval_file: Path
    corpus: Path
    sample: int | None = None  # a fixed sample (`seed`) of this many items; None: all
    seed: int = 0
    fast: bool = False  # evaluate the extractive answers instead of the model's
    split: str | None = None  # a calibration set's half ("holdout": never used to choose thresholds)
    balanced: bool = False  # sample as many unanswerable items as answerable ones
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)


def load_suites(path: Path) -> list[Suite]:
    """The suites of a gate file; a missing file, an unknown metric or a missing path is a ConfigurationError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the quality gate file {path}: {exc}") from exc
    suites = []
    for name, spec in raw.get("suites", {}).items():
        try:
            if "calibration" in spec:  # a calibration set, built on first use (`calibration.build`)
                built = calibration.build(spec["calibration"], default_index_root().parent / "calibration")
                spec = {**spec, "eval": built.qa, "corpus": built.corpus}
            suite = Suite(
                name=name,
                eval_file=(path.parent / spec["eval"]).resolve(),
                corpus=(path.parent / spec["corpus"]).resolve(),
                sample=spec.get("sample"),
                seed=int(spec.get("seed", 0)),
                fast=bool(spec.get("fast", False)),
                split=spec.get("split"),
                balanced=bool(spec.get("balanced", False)),
                minimum={k: float(v) for k, v in spec.get("min", {}).items()},
                maximum={k: float(v) for k, v in spec.get("max", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{path}: suite {name!r} is malformed ({exc!r})") from exc
        unknown = (set(suite.minimum) | set(suite.maximum)) - set(GATED_METRICS)
        if unknown:
            raise ConfigurationError(f"{path}: suite {name!r} gates unknown metrics {sorted(unknown)}")
        for what in (suite.eval_file, suite.corpus):
            if not what.exists():
                raise ConfigurationError(f"{path}: suite {name!r} needs {what}, which does not exist")
        if "answer_accuracy" not in suite.minimum or not {"false_refusals", "false_refusal_rate"} & set(suite.maximum):
            raise ConfigurationError(
                f"{path}: suite {name!r} must gate answer_accuracy (min) and false_refusals or false_refusal_rate "
                "(max): without both, an assistant that refuses or answers everything could pass it"
            )
        suites.append(suite)
    if not suites:
        raise ConfigurationError(f"{path} defines no [suites.<name>] table")
    return suites


def default_index_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("assistant", appauthor=False)) / "gate"


def suite_settings(suite: Suite, index_root: Path, embeddings: str | None, llm: str | None) -> Settings:
    """Settings for one suite: its corpus, in an embedded index of that corpus's own under `index_root`,
    whatever ASSISTANT_INDEX_DIR, ASSISTANT_COLLECTION or ASSISTANT_CHROMA_URL say, so the gate
    never writes into an index a user or a server relies on. The environment is not read at all: the gate
    measures the default models unless `embeddings` or `llm` name others (and the report then says so)."""
    # one index per corpus: suites over the same corpus (a model suite and its --fast twin) share it
    index_dir = index_root / collection_name(suite.corpus)
    settings = Settings.load(env={}, corpus=suite.corpus, index_dir=index_dir, embeddings=embeddings, llm=llm)
    return replace(settings, chroma_url=None, collection=collection_name(suite.corpus))


def run_suite(
    assistant: Assistant, suite: Suite, on_result: Callable[[int, dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """`answer_metrics` of the suite's items answered by `assistant` (whose corpus should be the suite's)."""
    items = suite_items(suite)
    return answer_metrics(run_answers(assistant, items, fast=suite.fast, on_result=on_result))


def suite_items(suite: Suite) -> list[Item]:
    """The items a suite asks; a ConfigurationError when there are none or fewer than its sample asks."""
    items = read_items(suite.eval_file)
    if suite.split:
        items = [i for i in items if i.split == suite.split]
    if suite.sample and suite.balanced:
        half = suite.sample // 2
        answerable = sample([i for i in items if i.answerable], half, suite.seed)
        items = answerable + sample([i for i in items if not i.answerable], half, suite.seed)
    elif suite.sample:
        items = sample(items, suite.sample, suite.seed)
    if not items or (suite.sample and len(items) < suite.sample):
        raise ConfigurationError(
            f"suite {suite.name!r} asks {suite.sample or 'all'} items of {suite.eval_file} but found {len(items)}: "
            "its data is missing or incomplete"
        )
    return items


def check(metrics: dict[str, Any], suite: Suite) -> list[str]:
    """One line per threshold the metrics breach; empty when the suite passes."""
    return [f"{suite.name}: {line}" for name in GATED_METRICS if (line := breach(name, metrics.get(name), suite))]


def breach(name: str, value: float | None, suite: Suite) -> str | None:
    """Why `value` of metric `name` fails the suite's gate, or None. A gated metric with no value (no
    unanswerable items in a sample that gates refusals) fails: the suite did not measure what it promises."""
    if value is None:
        gated = name in suite.minimum or name in suite.maximum
        return f"{name} has no value (no items of its kind were answered)" if gated else None
    if name in suite.minimum and value < suite.minimum[name]:
        return f"{name} {value} is below the gate's minimum {suite.minimum[name]}"
    if name in suite.maximum and value > suite.maximum[name]:
        return f"{name} {value} is above the gate's maximum {suite.maximum[name]}"
    return None


def table(rows: list[tuple[Suite, dict[str, Any]]]) -> str:
    """A markdown table: each suite's gated metrics with their thresholds and PASS/FAIL."""
    lines = ["| suite | metric | value | gate | verdict |", "|---|---|---|---|---|"]
    for suite, metrics in rows:
        for name in GATED_METRICS:
            if name in suite.minimum:
                gate = f">= {suite.minimum[name]}"
            elif name in suite.maximum:
                gate = f"<= {suite.maximum[name]}"
            else:
                continue
            verdict = "FAIL" if breach(name, metrics.get(name), suite) else "PASS"
            lines.append(f"| {suite.name} | {name} | {metrics.get(name)} | {gate} | {verdict} |")
    return "\n".join(lines)
