"""Feedback from a hostile client, over real HTTP (uvicorn, httpx) and the real CLI.

Only an answer the server gave (its `answer_id` the server's signature over that very content and conversation)
is exported as candidate gold; a made-up or altered one is kept unverified, for a person to label. Every
malformed field is a 422 that says what to fix and stores nothing; rows an older version stored never
stop `assistant feedback export`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api import CTO_REPLY, QUESTION, VERIFIED, serving, stream

from assistant.core import Assistant

from conftest import ARTICLE_DIR, make_assistant, run_cli, scripted, with_llm

EARLIER = "阶跃星辰是谁？"
FORGED = {
    "question": "Who is StepFun's CTO?",
    "answer": "StepFun's CTO is Elon Musk. [1]",
    "refused": False,
    "citations": [],
    "timings": {},
    "models": {},
}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("feedback-index")
    make_assistant(ARTICLE_DIR, index_dir).build_index()
    return index_dir


def env_for(index_dir: Path, db: Path) -> dict[str, str]:
    return {
        "ASSISTANT_CORPUS": str(ARTICLE_DIR),
        "ASSISTANT_INDEX_DIR": str(index_dir),
        "ASSISTANT_EMBEDDINGS": "fake",
        "ASSISTANT_FEEDBACK_DB": str(db),
    }


def exported(index_dir: Path, db: Path, out: Path) -> tuple[Any, list[dict[str, Any]]]:
    """`assistant feedback export --out out` as a real process, and the items it wrote."""
    done = run_cli(["feedback", "export", "--out", str(out)], env_for(index_dir, db))
    assert done.returncode == 0, done.stderr
    return done, [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_only_an_answer_the_server_gave_is_exported_as_gold(index_dir, tmp_path):
    """A 👍 on the answer /api/ask (or the stream) gave, sent back with its conversation, is candidate gold. A 👍
    on an answer the server never gave, on a made-up id, or on a real answer whose text, citation, question or
    history was changed is kept (`verified: false`) and exported for a person to label, never as gold."""
    db = tmp_path / "feedback.sqlite3"
    assistant = with_llm(make_assistant(ARTICLE_DIR, index_dir, feedback_db=str(db)), scripted(CTO_REPLY))
    with serving(assistant) as http:
        given = http.post("/api/ask", json={"question": QUESTION, "history": [EARLIER]}).json()
        streamed = dict(stream(http, {"question": QUESTION, "fast": True}))["answer"]
        quote = {**given["citations"][0], "quote": "阶跃星辰的 CTO 是马斯克。"}
        cases: dict[str, tuple[dict[str, Any], bool]] = {
            "as given": ({"answer": given, "history": [EARLIER]}, True),
            "as streamed": ({"answer": streamed}, True),
            "never given": ({"answer": FORGED}, False),
            "a made-up id": ({"answer": {**FORGED, "answer_id": "0" * 32}}, False),
            "its id on another answer": ({"answer": {**FORGED, "answer_id": given["answer_id"]}}, False),
            "its text changed": ({"answer": {**given, "answer": FORGED["answer"]}, "history": [EARLIER]}, False),
            "its citation changed": ({"answer": {**given, "citations": [quote]}, "history": [EARLIER]}, False),
            "its history changed": ({"answer": given, "history": ["Who founded Tesla?"]}, False),
        }
        said = {
            name: http.post("/api/feedback", json={**body, "rating": "up", "comment": name})
            for name, (body, _) in cases.items()
        }
    assert given["answer_id"] and streamed["answer_id"] and given["answer_id"] != streamed["answer_id"]
    assert all(r.status_code == 200 for r in said.values()), {n: r.text for n, r in said.items()}
    assert {n: r.json()["verified"] for n, r in said.items()} == {n: v for n, (_, v) in cases.items()}
    _, items = exported(index_dir, db, tmp_path / "items.jsonl")
    by_comment = {i["feedback"]["comment"]: i for i in items}
    assert set(by_comment) == set(cases), "every rating is kept"
    gold = {n for n, i in by_comment.items() if not i.get("needs_label")}
    assert gold == {"as given", "as streamed"}
    assert by_comment["as given"]["answers"] == [VERIFIED] and by_comment["as given"]["evidence"]
    for name in set(cases) - gold:
        item = by_comment[name]
        assert item["answers"] == [] and item["evidence"] == [] and item["feedback"]["verified"] is False, name
    assert "Elon Musk" not in json.dumps([i["answers"] for i in items])


@pytest.fixture(scope="module")
def api(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Assistant, Any]]:
    """The API on its own feedback store, and an answer it gave."""
    db = tmp_path_factory.mktemp("feedback-422") / "feedback.sqlite3"
    assistant = with_llm(make_assistant(ARTICLE_DIR, index_dir, feedback_db=str(db)), scripted(CTO_REPLY))
    with serving(assistant) as http:
        answer = http.post("/api/ask", json={"question": QUESTION}).json()
        assert answer["answer"] == VERIFIED and answer["citations"], "each case spoils a real, cited answer"
        yield http, assistant, answer


def _quote(a: dict[str, Any], quote: str) -> dict[str, Any]:
    return {**a, "citations": [{**a["citations"][0], "quote": quote}]}


Body = Callable[[dict[str, Any]], dict[str, Any]]
MALFORMED: list[tuple[str, Body, str]] = [
    ("refusal_reason an object", lambda a: {"answer": {**a, "refusal_reason": {}}}, "answer.refusal_reason: "),
    ("question an object", lambda a: {"answer": {**a, "question": {"q": QUESTION}}}, "answer.question: "),
    ("citations not objects", lambda a: {"answer": {**a, "citations": [1, 2]}}, "answer.citations.0: "),
    ("a field it never had", lambda a: {"answer": {**a, "trusted": True}}, "answer.trusted: "),
    ("the answer not an object", lambda a: {"answer": "Elon Musk"}, "answer: "),
    ("a lone surrogate in the answer", lambda a: {"answer": {**a, "answer": "38B \ud800"}}, "answer.answer is not"),
    ("a lone surrogate in a quote", lambda a: {"answer": _quote(a, "\udc00")}, "answer.citations.0.quote is not valid"),
    ("a lone surrogate in the comment", lambda a: {"answer": a, "comment": "对\ud800"}, "comment: not valid text"),
    ("a lone surrogate in the history", lambda a: {"answer": a, "history": ["\ud800"]}, "history.0: not valid text"),
    ("history an object", lambda a: {"answer": a, "history": {"0": EARLIER}}, "history: "),
    ("rating an object", lambda a: {"answer": a, "rating": {"up": True}}, "rating: "),
    ("an oversized answer", lambda a: {"answer": {**a, "answer": "很" * 9000}}, "more than this server writes"),
    ("an oversized comment", lambda a: {"answer": a, "comment": "x" * 2001}, "comment: "),
    ("an oversized history turn", lambda a: {"answer": a, "history": ["x" * 2001]}, "history.0: "),
]


@pytest.mark.parametrize(("case", "body", "says"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_feedback_is_a_422_that_says_what_to_fix_and_stores_nothing(api, case, body, says):
    http, assistant, answer = api
    before = len(assistant.feedback.rows(rated_only=False))
    raw = json.dumps({"rating": "up", **body(answer)})  # ASCII: a lone surrogate travels as its \\u escape
    response = http.post("/api/feedback", content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert says in response.json()["error"]
    assert len(assistant.feedback.rows(rated_only=False)) == before, "nothing is stored"


OLD_SCHEMA = """create table feedback (id integer primary key, created real not null, rated real, source text not null,
    rating integer, comment text not null default '', question text not null, history text not null,
    answer text not null, refused integer not null, refusal_reason text, index_version text not null default '')"""


def test_export_skips_rows_an_older_version_stored_and_writes_the_rest(index_dir, tmp_path):
    """A store written by an older version (no `verified` column; rows with citations that are numbers, an
    answer that is not JSON, a history that is not a list): `feedback export` writes every readable row, says
    how many it skipped, and exits 0; `feedback report` still sums the store up. Its answers cannot be vouched
    for, so even their 👍 are exported for labelling."""
    db = tmp_path / "feedback.sqlite3"
    cited = {"question": QUESTION, "answer": VERIFIED, "refused": False, "citations": [{"n": 1, "quote": "38B"}]}
    rows = [
        ("readable", 1, json.dumps([EARLIER]), json.dumps(cited, ensure_ascii=False)),
        ("citations [1, 2]", 1, "[]", json.dumps({**cited, "citations": [1, 2]})),
        ("not JSON", -1, "[]", '{"question": "CTO'),
        ("history a string", 1, json.dumps(EARLIER), json.dumps(cited)),
    ]
    with sqlite3.connect(db) as old:
        old.execute(OLD_SCHEMA)
        old.executemany(
            "insert into feedback (created, rated, source, rating, comment, question, history, answer, refused) "
            "values (1700000000, 1700000001, 'api', ?, ?, ?, ?, ?, 0)",
            [(rating, comment, QUESTION, history, answer) for comment, rating, history, answer in rows],
        )
    old.close()
    done, items = exported(index_dir, db, tmp_path / "items.jsonl")
    assert "3 unreadable row(s) skipped" in done.stdout and "skipped" in done.stderr
    [item] = items
    assert item["feedback"]["comment"] == "readable" and item["turns"] == [EARLIER, QUESTION]
    assert item["needs_label"] is True and item["feedback"]["verified"] is False
    assert item["feedback"]["cited"] == ["38B"]
    report = run_cli(["feedback", "report", "--json"], env_for(index_dir, db))
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)
    assert counts["rated"] >= 1 and counts["unverified"] == counts["rated"]
