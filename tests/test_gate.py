"""The quality gate is a real gate: the recorded thresholds pass on the healthy product and fail
when the retriever is deliberately broken (the least relevant passages first), on the extractive
answers and on the real local model; `assistant gate` turns a breach into exit code 1."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.core import Assistant
from assistant.errors import ConfigurationError, ModelUnavailableError
from assistant.index.retrieve import HybridRetriever
from assistant.interfaces.cli.main import main
from assistant.quality.evaluate import answer_metrics, read_items, run_answers
from assistant.quality.gate import Suite, check, load_suites, run_suite, suite_items, suite_settings
from assistant.settings import collection_name
from assistant.types import Answer, Citation, Hit

from conftest import ARTICLE_DIR, EVAL, ROOT, make_assistant

GATE_FILE = ROOT / "quality_gate.toml"
ARTICLE_SET = EVAL / "article_qa_dev.jsonl"


class BrokenRetriever(HybridRetriever):
    """A regression on purpose: the same index, ranked upside down."""

    def search(self, query: str, k: int = 5, history: list[str] | None = None) -> list[Hit]:
        ranked = super().search(query, k=len(self.chunks), history=history)
        return [dataclasses.replace(hit, rank=n) for n, hit in enumerate(reversed(ranked[-k:]), start=1)]


def suite(name: str) -> Suite:
    return next(s for s in load_suites(GATE_FILE) if s.name == name)


@pytest.fixture(scope="module")
def article(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    """The article on the real e5 index, owned by this module (its retriever gets swapped)."""
    assistant = make_assistant(ARTICLE_DIR, tmp_path_factory.mktemp("gate-index"), embeddings="e5-small")
    assistant.build_index()
    yield assistant


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every retriever the assistant builds from here on is the broken one."""
    monkeypatch.setattr("assistant.core.HybridRetriever", BrokenRetriever)


def test_the_gate_file_gates_the_article_and_the_held_out_calibration_sets():
    suites = {s.name: s for s in load_suites(GATE_FILE)}
    assert {"article", "drcd-holdout", "premise-holdout", "shifted-holdout", "article-fast"} <= set(suites)
    article = suites["article"]
    assert not article.fast and article.eval_file == ARTICLE_SET.resolve()
    assert set(article.minimum) == {"answer_accuracy", "refusal_accuracy", "citation_support"}
    assert article.maximum == {"false_refusals": 3, "fallback_answers": 0}
    sampled = [s for s in suites.values() if s.sample]
    assert sampled and all(s.split is None and s.seed == 1 for s in sampled)
    assert all({i.split for i in suite_items(s)} == {"holdout"} for s in sampled), "samples only from held-out halves"


def test_every_suite_gates_answers_and_false_refusals_and_model_suites_forbid_quote_fallbacks():
    suites = load_suites(GATE_FILE)
    assert all("answer_accuracy" in s.minimum and {"false_refusals", "false_refusal_rate"} & set(s.maximum)
               for s in suites)  # fmt: skip
    assert all("refusal_accuracy" in s.minimum for s in suites if any(not i.answerable for i in suite_items(s)))
    assert all(s.maximum.get("fallback_answers") == 0 for s in suites if not s.fast)
    quoted = Suite("m", ARTICLE_SET, ARTICLE_DIR, maximum={"fallback_answers": 0})
    assert check({"fallback_answers": 1}, quoted) == ["m: fallback_answers 1 is above the gate's maximum 0"]


class Degenerate:
    """An assistant that refuses everything, or one that answers everything with an expected answer when
    it has one (a perfect answerer that never refuses): a real gate fails both on every suite."""

    llm = None
    models = {"llm": "degenerate", "embeddings": "none"}

    def __init__(self, refuse: bool, expected: dict[str, list[str]]) -> None:
        self.refuse, self.expected = refuse, expected

    def ask(self, question: str, history: object = (), fast: bool = False) -> Answer:
        if self.refuse:
            return Answer(question, "文章没有提到这一点。", True, (), {}, self.models, refusal_reason="no_match")
        said = (self.expected.get(question) or ["不知道"])[0]
        cite = Citation(1, "c", "x.txt", "x", 1, 0, len(said), said, said)
        return Answer(question, f"{said}。[1]", False, (cite,), {}, self.models)


@pytest.mark.parametrize("refuse", [True, False], ids=["refuses-everything", "answers-everything"])
def test_an_assistant_that_refuses_or_answers_everything_fails_every_suite(refuse: bool):
    for s in load_suites(GATE_FILE):
        items = suite_items(s)
        degenerate = Degenerate(refuse, {i.turns[-1]: i.answers for i in items})
        metrics = answer_metrics(run_answers(degenerate, items, fast=True))  # type: ignore[arg-type]
        assert check(metrics, s), f"{s.name} passes an assistant that {'refuses' if refuse else 'answers'} everything"


def test_a_suite_with_missing_data_or_an_unmeasured_metric_fails(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="found 0"):
        suite_items(Suite("e", empty, ARTICLE_DIR))
    with pytest.raises(ConfigurationError, match="asks 40 items .* found 32"):
        suite_items(Suite("short", ARTICLE_SET, ARTICLE_DIR, sample=40))
    gated = Suite("r", ARTICLE_SET, ARTICLE_DIR, minimum={"refusal_accuracy": 0.5})
    assert check({"refusal_accuracy": None}, gated) == [
        "r: refusal_accuracy has no value (no items of its kind were answered)"
    ]


