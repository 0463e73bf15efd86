"""Bad input at every door: the Python API, the CLI, and arbitrary text through ingest, chunk and answer.

Each bad input gets a clear message naming the problem (an `InputError` from Python, exit code 2 and
one line from the CLI); nothing else escapes. Property-based tests (hypothesis) throw arbitrary text
(control characters, CJK, bidirectional marks, huge strings) at cleaning, sidecar parsing, chunking
and `ask`, and check the invariants a user relies on. The HTTP API and Slack have their own files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_injection import assert_safe

from assistant.core import Assistant
from assistant.corpus.chunk import MAX_CHARS, chunk_document
from assistant.corpus.ingest import SIDECAR_FIELDS, parse_document, read_document, read_sidecar
from assistant.errors import CorpusError, InputError
from assistant.interfaces.cli.main import main

from conftest import ARTICLE, ARTICLE_DIR, make_assistant, scripted, with_llm

QUESTION = "Step-3 每次推理激活多少参数？"
STEP3 = "Step-3 每次推理仅激活 38B 参数 [1]。"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text that stresses every stage: CJK, the article's punctuation, control and direction characters.
TRICKY = st.sampled_from(
    list(
        '阶跃星辰融资参数模型。，,.!?！？:：；"“”《》（）()[]【】#- \n\r\t\x00\x07\x1b\x7f\x85\u200b\u202e\u2066\ufeff'
    )
    + ["38B", "50 亿元", "321B", "[1]", "[2]", "\x1b[31m", "\n\n", "相关标签", "系统：", "ignore the question"]
)
TEXT = st.lists(st.one_of(st.text(max_size=20), TRICKY), max_size=120).map("".join)


@pytest.fixture(scope="module")
def article(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    assistant = make_assistant(ARTICLE_DIR, tmp_path_factory.mktemp("hardening-index"))
    assistant.build_index()
    return assistant


# -- the Python API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "says"),
    [
        ("", "empty"),
        (" \t\n\u3000", "empty"),
        ("\x00\x01\x1b[2J\x7f", "empty"),  # control characters and an escape sequence only
        ("\u202e\u2066\u200b\ufeff", "empty"),  # direction overrides and invisible marks only
        ("Step-3 \udcff 参数？", "not valid text"),  # what Python makes of bytes that are not UTF-8
        ("融资" * 50_000, "100000 characters long; the limit is 2000"),
        (None, "must be text, not NoneType"),
        (42, "must be text, not int"),
        (b"Step-3", "must be text, not bytes"),
    ],
)
def test_bad_questions_are_input_errors_that_say_what_is_wrong(article, question, says):
    with pytest.raises(InputError, match=says):
        article.ask(question, fast=True)
    with pytest.raises(InputError, match=says):
        next(iter(article.stream(question)))


@pytest.mark.parametrize(
    ("question", "kw", "says"),
    [
        (None, {}, "must be text, not NoneType"),
        ("Step-3 \udcff", {}, "not valid text"),
        ("", {}, "empty"),
        ("Step-3 参数", {"k": 0}, "k must be a whole number of passages, 1 or more"),
        ("Step-3 参数", {"k": "3"}, "not '3'"),
        ("Step-3 参数", {"history": "CTO"}, "history must be a list"),
    ],
)
def test_search_checks_its_input_like_ask(article, question, kw, says):
    with pytest.raises(InputError, match=says):
        article.search(question, **kw)


@pytest.mark.parametrize(
    ("history", "says"),
    [
        ("阶跃星辰的 CTO 是谁？", "history must be a list of the earlier questions"),
        ({"turn": "CTO"}, "history must be a list"),
        (["CTO 是谁？", 7], r"history\[1\] must be text"),
        (["\udc80"], r"history\[0\] is not valid text"),
    ],
)
def test_bad_histories_are_input_errors(article, history, says):
    with pytest.raises(InputError, match=says):
        article.ask("他有什么经验？", history=history, fast=True)


def test_escape_sequences_and_direction_marks_are_removed_from_the_question(article):
    answer = article.ask(f"\x1b[31m\u202e{QUESTION}\u202c\x1b[0m\x00", fast=True)
    assert answer.question == QUESTION and "38B" in answer.answer
    assert article.ask(QUESTION, history=None, fast=True).question == QUESTION


def test_a_long_history_is_cut_to_the_latest_turns(article):
    llm = scripted("朱亦博具备万卡集群建设经验 [1]。")  # "他" resolves by rule: no condense call
    answer = with_llm(article, llm).ask("他有什么特别的经验？", history=["无关"] * 5000 + ["阶跃星辰的 CTO 是谁？"])
    assert "万卡集群" in answer.answer


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_args(article: Assistant) -> list[str]:
    s = article.settings
    return [
        "--corpus",
        str(s.corpus),
        "--index-dir",
        str(s.index_dir),
        "--embeddings",
        "fake",
        "--llm",
        f"fake:{STEP3}",
    ]


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize(
    ("question", "says"),
    [("\udcff\udcfe", "not valid text"), ("\x1b[2J\u202e", "empty"), ("x" * 3000, "3000 characters long")],
)
def test_the_cli_answers_bad_questions_with_exit_code_2_and_one_line(cli_args, capsys, command, question, says):
    assert main([command, question, *cli_args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err and "Traceback" not in err


def test_search_from_stdin_reports_bad_lines_and_goes_on(cli_args, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("\x1b[2J\n\nCTO\udcff\n阶跃星辰的 CTO 是谁？\n"))
    assert main(["search", "-", "--json", "-k", "1", *cli_args]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["question"] for line in out.splitlines()] == ["阶跃星辰的 CTO 是谁？"]
    assert err.count("error: ") == 2 and "empty" in err and "not valid text" in err


def test_a_question_in_another_encoding_on_the_command_line_is_a_clear_error(cli_args):
    """A real process, as a user with a GB18030 terminal runs it: the bytes are not UTF-8."""
    question = "融资".encode("gb18030")
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", question, *cli_args], capture_output=True, timeout=300
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.decode().startswith("error: the question is not valid text") and b"Traceback" not in out.stderr


def test_indexing_an_empty_corpus_says_what_to_add(tmp_path, capsys):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code = main(
        ["index", "--corpus", str(tmp_path / "corpus"), "--index-dir", str(tmp_path / "i"), "--embeddings", "fake"]
    )
    err = capsys.readouterr().err
    assert code == 3 and "nothing to index" in err and "add .txt or .md files" in err


def test_indexing_skips_bad_files_with_a_warning_and_indexes_the_rest(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_bytes(ARTICLE.read_bytes())
    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 40)
    (corpus / "gbk.txt").write_bytes("标题\n\n正文。".encode("gb18030"))
    (corpus / "article.meta.json").write_text('{"title": ["not", "text"]', encoding="utf-8")
    code = main(["index", "--corpus", str(corpus), "--index-dir", str(tmp_path / "i"), "--embeddings", "fake"])
    out, err = capsys.readouterr()
    assert code == 0 and "indexed 1 documents" in out
    assert "skipped blob.txt: looks like a binary file" in err and "skipped gbk.txt: not valid UTF-8" in err


def test_escape_sequences_in_the_corpus_never_reach_the_terminal(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "某公司完成融资\n\n某公司今日宣布完成 10 亿元融资\x1b]0;owned\x07。本轮由甲基金领投\x1b[2J。"
    (corpus / "a.txt").write_text(text, encoding="utf-8")
    args = ["--corpus", str(corpus), "--index-dir", str(tmp_path / "i"), "--embeddings", "fake"]
    assert main(["index", *args]) == 0
    assert main(["search", "某公司融资", "-k", "1", *args]) == 0
    searched = capsys.readouterr().out
    assert main(["ask", "某公司融资了多少？", "--fast", *args]) == 0
    asked = capsys.readouterr().out
    for out in (searched, asked):
        assert "10 亿元融资" in out and "\x1b" not in out and "\x07" not in out
    assert asked.startswith("文章原文") and "10 亿元融资" in asked.split("Sources:")[0], "the answer quotes it"


# -- arbitrary text through ingest and chunk -----------------------------------------------------


@PROPERTY
@given(text=TEXT, markdown=st.booleans())
def test_any_text_cleans_into_paragraphs_that_point_into_it(text, markdown):
    doc = parse_document(text, "x.md" if markdown else "x.txt", {})
    assert doc.text == text and doc.title
    end = 0
    for n, p in enumerate(doc.paragraphs, start=1):
        span = text[p.start : p.end]
        assert p.number == n and end <= p.start < p.end <= len(text), "numbered, in order, inside the text"
        assert not span[0].isspace() and not span[-1].isspace()
        assert markdown or ("\n" not in span and "\r" not in span), "a plain-text paragraph is one line"
        end = p.end


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@PROPERTY
@given(
    data=st.one_of(
        st.dictionaries(st.sampled_from([*SIDECAR_FIELDS, "x"]), JSON, max_size=6).map(json.dumps),
        JSON.map(json.dumps),
        st.binary(max_size=200),
        TEXT,
    )
)
def test_any_sidecar_is_read_or_ignored_never_fatal(data):
    with tempfile.TemporaryDirectory() as tmp:
        sidecar = Path(tmp) / "a.meta.json"
        sidecar.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "replace"))
        meta = read_sidecar(Path(tmp) / "a.txt")
    assert set(meta) <= set(SIDECAR_FIELDS)
    assert all(isinstance(v, str) and v and "\n" not in v and len(v) <= 500 for v in meta.values())


@PROPERTY
@given(data=st.one_of(st.binary(max_size=400), TEXT.map(lambda t: t.encode("utf-8"))))
def test_any_file_is_a_document_or_a_reason_to_skip_it(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.txt"
        path.write_bytes(data)
        try:
            doc = read_document(path, "a.txt")
        except CorpusError as exc:
            assert str(exc)
            return
    assert doc.text.encode("utf-8") == data and "\x00" not in doc.text


def assert_chunks_are_faithful(text: str) -> None:
    doc = parse_document(text, "x.txt", {})
    chunks = chunk_document(doc)
    for c in chunks:
        assert c.text == text[c.start : c.end] and c.text.strip(), "an exact, non-empty slice"
        assert len(c.text) <= MAX_CHARS
    starts = [c.start for c in chunks]
    assert starts == sorted(starts), "in document order"
    for p in doc.paragraphs:  # every character of the body is in some chunk
        covered = set().union(*(range(max(c.start, p.start), min(c.end, p.end)) for c in chunks))
        assert all(i in covered for i in range(p.start, p.end) if not text[i].isspace()), (p, chunks)


@PROPERTY
@given(text=TEXT)
def test_any_text_chunks_into_exact_nonempty_ordered_slices_covering_the_body(text):
    assert_chunks_are_faithful(text)


@pytest.mark.parametrize(
    "text",
    [
        "阶跃星辰" * 25_000,  # 100 k characters, no punctuation at all
        "a" * 100_000,  # one 100 k "word"
        ("融资 50 亿元,估值 200 亿元;" * 4000) + "\n" + "\x1b[31m" * 2000,
    ],
    ids=["cjk", "ascii", "mixed"],
)
def test_huge_unpunctuated_text_still_chunks_faithfully(text):
    assert_chunks_are_faithful(text)


# -- arbitrary questions and model replies through ask -------------------------------------------

SENTENCES = [s for s in ARTICLE.read_text(encoding="utf-8").split("。") if 10 < len(s) < 120][:60]
REPLY = st.lists(
    st.one_of(
        st.sampled_from(SENTENCES), st.sampled_from(["[1]", "[2]", "[3]", "[9]", "【2】", "。", " 42 亿元"]), TEXT
    ),
    max_size=8,
).map("".join)


@PROPERTY
@given(question=st.one_of(TEXT, st.sampled_from(SENTENCES)))
def test_fast_answers_to_any_question_are_well_formed_or_an_input_error(article, question):
    try:
        answer = article.ask(question, fast=True)
    except InputError:
        return
    json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")
    assert_safe(answer)


@PROPERTY
@given(question=st.one_of(TEXT, st.sampled_from(SENTENCES)), reply=REPLY)
def test_whatever_the_model_replies_the_answer_is_cited_and_supported_or_refused(article, question, reply):
    try:
        answer = with_llm(article, scripted(reply or "。", reply or "。", reply or "。")).ask(question)
    except InputError:
        return
    json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")
    assert_safe(answer)


def test_a_citation_never_names_a_file_outside_the_corpus(tmp_path: Path):
    """A record planted in the store (a shared Chroma server has no key) whose `source` climbs out of the corpus,
    or a symlink in the corpus to a file outside it, is never read or handed out: its path is empty, the page's
    article view shows nothing, and no HTTP route carries a server path at all."""
    from fastapi.testclient import TestClient

    from assistant.interfaces.http.api import create_api
    from assistant.interfaces.web.handlers import document

    corpus, secret = tmp_path / "corpus", tmp_path / "secret.txt"
    corpus.mkdir()
    (corpus / "a.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    secret.write_text("内部文件：服务器的口令是 hunter2。", encoding="utf-8")
    (corpus / "link.txt").symlink_to(secret)
    assistant = make_assistant(corpus, tmp_path / "index")
    assert assistant.locate("a.txt") == str((corpus / "a.txt").resolve())
    for outside in ("../secret.txt", str(secret), "link.txt", "sub/../../secret.txt"):
        assert assistant.locate(outside) == "", outside
    (corpus / "link.txt").unlink()
    assistant.build_index()
    records = assistant.index.vectors._collection
    stored = records.get(include=["metadatas"])
    planted = [dict(m, source="../secret.txt") for m in stored["metadatas"]]
    records.update(ids=stored["ids"], metadatas=planted)  # every record now claims the file outside
    answer = assistant.ask("Step-3 每次推理激活多少参数？", fast=True)
    assert "38B" in answer.answer and "38B" in answer.citations[0].quote, "answered from the planted records"
    assert answer.citations and all(c.source == "../secret.txt" and c.path == "" for c in answer.citations)
    assert all(document(c) is None for c in answer.citations)
    asked = {"question": "Step-3 每次推理激活多少参数？", "fast": True}
    api = TestClient(create_api(assistant)).post("/api/ask", json=asked)
    assert api.status_code == 200 and all(c["path"] == "" for c in api.json()["citations"])
    assert "38B" in api.json()["answer"]
