"""The client/server path: a real `chroma run` server on loopback, shared by two assistants."""

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import IndexBusyError, IndexNotFoundError, StoreUnavailableError
from assistant.models.embeddings import FakeEmbeddings

from conftest import ChromaServer, free_port, make_assistant, running

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server named by ASSISTANT_TEST_CHROMA_URL (started by .ci/run), else one started here."""
    if os.environ.get("ASSISTANT_TEST_CHROMA_URL"):
        yield os.environ["ASSISTANT_TEST_CHROMA_URL"]
        return
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def test_index_on_a_server_and_search_from_another_client(article_corpus: Path, tmp_path: Path, chroma_url: str):
    writer = make_assistant(
        article_corpus, tmp_path / "unused-a", embeddings="e5-small", chroma_url=chroma_url, collection="server-test-e5"
    )
    report = writer.build_index(rebuild=True)
    assert report.embedded == report.chunks > 15
    assert not (tmp_path / "unused-a" / "chroma").exists(), "nothing is written locally in server mode"

    reader = make_assistant(
        article_corpus, tmp_path / "unused-b", embeddings="e5-small", chroma_url=chroma_url, collection="server-test-e5"
    )
    hits = reader.search("Step-3 每次推理激活多少参数？", k=3)
    assert "每次推理仅激活 38B 参数" in hits[0].chunk.text
    assert reader.build_index().embedded == 0, "the server's index is reused, not rebuilt"
    assert chroma_url in reader.info()["location"]


def test_model_mismatch_is_refused_on_the_server_too(article_corpus: Path, tmp_path: Path, chroma_url: str):
    make_assistant(article_corpus, tmp_path / "a", chroma_url=chroma_url, collection="server-test-fake").build_index()
    other = make_assistant(
        article_corpus, tmp_path / "b", embeddings="use", chroma_url=chroma_url, collection="server-test-fake"
    )
    with pytest.raises(Exception, match="--rebuild"):
        other.search("融资")


def test_unreachable_server_is_a_clear_error(article_corpus: Path, tmp_path: Path):
    with pytest.raises(StoreUnavailableError, match="chroma run"):
        make_assistant(article_corpus, tmp_path, chroma_url=f"http://127.0.0.1:{free_port()}").search("融资")


# -- builders and replicas racing on one server ------------------------------------------------------


class SlowEmbeddings(FakeEmbeddings):
    """The fake embedder behind a slow embedding server: `embed_documents` takes `delay` seconds, and while
    `gate` is set a call (or the warm-up query, with `hold_query`) waits for it to clear."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay, self.waiting, self.gate, self.hold_query = delay, threading.Event(), threading.Event(), False
        self.gate.set()

    def _wait(self) -> None:
        self.waiting.set()
        assert self.gate.wait(60)

    def embed_query(self, text: str) -> list[float]:
        if self.hold_query:
            self._wait()
        return super().embed_query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self._wait()
        time.sleep(self.delay)
        return super().embed_documents(texts)


