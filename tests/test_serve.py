"""`assistant serve`: the chat page and the API in one real server process."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import make_assistant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_the_page_and_the_api(article_corpus: Path, tmp_path: Path):
    make_assistant(article_corpus, tmp_path / "index").build_index()
    port = free_port()
    env = {
        **os.environ,
        "ASSISTANT_CORPUS": str(article_corpus),
        "ASSISTANT_INDEX_DIR": str(tmp_path / "index"),
        "ASSISTANT_EMBEDDINGS": "fake",
        "ASSISTANT_LLM": "fake:印奇是旷视科技创始人 [1]。",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()  # type: ignore[union-attr]
                time.sleep(0.3)
        page = urllib.request.urlopen(f"{url}/", timeout=10).read().decode()
        assert "gradio" in page.lower()
        request = urllib.request.Request(
            f"{url}/api/ask",
            data=json.dumps({"question": "印奇是哪家公司的创始人？"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert answer["answer"] == "印奇是旷视科技创始人。[1]" and answer["citations"][0]["n"] == 1
        assert urllib.request.urlopen(f"{url}/readyz", timeout=10).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_without_an_index_says_to_build_one(tmp_path: Path, article_corpus: Path):
    env = {
        **os.environ,
        "ASSISTANT_CORPUS": str(article_corpus),
        "ASSISTANT_INDEX_DIR": str(tmp_path / "none"),
        "ASSISTANT_EMBEDDINGS": "fake",
    }
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 4 and "run `assistant index`" in out.stderr


def test_the_page_can_be_closed_behind_the_api_key(article_corpus: Path, tmp_path: Path):
    import threading

    import uvicorn

    from assistant.server import build_server

    assistant = make_assistant(article_corpus, tmp_path / "index", api_key="s3cret", page_open="false")
    assistant.build_index()
    assert assistant.settings.page_open is False
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_server(assistant), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline
            time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as closed:  # the page's config needs a login now
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10)
        assert closed.value.code == 401
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/ask", data=b'{"question": "x"}', headers={"Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("the API answered without the key")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=10)
