"""Shared fixtures: a network guard for every test, corpora, and assistants on real components.

Every test runs with non-loopback sockets blocked, so any attempt to reach a model hub or
telemetry endpoint fails loudly. Fixtures build real Chroma indexes in temporary directories; the
`fake` embedder is used only where a test is about bookkeeping, not about retrieval quality.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from assistant.core import Assistant
from assistant.factory import build_assistant
from assistant.models.embeddings import FakeEmbeddings
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ARTICLE_DIR = ROOT / "corpus"
ARTICLE = ARTICLE_DIR / "stepfun-b-plus-round.txt"
EVAL = ROOT / "data" / "eval"  # the evaluation and calibration sets, in the repo (data/eval/LICENSES.md)
# What `assistant search --json` promises for every hit.
HIT_FIELDS = {
    "text",
    "source",
    "chunk_id",
    "section",
    "paragraph",
    "start",
    "end",
    "score",
    "dense_score",
    "keyword_score",
    "rank",
}


def pytest_configure(config: pytest.Config) -> None:
    from broken_answerer import register

    register(config)  # only with ASSISTANT_BROKEN_ANSWERER set (bench/broken_answerer.py)


class NetworkBlocked(RuntimeError):
    pass


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX path
    if not (isinstance(address, tuple) and address):
        return False
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_REAL_CONNECT, _REAL_CONNECT_EX = socket.socket.connect, socket.socket.connect_ex


def _guard(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise NetworkBlocked(f"test tried to reach {address!r}: the product must work offline")


def _guarded_connect(sock: socket.socket, address: object) -> None:
    _guard(sock, address)
    _REAL_CONNECT(sock, address)  # type: ignore[arg-type]


def _guarded_connect_ex(sock: socket.socket, address: object) -> int:
    _guard(sock, address)
    return _REAL_CONNECT_EX(sock, address)  # type: ignore[arg-type]


def _install_guard(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(socket.socket, "connect", _guarded_connect)
    patch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


@pytest.fixture(scope="session", autouse=True)
def block_network_session() -> Iterator[None]:
    """Refuse any connection that leaves the machine (loopback, e.g. a Chroma server, is fine),
    from before any session fixture loads a model or opens a store."""
    with pytest.MonkeyPatch.context() as patch:
        _install_guard(patch)
        yield


@pytest.fixture(autouse=True)
def block_network(block_network_session: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same guard again for each test: plugins that patch sockets themselves (pytest-recording,
    used by langchain-tests) restore the unguarded methods when they finish."""
    _install_guard(monkeypatch)


@pytest.fixture
def article_corpus(tmp_path: Path) -> Path:
    """A writable copy of the shipped corpus (article + sidecar)."""
    target = tmp_path / "corpus"
    shutil.copytree(ARTICLE_DIR, target)
    return target


def make_assistant(corpus: Path, index_dir: Path, embeddings: str = "fake", **kw: object) -> Assistant:
    return build_assistant(Settings.load(env={}, corpus=corpus, index_dir=index_dir, embeddings=embeddings, **kw))


@pytest.fixture(scope="session")
def e5_article(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    """The article indexed with the real packaged e5-small model (built once per test run)."""
    index_dir = tmp_path_factory.mktemp("e5-index")
    assistant = make_assistant(ARTICLE_DIR, index_dir, embeddings="e5-small")
    assistant.build_index()
    yield assistant


class CountingEmbeddings(FakeEmbeddings):
    """The fake embedder, counting how many texts it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return super().embed_documents(texts)


class EchoChatModel(GenericFakeChatModel):
    """Answers with the prompt it was given (system + user), so tests see which passages reached it."""

    messages: Any = iter(())

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        prompt = "\n".join(m.text for m in messages)
        self.messages = iter([AIMessage(content=prompt)])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kw)


def scripted(*replies: str) -> FakeListChatModel:
    """A chat model that answers each call with the next reply (and streams it char by char)."""
    return FakeListChatModel(responses=list(replies))


def with_llm(assistant: Assistant, llm: Any) -> Assistant:
    assistant.llm = llm
    return assistant


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    import socket as _socket

    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port for the block; yields its base URL."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            assert thread.is_alive() and time.time() < deadline, "the test server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_cli(
    args: list[str],
    env: dict[str, str],
    stdin: str | None = None,
    prefix: list[str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`assistant ARGS` as a real process (with `env` added to this one's); `prefix` wraps it, e.g. in `unshare`."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "assistant", *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


@pytest.fixture
def env(article_corpus: Path, tmp_path: Path) -> dict[str, str]:
    """Settings for a CLI process: a copy of the article, an index in the test's directory, the fake embedder."""
    return {
        "ASSISTANT_CORPUS": str(article_corpus),
        "ASSISTANT_INDEX_DIR": str(tmp_path / "index"),
        "ASSISTANT_EMBEDDINGS": "fake",
    }


class ChromaServer:
    """`chroma run` on a fixed port and data directory, so it can be killed and started again."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        log = open(self.data / "server.log", "ab")  # noqa: SIM115 - the server process owns it
        self.proc = subprocess.Popen(
            [chroma, "run", "--path", str(self.data / "db"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        log.close()
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((self.data / "server.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
