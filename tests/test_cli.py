"""The `assistant` command as a user runs it: a real process, real flags, real output."""

import io
import json
import os
import re
import sys
from pathlib import Path

from conftest import EVAL, HIT_FIELDS, run_cli


def test_index_then_reindex_prints_a_summary(env: dict[str, str]):
    first = run_cli(["index"], env)
    assert first.returncode == 0, first.stderr
    assert "indexed 1 documents" in first.stdout and "1 added" in first.stdout
    second = run_cli(["index"], env)
    assert "no changes; 0 chunks embedded" in second.stdout


def test_search_json_has_the_documented_fields(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["search", "首席科学家是谁", "-k", "2", "--json"], env)
    hits = json.loads(out.stdout)
    assert len(hits) == 2
    for hit in hits:
        assert set(hit) >= HIT_FIELDS
    assert any("张祥雨" in h["text"] for h in hits)
    article = Path(env["ASSISTANT_CORPUS"]) / hits[0]["source"]
    assert article.read_text(encoding="utf-8")[hits[0]["start"] : hits[0]["end"]] == hits[0]["text"]


def test_the_answer_json_is_the_same_wherever_the_process_runs(env: dict[str, str], tmp_path: Path):
    """`source` is relative to the corpus directory (nested folders kept) and `path` is where the file is,
    so the same question asked from two working directories gets the same citations."""
    corpus = Path(env["ASSISTANT_CORPUS"])
    article = next(corpus.glob("*.txt"))
    (corpus / "2025").mkdir()
    moved = article.rename(corpus / "2025" / article.name)
    assert run_cli(["index"], env).returncode == 0
    answers = []
    for cwd in (corpus, tmp_path):
        out = run_cli(["ask", "--fast", "--json", "Step-3 每次推理激活多少参数？"], env, cwd=cwd)
        assert out.returncode == 0, out.stderr
        answers.append(json.loads(out.stdout))
    assert answers[0]["citations"] == answers[1]["citations"]
    c = answers[0]["citations"][0]
    assert "38B" in answers[0]["answer"] and "每次推理仅激活 38B 参数" in c["quote"], "the fact, quoted"
    assert c["source"] == f"2025/{article.name}" and Path(c["path"]) == moved.resolve()
    assert Path(c["path"]).read_text(encoding="utf-8")[c["start"] : c["end"]] == c["text"]


def test_search_reads_questions_from_stdin_one_json_line_each(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["search", "-", "--json", "-k", "1"], env, stdin="CTO 是谁\n\n印奇是哪家公司的创始人\n")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["CTO 是谁", "印奇是哪家公司的创始人"]
    assert "朱亦博" in lines[0]["hits"][0]["text"] and "旷视" in lines[1]["hits"][0]["text"]


def test_human_output_shows_section_paragraph_and_scores(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["search", "Step-3 总参数量", "-k", "1"], env)
    assert out.returncode == 0
    assert "从技术创新到商业闭环" in out.stdout and "¶" in out.stdout and "bm25" in out.stdout


def test_info_before_and_after_indexing(env: dict[str, str]):
    before = run_cli(["info"], env)
    assert "not built yet" in before.stdout and "assistant index" in before.stdout
    run_cli(["index"], env)
    info = json.loads(run_cli(["info", "--json"], env).stdout)
    assert info["documents"] == 1 and info["embeddings"] == "fake" and info["chunks"] > 15


def test_errors_are_one_line_with_advice_and_an_exit_code(env: dict[str, str], tmp_path: Path):
    missing = run_cli(["search", "融资"], env)
    assert missing.returncode == 4 and "run `assistant index`" in missing.stderr and "Traceback" not in missing.stderr
    bad = run_cli(["index", "--embeddings", "word2vec"], env)
    assert bad.returncode == 2 and "unknown embeddings backend" in bad.stderr
    empty = run_cli(["index", "--corpus", str(tmp_path / "nowhere")], env)
    assert empty.returncode == 3 and "does not exist" in empty.stderr
    run_cli(["index"], env)
    blank = run_cli(["search", "  "], env)
    assert blank.returncode == 2 and "empty" in blank.stderr


