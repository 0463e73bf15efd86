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

from conftest import free_port, make_assistant, running, scripted, with_llm


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


def test_with_a_key_every_way_in_needs_it(article_corpus: Path, tmp_path: Path):
    """With ASSISTANT_API_KEY set, no route but /healthz answers without the key: not the page, its Gradio API
    (config, queue, calls, uploads), the JSON and OpenAI APIs, the docs or readiness. With the key (header, or
    the session a login sets) they answer, `gradio_client` included; login attempts are limited."""
    import httpx
    from gradio_client import Client

    from assistant.interfaces.http.server import build_server

    reply = "印奇是旷视科技创始人 [1]。"
    # every wrong key below must get its 401, past the 5 a minute that lock a client out (test_access_holes.py)
    assistant = make_assistant(article_corpus, tmp_path / "index", api_key="s3cret", api_key_attempts=100)
    assistant = with_llm(assistant, scripted(*[reply] * 4))
    assistant.build_index()
    closed = [("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/docs"), ("GET", "/openapi.json"),
              ("GET", "/readyz"), ("GET", "/v1/models"), ("POST", "/api/ask"), ("POST", "/v1/chat/completions"),
              ("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/call/chat"), ("POST", "/gradio_api/upload"),
              ("GET", "/gradio_api/queue/data?session_hash=x"), ("GET", "/gradio_api/file=/etc/hostname")]  # fmt: skip
    with running(build_server(assistant)) as url, httpx.Client(base_url=url, trust_env=False) as http:
        for method, path in closed:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "assistant_session=9999999999.forged"}):
                response = http.request(method, path, json={"question": "印奇是哪家公司的创始人？"}, headers=headers)
                assert response.status_code == 401, (method, path, headers, response.status_code)
        assert http.get("/healthz").status_code == 200
        browser = http.get("/?x=1", headers={"Accept": "text/html"})  # a browser is sent to the login form
        assert browser.status_code == 303 and browser.headers["location"] == "/login?next=/%3Fx%3D1"
        with pytest.raises(Exception, match="credentials were not provided|401"):
            Client(url, verbose=False)
        key = {"Authorization": "Bearer s3cret"}
        asked = http.post("/api/ask", json={"question": "印奇是哪家公司的创始人？"}, headers=key)
        assert asked.status_code == 200 and asked.json()["answer"] == "印奇是旷视科技创始人。[1]"
        _, chat, _, _ = Client(url, headers=key, verbose=False).predict(
            "印奇是哪家公司的创始人？", False, [], api_name="/chat"
        )
        assert "旷视科技" in str(chat[-1]["content"])
        login = http.post("/login", data={"key": "s3cret", "next": "https://evil.example/"})
        assert login.status_code == 303 and login.headers["location"] == "/"  # no redirect off the server
        session = login.cookies["assistant_session"]
        assert {"httponly", "samesite=strict"} <= {p.strip() for p in login.headers["set-cookie"].lower().split(";")}
        with httpx.Client(base_url=url, trust_env=False, cookies={"assistant_session": session}) as logged_in:
            assert logged_in.get("/config").status_code == 200
        attempts = [http.post("/login", data={"key": f"guess{i}"}).status_code for i in range(5)]
        assert attempts == [401, 401, 401, 401, 429], "five attempts a minute per client"


def test_without_a_key_the_server_listens_on_loopback_only(
    article_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """No key: loopback only, said at start; another address needs --no-key (a proxy in front guards it)."""
    import uvicorn

    from assistant.interfaces.cli.main import main

    monkeypatch.delenv("ASSISTANT_API_KEY", raising=False)
    listened: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, **kw: listened.append(host))  # not to block the test
    common = ["--corpus", str(article_corpus), "--index-dir", str(tmp_path / "index"), "--embeddings", "fake"]
    assert main(["serve", "--host", "0.0.0.0", *common]) == 2
    assert "ASSISTANT_API_KEY" in capsys.readouterr().err and listened == []
    assert main(["serve", "--host", "127.0.0.1", *common]) == 0
    assert "no API key" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--no-key", *common]) == 0
    assert listened == ["127.0.0.1", "0.0.0.0"]
    monkeypatch.setenv("ASSISTANT_API_KEY", "s3cret")
    assert main(["serve", "--host", "0.0.0.0", *common]) == 0 and listened[-1] == "0.0.0.0"
