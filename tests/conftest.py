"""Shared fixtures: a network guard for every test, corpora, and assistants on real components.

Every test runs with non-loopback sockets blocked, so any attempt to reach a model hub or
telemetry endpoint fails loudly. Fixtures build real Chroma indexes in temporary directories; the
`fake` embedder is used only where a test is about bookkeeping, not about retrieval quality.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.core import Assistant
from assistant.embeddings import FakeEmbeddings
from assistant.factory import build_assistant
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ARTICLE_DIR = ROOT / "corpus"
ARTICLE = ARTICLE_DIR / "stepfun-b-plus-round.txt"
SHARED = ROOT.parent / "shared"


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


@pytest.fixture(scope="session", autouse=True)
def block_network() -> Iterator[None]:
    """Refuse any connection that leaves the machine (loopback, e.g. a Chroma server, is fine).

    Session-scoped, so it is in place before any session fixture loads a model or opens a store."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}: the product must work offline")

    def connect(sock: socket.socket, address: object) -> None:
        guard(sock, address)
        real_connect(sock, address)  # type: ignore[arg-type]

    def connect_ex(sock: socket.socket, address: object) -> int:
        guard(sock, address)
        return real_connect_ex(sock, address)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield


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
