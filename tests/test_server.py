"""The client/server path: a real `chroma run` server on loopback, shared by two assistants."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.errors import StoreUnavailableError

from conftest import ChromaServer, free_port, make_assistant

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