def test_flags_override_the_environment(env: dict[str, str], tmp_path: Path):
    out = run_cli(["index", "--index-dir", str(tmp_path / "elsewhere")], env)
    assert str(tmp_path / "elsewhere") in out.stdout


def test_eval_retrieval_reports_hit_at_k(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["eval-retrieval", str(EVAL / "article_qa_dev.jsonl")], env)
    metrics = json.loads(out.stdout)
    assert metrics["questions"] == 25 and 0 < metrics["hit@1"] <= metrics["hit@5"] <= 1


def test_ask_json_with_a_scripted_model(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["ask", "印奇是哪家公司的创始人？", "--json", "--llm", "fake:印奇是旷视科技创始人 [1]。"], env)
    answer = json.loads(out.stdout)
    assert answer["answer"] == "印奇是旷视科技创始人。[1]" and not answer["refused"]
    assert answer["citations"][0]["n"] == 1 and "旷视科技创始人" in answer["citations"][0]["quote"]


def test_ask_prints_the_answer_then_numbered_sources(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["ask", "印奇是哪家公司的创始人？", "--llm", "fake:印奇是旷视科技创始人 [1]。"], env)
    lines = out.stdout.splitlines()
    assert lines[0] == "印奇是旷视科技创始人。[1]"
    assert "Sources:" in lines and any(line.startswith("[1] 从技术创新到商业闭环 · ¶") for line in lines)
    assert "fake" in lines[-1] and "total" in lines[-1]


def test_chat_keeps_the_conversation(env: dict[str, str]):
    run_cli(["index"], env)
    out = run_cli(["chat", "--fast"], env, stdin="阶跃星辰的 CTO 是谁？\n他有什么特别的经验？\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("文章原文") == 2 and "万卡集群" in out.stdout


def test_eval_scores_an_unusable_item_and_goes_on(env: dict[str, str], tmp_path: Path):
    run_cli(["index"], env)
    items = [
        {"id": "a", "turns": [""], "answers": ["x"], "evidence": [], "answerable": True, "type": "entity"},
        {
            "id": "b",
            "turns": ["印奇是哪家公司的创始人？"],
            "answers": ["旷视"],
            "evidence": ["旷视科技创始人"],
            "answerable": True,
            "type": "entity",
        },
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), encoding="utf-8")
    out = run_cli(
        ["eval", str(path), "--out", str(tmp_path / "pred.jsonl"), "--llm", "fake:印奇是旷视科技创始人 [1]。"], env
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["answer_accuracy"] == 0.5 and metrics["citation_support"] == 1.0
    preds = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text(encoding="utf-8").splitlines()]
    assert "empty" in preds[0]["error"] and preds[1]["latency_s"] > 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_quote_shows_first_then_is_erased_for_the_answer(monkeypatch, tmp_path: Path):
    from assistant.interfaces.cli.terminal import ask_streaming, erase

    from conftest import ARTICLE_DIR, make_assistant, scripted, with_llm

    assistant = make_assistant(ARTICLE_DIR, tmp_path)
    assistant.build_index()
    with_llm(assistant, scripted("Step-3 每次推理仅激活 38B 参数 [1]。"))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr("shutil.get_terminal_size", lambda: os.terminal_size((1000, 50)))  # no line wraps
    answer = ask_streaming(assistant, "Step-3 每次推理激活多少参数？", [], fast=False, show_draft=True)
    shown = terminal.getvalue()
    quote, draft = shown.split("\n", 1)
    assert quote.startswith("文章原文") and "38B" in quote and "¶" in quote, "the labelled quote, where it is"
    assert draft.startswith("Step-3 每次推理仅激活 38B 参数 [1]。") and not answer.refused
    assert shown.endswith("\r\033[1A\033[J"), "both lines erased: the verified answer is printed there"
    assert erase("短\n" + "字" * 50, columns=80) == "\r\033[2A\033[J", "a wide line that wraps takes two rows"


def test_indexing_not_on_a_terminal_says_how_far_it_is(env: dict[str, str]):
    """A log (stderr not a terminal) gets lines saying how far embedding is, not a progress bar's escapes."""
    out = run_cli(["index"], env)
    assert out.returncode == 0, out.stderr
    assert re.search(r"embedding: (\d+) of \1 chunks", out.stderr), out.stderr
    assert "\r" not in out.stderr
