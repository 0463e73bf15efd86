"""Faults a user will meet: an `assistant index` killed halfway or run twice at once, a re-index while
a server answers, an index directory that is corrupted or read-only, a Chroma server that goes away.

Real processes, a real embedded Chroma store and a real `chroma run` server; the `fake` embedder,
since none of this is about retrieval quality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from assistant.errors import StoreUnavailableError
from assistant.index.builds import BuildDir
from assistant.models.embeddings import FakeEmbeddings

from conftest import ChromaServer, make_assistant, run_cli, running

CTO = "CTO 是谁"  # the article answers: 朱亦博 (the top passage even with the fake embedder)


def index_here(env: dict[str, str]) -> None:
    """`assistant index` with `env`'s settings, in this process (quicker than a new one)."""
    assistant = make_assistant(Path(env["ASSISTANT_CORPUS"]), Path(env["ASSISTANT_INDEX_DIR"]))
    assistant.build_index()
    assistant.close()


def current(index_dir: Path) -> Path:
    path = BuildDir(index_dir).current()
    assert path is not None
    return path


def add_synthetic_documents(corpus: Path, count: int) -> None:
    """`count` documents of 10 paragraphs (about 10 chunks each), each naming its own 合成文档 number."""
    words = "融资 模型 参数 团队 市场 用户 产品 技术 公司 投资 数据 算力 训练 推理 发布 合作".split()
    for i in range(count):
        paragraphs = [
            "".join(
                f"{words[(i + p + s) % 16]}{words[(i * p + s) % 16]}合成文档{i}号第{p}段第{s}句。" * 3 for s in range(5)
            )
            for p in range(10)
        ]
        (corpus / f"synthetic-{i:03d}.txt").write_text(f"合成文档 {i}\n\n" + "\n\n".join(paragraphs), encoding="utf-8")


def search(question: str, env: dict[str, str], prefix: list[str] | None = None) -> list[dict[str, object]]:
    """`assistant search --json` as a user runs it: the hits, best first."""
    out = run_cli(["search", question, "-k", "3", "--json"], env, prefix=prefix)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    hits: list[dict[str, object]] = json.loads(out.stdout)
    return hits


# -- killed and concurrent index runs ----------------------------------------------------------------


