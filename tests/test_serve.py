"""`assistant serve`: the chat page and the API in one real server process."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port, make_assistant, running


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
        [sys.executable, "-m", "assistant", "serve", "--port", str(port)],
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


def test_serve_started_before_its_index_becomes_ready_when_the_index_appears(tmp_path: Path, article_corpus: Path):
    """A replica started before its index (a first deploy in any order) serves, not ready, saying what is
    missing, and becomes ready on its own once `assistant index` has run: no restart."""
    env = {
        **os.environ,
        "ASSISTANT_CORPUS": str(article_corpus),
        "ASSISTANT_INDEX_DIR": str(tmp_path / "later"),
        "ASSISTANT_EMBEDDINGS": "fake",
        "ASSISTANT_LLM": "fake",
    }
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        status, body = _wait_for_readyz(port, lambda status: status == 503)
        assert "run `assistant index`" in body["error"], body
        built = subprocess.run([sys.executable, "-m", "assistant", "index"], env=env, capture_output=True, timeout=120)
        assert built.returncode == 0, built.stderr
        status, body = _wait_for_readyz(port, lambda status: status == 200)
        assert body["status"] == "ready" and body["chunks"] > 0, body
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wait_for_readyz(port: int, done: Callable[[int], bool], timeout: float = 90.0) -> tuple[int, dict[str, Any]]:
    """Poll /readyz until `done(status)` (or fail after `timeout` seconds)."""
    deadline, last = time.monotonic() + timeout, (0, {})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                last = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            last = (exc.code, json.loads(exc.read() or b"{}"))
        except OSError:  # not listening yet
            pass
        if last[0] and done(last[0]):
            return last
        time.sleep(0.5)
    raise AssertionError(f"/readyz never got there: last {last}")


def test_the_page_can_be_closed_behind_the_api_key(article_corpus: Path, tmp_path: Path):
    from assistant.interfaces.http.server import build_server

    assistant = make_assistant(article_corpus, tmp_path / "index", api_key="s3cret", page_open="false")
    assistant.build_index()
    assert assistant.settings.page_open is False
    with running(build_server(assistant)) as url:
        with pytest.raises(urllib.error.HTTPError) as closed:  # the page's config needs a login now
            urllib.request.urlopen(f"{url}/config", timeout=10)
        assert closed.value.code == 401
        request = urllib.request.Request(
            f"{url}/api/ask", data=b'{"question": "x"}', headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as unauthorized:
            urllib.request.urlopen(request, timeout=10)
        assert unauthorized.value.code == 401