def test_a_suite_that_does_not_gate_answers_and_false_refusals_is_refused(tmp_path: Path):
    (tmp_path / "g.toml").write_text(
        f'[suites.x]\neval = "{ARTICLE_SET}"\ncorpus = "{ARTICLE_DIR}"\nmin = {{ refusal_accuracy = 0.9 }}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match="must gate answer_accuracy"):
        load_suites(tmp_path / "g.toml")


def test_the_gate_measures_its_own_models_whatever_the_environment_says(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_LLM", "fake")
    monkeypatch.setenv("ASSISTANT_EMBEDDINGS", "use")
    settings = suite_settings(Suite("x", ARTICLE_SET, ARTICLE_DIR), tmp_path, embeddings=None, llm=None)
    assert (settings.llm, settings.embeddings) == ("llama-cpp", "e5-small")


def test_calibration_suites_ask_only_the_held_out_half():
    """The refusal cut-offs were chosen on the `calibrate` half: the gate measures the other one."""
    suites = {s.name: s for s in load_suites(GATE_FILE)}
    drcd = suites["drcd-holdout"]
    items = read_items(drcd.eval_file)
    assert items and all(i.split == "holdout" for i in items)
    drafts = map(json.loads, (ROOT / "docs/calibration/drafts.jsonl").open(encoding="utf-8"))
    calibrated = {r["id"] for r in drafts if r["split"] == "calibrate"}
    assert not calibrated & {i.id for i in items}


def test_extractive_gate_passes_healthy_answers(article: Assistant):
    gate = suite("article-fast")
    healthy = run_suite(article, gate)
    assert check(healthy, gate) == [], healthy["failures"]


def test_extractive_gate_fails_a_broken_retriever(article: Assistant, broken: None):
    gate = suite("article-fast")
    metrics = run_suite(make_assistant_like(article), gate)
    assert any("answer_accuracy" in line and "below" in line for line in check(metrics, gate)), metrics


@pytest.mark.slow
def test_model_gate_fails_a_broken_retriever(article: Assistant, broken: None):
    """The suite CI runs on the real model (its healthy pass is CI's own gate run)."""
    metrics = run_suite(make_assistant_like(article, llm="llama-cpp"), suite("article"))
    assert any("answer_accuracy" in line for line in check(metrics, suite("article"))), metrics


def make_assistant_like(assistant: Assistant, **overrides: str) -> Assistant:
    """Another `Assistant` over the same built index (so the module fixture keeps its retriever)."""
    s = assistant.settings
    return make_assistant(s.corpus, s.index_dir, embeddings=s.embeddings, **overrides)


def write_gate(path: Path, corpus: Path, minimum: str, maximum: str = "false_refusals = 6") -> Path:
    path.write_text(
        f'[suites.tiny]\neval = "{ARTICLE_SET}"\ncorpus = "{corpus}"\nsample = 6\nfast = true\nmin = {{ {minimum} }}\n'
        f"max = {{ {maximum} }}\n",
        encoding="utf-8",
    )
    return path


def test_gate_command_exits_1_on_a_breach_and_0_on_a_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASSISTANT_CHROMA_URL", "http://127.0.0.1:9")  # a user's server: the gate leaves it alone
    monkeypatch.setenv("ASSISTANT_COLLECTION", "users-own")
    index_root = tmp_path / "gate-indexes"
    corpus = tmp_path / "corpus"
    shutil.copytree(ARTICLE_DIR, corpus)

    impossible = write_gate(tmp_path / "strict.toml", corpus, "answer_accuracy = 1.01")
    flags = ["--embeddings", "fake", "--index-dir", str(index_root)]
    assert main(["gate", "--config", str(impossible), *flags, "--out", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "| tiny | answer_accuracy |" in out and "FAIL tiny: answer_accuracy" in out
    assert '"breaches"' in (tmp_path / "r.json").read_text(encoding="utf-8")

    # a gate the healthy quick answers pass with room (they answer all 5 answerable items of the sample, refuse none)
    lenient = write_gate(tmp_path / "lenient.toml", corpus, "answer_accuracy = 0.5", "false_refusals = 2")
    assert main(["gate", "--config", str(lenient), *flags]) == 0
    assert "quality gate passed" in capsys.readouterr().out
    assert (index_root / collection_name(corpus) / "CURRENT").exists()  # one index per corpus, in the gate's root


def test_a_model_suite_refuses_to_run_without_the_chat_model(article: Assistant):
    """Otherwise its answers would be quotes, and a model gate could pass on them."""
    no_model = make_assistant_like(article, llm="llama-cpp:/nowhere/model.gguf")
    with pytest.raises(ModelUnavailableError, match="evaluating the chat model, which is unavailable: no model file"):
        run_suite(no_model, suite("article"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "defines no [suites.<name>] table"),
        ('[suites.x]\neval = "nowhere.jsonl"\ncorpus = "."\n', "which does not exist"),
        (f'[suites.x]\neval = "{ARTICLE_SET}"\ncorpus = "."\nmin = {{ speed = 1 }}\n', "unknown metrics"),
        ("[suites.x\n", "cannot read the quality gate file"),
    ],
)
def test_a_bad_gate_file_is_a_clear_configuration_error(tmp_path, capsys, content, message):
    (tmp_path / "gate.toml").write_text(content, encoding="utf-8")
    assert main(["gate", "--config", str(tmp_path / "gate.toml"), "--embeddings", "fake"]) == 2
    assert message in capsys.readouterr().err