def corpus_of(root: Path, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (root / f"{name}.txt").write_text(f"{name} 标题\n\n{body}", encoding="utf-8")
    return root


def served_sources(chroma_url: str, collection: str, tmp_path: Path) -> set[str]:
    reader = make_assistant(tmp_path / "any", tmp_path / "unused", chroma_url=chroma_url, collection=collection)
    return set(reader.index.documents())


def test_a_build_is_planned_from_the_version_it_copies(tmp_path: Path, chroma_url: str):
    """Builder B looks at the index, then waits (a slow embedding server); meanwhile builder A switches in a
    version with a file B's corpus lacks. B's version must hold exactly B's corpus: its changes are planned
    from the version it copied after taking the lease, not from what it saw before."""
    base = "基础文件记录了星河一号的发布。"
    a_dir = corpus_of(tmp_path / "a", base=base, x="甲文件只在甲的语料里。")
    b_dir = corpus_of(tmp_path / "b", base=base, y="乙文件只在乙的语料里。")
    first = corpus_of(tmp_path / "first", base=base)
    options = {"chroma_url": chroma_url, "collection": "race-plan"}
    make_assistant(first, tmp_path / "unused", **options).build_index()
    a, b = make_assistant(a_dir, tmp_path / "unused", **options), make_assistant(b_dir, tmp_path / "unused", **options)
    slow = SlowEmbeddings()
    slow.hold_query, b.index.embeddings = True, slow
    slow.gate.clear()
    failed: list[BaseException] = []
    builder = threading.Thread(target=lambda: _run(b.build_index, failed))
    builder.start()
    assert slow.waiting.wait(30)  # B has planned against version 1 and is loading its model
    a.build_index()  # version 2: base + x
    slow.gate.set()
    builder.join(60)
    assert not failed, failed
    assert served_sources(chroma_url, "race-plan", tmp_path) == {"base.txt", "y.txt"}


def test_a_long_embedding_call_keeps_the_lease(tmp_path: Path, chroma_url: str):
    """One embedding call longer than the lease: the builder is alive, so a second builder is refused rather
    than taking its lease over (the heartbeat runs beside the call)."""
    options = {"chroma_url": chroma_url, "collection": "race-lease", "index_lease_s": 2.0}
    a = make_assistant(corpus_of(tmp_path / "a", one="第一份文件。"), tmp_path / "unused", **options)
    b = make_assistant(corpus_of(tmp_path / "b", two="第二份文件。"), tmp_path / "unused", **options)
    slow = SlowEmbeddings()
    slow.gate.clear()  # the call lasts until B has tried
    a.index.embeddings = slow
    failed: list[BaseException] = []
    builder = threading.Thread(target=lambda: _run(a.build_index, failed))
    builder.start()
    assert slow.waiting.wait(30)
    time.sleep(3.0)  # one and a half leases into the call
    try:
        with pytest.raises(IndexBusyError, match="another `assistant index`"):
            b.build_index()
    finally:
        slow.gate.set()
        builder.join(60)
    assert not failed, failed
    assert served_sources(chroma_url, "race-lease", tmp_path) == {"one.txt"}


def test_a_builder_stalled_past_its_lease_cannot_switch_when_it_resumes(
    tmp_path: Path, chroma_url: str, monkeypatch: pytest.MonkeyPatch
):
    """A builder frozen (no writes, no heartbeat) past its lease is taken over; when it resumes it must not
    switch its version in, and the version served stays the one built over it."""
    from assistant.index import server

    monkeypatch.setattr(server._Lease, "beating", lambda self, connect: contextlib.nullcontext(), raising=False)
    options = {"chroma_url": chroma_url, "collection": "race-stall", "index_lease_s": 1.0}
    a = make_assistant(corpus_of(tmp_path / "a", old="旧的文件。"), tmp_path / "unused", **options)
    b = make_assistant(corpus_of(tmp_path / "b", new="新的文件。"), tmp_path / "unused", **options)
    frozen = SlowEmbeddings()
    frozen.gate.clear()
    a.index.embeddings = frozen
    failed: list[BaseException] = []
    builder = threading.Thread(target=lambda: _run(a.build_index, failed))
    builder.start()
    assert frozen.waiting.wait(30)
    time.sleep(1.5)  # past A's lease
    b.build_index()  # takes over: a newer version, finished
    frozen.gate.set()  # A resumes
    builder.join(60)
    assert len(failed) == 1 and isinstance(failed[0], IndexBusyError), failed
    assert served_sources(chroma_url, "race-stall", tmp_path) == {"new.txt"}


def test_replicas_answer_from_exactly_one_version_across_switches(tmp_path: Path, chroma_url: str):
    """Two replicas (real HTTP) answer ≥ 200 questions while four versions are switched in, each version's
    passages all naming it: every answer quotes and cites one version only, nothing fails but with a
    documented 503, and both replicas end on the last version."""
    import httpx

    from assistant.interfaces.http.api import create_api

    options = {"chroma_url": chroma_url, "collection": "race-replicas"}
    corpus = tmp_path / "corpus"

    def version(k: int) -> None:
        corpus_of(corpus, release="\n\n".join(f"第{p}段：当前版本号是 V{k}，代号 K{k}{k}{k}。" for p in range(1, 4)))

    version(1)
    writer = make_assistant(corpus, tmp_path / "unused", **options)
    writer.build_index()
    replicas = [make_assistant(corpus, tmp_path / "unused", **options) for _ in range(2)]
    results: list[tuple[int, dict[str, Any]]] = []
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(running(create_api(r, rate_limit_per_minute=None))) for r in replicas]

        def client(n: int) -> None:
            with httpx.Client(base_url=urls[n % 2], trust_env=False, timeout=30) as http:
                while not stop.is_set():
                    r = http.post("/api/ask", json={"question": "当前版本号是多少？", "fast": True})
                    results.append((r.status_code, r.json()))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for k in range(2, 6):
            time.sleep(0.8)
            version(k)
            writer.build_index()
        deadline = time.monotonic() + 60
        while len(results) < 200 or not all(
            "V5" in body.get("answer", "") for _, body in results[-4:]
        ):  # fmt: skip
            assert time.monotonic() < deadline, f"{len(results)} answers, last {results[-1:]}"
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(30)
    assert len(results) >= 200
    assert {status for status, _ in results} <= {200, 503}, {status for status, _ in results}
    answered = [body for status, body in results if status == 200]
    assert len(answered) >= 200
    for body in answered:
        texts = [body["answer"], *(c["text"] for c in body["citations"] + body["related"])]
        named = {m for text in texts for m in re.findall(r"V(\d)", text)}
        assert len(named) == 1, f"an answer mixed versions {sorted(named)}: {body['answer']}"
    assert len({m for b in answered for m in re.findall(r"V(\d)", b["answer"])}) >= 3, "the switches were seen"


def _run(build: Any, failed: list[BaseException]) -> None:
    try:
        build()
    except BaseException as exc:  # reported by the test
        failed.append(exc)


def test_a_document_added_on_one_replica_is_found_by_another_without_a_restart(
    article_corpus: Path, tmp_path: Path, chroma_url: str
):
    """Server mode: `add` writes a new version of the collection (only the new file's chunks embedded); a
    replica already serving (same corpus volume, same server) searches it from its next request."""
    from assistant.corpus.add import Upload

    from documents import pdf_bytes

    def replica(name: str) -> Any:
        return make_assistant(article_corpus, tmp_path / name, chroma_url=chroma_url, collection="server-add")

    writer, reader = replica("a"), replica("b")
    writer.build_index(rebuild=True)

    def found_by_reader() -> bool:  # a replica trusts the version it read for CHECK_EVERY (1 s)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(IndexNotFoundError):
                return any(h.chunk.source == "report.pdf.txt" for h in reader.search("星河电池营业收入", k=3))
            assert time.monotonic() < deadline, "the reader never saw the index"
            time.sleep(0.2)

    assert not found_by_reader()
    (added,), report = writer.add([Upload("report.pdf", pdf_bytes())])
    assert report.embedded == added.chunks >= 1, "only the new document is embedded"
    time.sleep(1.1)
    assert found_by_reader(), "the replica searches the new version from its next request"