def test_a_killed_index_run_leaves_the_old_index_answering_and_the_next_run_completes(env: dict[str, str]):
    index_dir, corpus = Path(env["ASSISTANT_INDEX_DIR"]), Path(env["ASSISTANT_CORPUS"])
    index_here(env)
    pointer = (index_dir / "CURRENT").read_text()
    old_db = current(index_dir) / "chroma.sqlite3"
    add_synthetic_documents(corpus, 40)  # about 400 chunks: seconds of writing to be killed in

    run = subprocess.Popen(
        [sys.executable, "-m", "assistant", "index"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    new_db = None
    deadline = time.time() + 120
    while new_db is None or new_db.stat().st_size <= old_db.stat().st_size:  # the copy grows: vectors written
        assert run.poll() is None and time.time() < deadline, "the index run ended before it could be killed"
        new_db = next(
            (
                b / "chroma" / "chroma.sqlite3"
                for b in (index_dir / "builds").iterdir()
                if b / "chroma" != old_db.parent and (b / "chroma" / "chroma.sqlite3").exists()
            ),
            None,
        )
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()

    assert (index_dir / "CURRENT").read_text() == pointer, "a killed run must not switch the index"
    assert new_db.exists(), "the killed run's half-built copy is left behind (until the next run)"
    assert "朱亦博" in str(search(CTO, env)[0]["text"]), "`assistant search` still answers from the old index"
    reader = make_assistant(corpus, index_dir)
    assert {h.chunk.source for h in reader.search("合成文档7号第3段")} == {"stepfun-b-plus-round.txt"}

    again = run_cli(["index"], env)
    assert again.returncode == 0, again.stderr
    assert "41 documents" in again.stdout and "40 added" in again.stdout
    assert not new_db.parent.parent.exists(), "the half-built directory was removed"
    assert len(list((index_dir / "builds").iterdir())) == 2, "only the current and the previous build are kept"
    assert reader.search("合成文档7号第3段")[0].chunk.source == "synthetic-007.txt", "the reader moved to it"


def test_a_second_index_run_is_refused_while_one_is_running(env: dict[str, str]):
    index_dir = Path(env["ASSISTANT_INDEX_DIR"])
    index_here(env)
    (Path(env["ASSISTANT_CORPUS"]) / "other.txt").write_text("其他\n\n另一篇文章。", encoding="utf-8")
    with BuildDir(index_dir).locked():  # this test process is the run in progress
        second = run_cli(["index"], env)
        assert second.returncode == 10
        assert f"another `assistant index` is running (pid {os.getpid()})" in second.stderr
        assert "Traceback" not in second.stderr
        assert "朱亦博" in str(search(CTO, env)[0]["text"]), "readers need no lock"
    after = make_assistant(Path(env["ASSISTANT_CORPUS"]), index_dir).build_index()
    assert after.added == ["other.txt"]


# -- re-indexing under a running assistant -----------------------------------------------------------


class GatedEmbeddings(FakeEmbeddings):
    """The fake embedder; while `hold` is set, a query waits for `release` (a request in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold, self.waiting, self.release = False, threading.Event(), threading.Event()

    def embed_query(self, text: str) -> list[float]:
        if self.hold:
            self.waiting.set()
            assert self.release.wait(60)
        return super().embed_query(text)


def test_a_running_assistant_sees_a_reindex_by_another_process_and_requests_in_flight_finish(
    article_corpus: Path, env: dict[str, str]
):
    serving = make_assistant(article_corpus, Path(env["ASSISTANT_INDEX_DIR"]))
    serving.build_index()
    assert "朱亦博" in serving.search(CTO, k=1)[0].chunk.text
    gated = GatedEmbeddings()
    serving.index.embeddings = gated
    gated.hold = True
    in_flight: dict[str, object] = {}

    def request() -> None:
        try:
            in_flight["hits"] = serving.search(CTO, k=3)
        except Exception as exc:  # reported below
            in_flight["error"] = exc

    thread = threading.Thread(target=request)
    thread.start()
    assert gated.waiting.wait(30)
    gated.hold = False

    (article_corpus / "other.txt").write_text(
        "星河科技\n\n星河科技完成了 9 亿元 C 轮融资,由甲基金领投。", encoding="utf-8"
    )
    reindex = run_cli(["index"], env)  # another process, as a user would run it
    assert reindex.returncode == 0 and "1 added" in reindex.stdout, reindex.stderr
    hits = serving.search("星河科技 C 轮融资", k=1)
    assert hits[0].chunk.source == "other.txt", "the next request reopened the new build"
    assert "other.txt" in {c.source for c in serving.retriever.chunks}, "the keyword index was rebuilt"

    gated.release.set()
    thread.join(30)
    assert "error" not in in_flight, in_flight.get("error")
    assert any("朱亦博" in h.chunk.text for h in in_flight["hits"])  # type: ignore[attr-defined]


def test_reindexing_in_the_same_process_switches_readers_without_leaking_stores(article_corpus: Path, tmp_path: Path):
    index_dir = tmp_path / "index"
    writer, reader = make_assistant(article_corpus, index_dir), make_assistant(article_corpus, index_dir)
    writer.build_index()
    assert reader.search(CTO, k=1)
    for n in range(4):
        (article_corpus / f"note-{n}.txt").write_text(
            f"札记{n}\n\n第{n}号札记记录了星河{n}号的发布。", encoding="utf-8"
        )
        writer.build_index()
        assert reader.search(f"第{n}号札记 星河{n}号", k=1)[0].chunk.source == f"note-{n}.txt"
    assert len(list((index_dir / "builds").iterdir())) == 2
    open_stores = [p for p in SharedSystemClient._identifier_to_system if p.startswith(str(index_dir))]
    assert len(open_stores) <= 2, f"old builds' Chroma systems must be closed, open: {open_stores}"
    reader.close()
    writer.close()
    assert not [p for p in SharedSystemClient._identifier_to_system if p.startswith(str(index_dir))]


# -- a damaged or read-only index directory ----------------------------------------------------------


def test_a_corrupted_index_says_to_rebuild_and_rebuild_recovers(env: dict[str, str]):
    index_dir = Path(env["ASSISTANT_INDEX_DIR"])
    index_here(env)
    (current(index_dir) / "chroma.sqlite3").write_bytes(b"not a database" * 1000)
    for args in (["search", CTO], ["index"]):
        out = run_cli(args, env)
        assert out.returncode == 9, (args, out.stderr)
        assert "assistant index --rebuild" in out.stderr and "Traceback" not in out.stderr
    rebuilt = run_cli(["index", "--rebuild"], env)
    assert rebuilt.returncode == 0 and "1 added" in rebuilt.stdout, rebuilt.stderr
    assert "朱亦博" in str(search(CTO, env)[0]["text"])


def read_only_prefix(index_dir: Path) -> list[str]:
    """A command prefix that runs a process with `index_dir` read-only: a read-only bind mount (root
    ignores file modes), or, for other users, the directory's write bits removed."""
    if os.geteuid() != 0:
        for path in [index_dir, *index_dir.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return []
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only mount here (unshare -m is not permitted)")
    mount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(index_dir)]


def test_a_read_only_index_can_be_searched_and_indexing_says_what_to_do(env: dict[str, str], tmp_path: Path):
    index_dir = Path(env["ASSISTANT_INDEX_DIR"])
    index_here(env)
    (tmp_path / "tmp").mkdir()
    env = {**env, "TMPDIR": str(tmp_path / "tmp")}
    (Path(env["ASSISTANT_CORPUS"]) / "other.txt").write_text("其他\n\n另一篇文章。", encoding="utf-8")
    prefix = read_only_prefix(index_dir)
    try:
        assert "朱亦博" in str(search(CTO, env, prefix)[0]["text"])
        index = run_cli(["index"], env, prefix=prefix)
    finally:
        for path in [index_dir, *index_dir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    assert index.returncode == 11 and "Traceback" not in index.stderr
    assert f"cannot write the index directory {index_dir}" in index.stderr and "writable" in index.stderr
    assert not list((tmp_path / "tmp").glob("assistant-index-*")), "the copy searched instead is removed"


# -- a Chroma server that goes away ------------------------------------------------------------------


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.server
def test_a_chroma_server_going_away_is_a_clear_error_until_it_is_back(
    article_corpus: Path, tmp_path: Path, chroma_server: ChromaServer
):
    assistant = make_assistant(article_corpus, tmp_path / "unused", chroma_url=chroma_server.url)
    assistant.build_index()
    assert "朱亦博" in assistant.search(CTO, k=1)[0].chunk.text

    chroma_server.kill()
    with pytest.raises(StoreUnavailableError) as down:
        assistant.search(CTO, k=1)
    assert chroma_server.url in str(
        down.value
    ) and f"chroma run --path DIR --host 127.0.0.1 --port {chroma_server.port}" in str(down.value)
    started_while_down = make_assistant(article_corpus, tmp_path / "unused", chroma_url=chroma_server.url)
    with pytest.raises(StoreUnavailableError, match="cannot reach the Chroma server"):
        started_while_down.search(CTO, k=1)

    chroma_server.start()  # same port, same data
    assert "朱亦博" in assistant.search(CTO, k=1)[0].chunk.text, "the same object answers again"
    assert "朱亦博" in started_while_down.search(CTO, k=1)[0].chunk.text
    assert assistant.build_index().embedded == 0

    assistant.build_index(rebuild=True)  # a new version is built aside and switched in on the server
    assert "朱亦博" in assistant.search(CTO, k=1)[0].chunk.text
    assert "朱亦博" in started_while_down.search(CTO, k=1)[0].chunk.text, "the previous version still answers"
    time.sleep(1.1)  # past the pointer's re-read interval
    assert "朱亦博" in started_while_down.search(CTO, k=1)[0].chunk.text
    name = started_while_down.settings.collection
    assert started_while_down.index.storage.serving(name) == f"{name}--v2", "it moved to the new version"


@pytest.mark.server
def test_under_load_a_replica_backs_off_while_chroma_is_down_and_recovers_by_itself(
    article_corpus: Path, tmp_path: Path, chroma_server: ChromaServer
):
    """Chroma killed and restarted while clients keep asking: requests get 503 with Retry-After (never a 500),
    the replica tries to connect with exponential backoff (a handful of tries, not one per request), and
    answers again within seconds of Chroma's return, with no restart. The figures are printed (-s)."""
    import chromadb
    import httpx

    from assistant.index.server import BACKOFF
    from assistant.interfaces.http.api import create_api

    assistant = make_assistant(article_corpus, tmp_path / "unused", chroma_url=chroma_server.url)
    assistant.build_index()
    tries: list[float] = []  # connections the replica tried to open (each one a heartbeat to the server)
    real_client = chromadb.HttpClient

    def counted_client(*args: Any, **kwargs: Any) -> Any:
        tries.append(time.monotonic())
        return real_client(*args, **kwargs)

    results: list[tuple[float, int, str | None]] = []
    answers: list[str] = []  # what each 200 said
    stop = threading.Event()
    with running(create_api(assistant, rate_limit_per_minute=None)) as url:

        def load() -> None:
            with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
                while not stop.is_set():
                    r = http.post("/api/ask", json={"question": "CTO 是谁？", "fast": True})
                    results.append((time.monotonic(), r.status_code, r.headers.get("retry-after")))
                    if r.status_code == 200:
                        answers.append(r.json()["answer"])
                    time.sleep(0.05)

        clients = [threading.Thread(target=load) for _ in range(2)]
        for c in clients:
            c.start()
        time.sleep(1.5)
        chromadb.HttpClient = counted_client  # type: ignore[assignment]
        try:
            killed = time.monotonic()
            chroma_server.kill()
            time.sleep(4)
            down_until = time.monotonic()
            chroma_server.start()
            restarted = time.monotonic()  # answering its heartbeat again
            deadline = restarted + 30
            while not any(t > restarted and status == 200 for t, status, _ in results):
                assert time.monotonic() < deadline, "the replica did not recover by itself"
                time.sleep(0.05)
            time.sleep(1)
        finally:
            chromadb.HttpClient = real_client  # type: ignore[misc]
            stop.set()
            for c in clients:
                c.join(30)
    during = [(t, s, ra) for t, s, ra in results if t >= killed]
    failed = [(t, s, ra) for t, s, ra in during if s != 200]
    recovered = min(t for t, s, _ in during if t > restarted and s == 200) - restarted
    down_tries = [t for t in tries if killed <= t <= down_until]
    print(
        f"\nsent {len(results)} requests, {len(during)} after the kill; failed {len(failed)} (statuses "
        f"{sorted({s for _, s, _ in failed})}); connection tries while down {len(down_tries)}; "
        f"recovered {recovered:.2f} s after Chroma was back"
    )
    assert failed and all(s == 503 and ra and int(ra) >= 1 for _, s, ra in failed), "down: 503 + Retry-After"
    assert not any(s >= 500 and s != 503 for _, s, _ in results)
    assert len(down_tries) <= 8 < len([r for r in during if r[0] <= down_until]), "backoff, not a try per request"
    assert recovered <= BACKOFF[1] + 2.0
    assert answers and all("朱亦博" in a for a in answers), "before and after, the answer is the article's"


def test_a_request_keeps_its_build_through_two_switches(article_corpus: Path, tmp_path: Path):
    """A request that began on one build (its retriever) still searches it after two more builds were switched
    in by another writer; its directory is kept while it reads, and removed by a later run once it is done."""
    import gc

    index_dir = tmp_path / "index"
    writer, reader = make_assistant(article_corpus, index_dir), make_assistant(article_corpus, index_dir)
    writer.build_index()
    in_flight = reader.retriever  # a request begins
    first = BuildDir(index_dir).current()
    for n in range(2):
        (article_corpus / f"note-{n}.txt").write_text(
            f"札记{n}\n\n第{n}号札记记录了星河{n}号的发布。", encoding="utf-8"
        )
        writer.build_index()
        assert reader.retriever is not in_flight  # later requests are on the new build
        assert reader.search(f"第{n}号札记 星河{n}号", k=1)[0].chunk.source == f"note-{n}.txt"
    assert first is not None and first.is_dir(), "the build a request reads is not removed under it"
    hits = in_flight.search(CTO, k=3)
    assert any("朱亦博" in h.chunk.text for h in hits) and all(not h.chunk.source.startswith("note-") for h in hits)
    del in_flight, hits
    gc.collect()  # the request is done: its build is closed
    (article_corpus / "note-2.txt").write_text("札记2\n\n第2号札记。", encoding="utf-8")
    writer.build_index()
    assert not first.exists(), "a build nobody reads is removed by the next run"
    reader.close()
    writer.close()
