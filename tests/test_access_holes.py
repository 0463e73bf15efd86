"""Holes a hostile client found in `assistant serve` with an API key, each closed: guessing keys at full speed,
Gradio's upload route storing files with uploads off, and a loopback client picking its bucket with
X-Forwarded-For. Real servers on loopback (in this process, or `assistant serve` itself); each test calls from
its own 127.0.0.x address, so the clients' lockouts and limits stay apart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.interfaces.http.server import build_server

from conftest import ARTICLE_DIR, free_port, make_assistant, running

KEY = {"Authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`serve`'s app (API and page) with a key and ASSISTANT_UPLOADS=off."""
    index = tmp_path_factory.mktemp("holes-index")
    assistant = make_assistant(ARTICLE_DIR, index, llm="fake", api_key="s3cret", uploads=False)
    assistant.build_index()
    assistant.warm()  # /readyz answers 200 from the first request
    with running(build_server(assistant)) as url:
        yield url


def caller(url: str, address: str) -> httpx.Client:
    """A client of `url` connecting from `address` (any 127.x.y.z is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, trust_env=False, timeout=30, transport=transport)


# -- guessing the key ------------------------------------------------------------------------------


def test_wrong_keys_lock_the_client_out_and_the_right_key_counts_nothing(server: str):
    """A few wrong keys a minute, then 429 with Retry-After for everything the client sends, its right key too
    (or a guess would still be answered); requests with the key count nothing; other clients go on."""
    with caller(server, "127.0.0.2") as http, caller(server, "127.0.0.3") as bystander:
        keyed = [http.get("/readyz", headers=KEY).status_code for _ in range(20)]
        guesses = [http.get("/readyz", headers={"Authorization": f"Bearer guess{i}"}) for i in range(40)]
        right = http.get("/readyz", headers=KEY)
        page = http.get("/", headers={**KEY, "Accept": "text/html"})
        other = bystander.get("/readyz", headers=KEY)
    assert keyed == [200] * 20
    assert [r.status_code for r in guesses] == [401] * 5 + [429] * 35, "five guesses, then none is looked at"
    locked = guesses[-1]
    assert 1 <= int(locked.headers["retry-after"]) <= 12 and "too many wrong API keys" in locked.json()["error"]
    assert right.status_code == 429 and right.headers["retry-after"], "the right key waits like the rest"
    assert page.status_code == 429 and "too many wrong API keys" in page.text, "a browser is told why, too"
    assert other.status_code == 200


def test_forged_sessions_and_wrong_logins_are_guesses_too_but_an_expired_session_is_not(server: str):
    """A session cookie the key did not sign is a guess at the key (and is cleared); so is a wrong key at the
    login form, and they add up with wrong bearer keys. A session the key signed that has expired is no guess:
    a returning user is sent to log in, however many of the page's requests carry it."""
    expiry = str(int(time.time()) - 60)
    expired = f"{expiry}.{hmac.new(b's3cret', f'session:{expiry}'.encode(), hashlib.sha256).hexdigest()}"
    with caller(server, "127.0.0.4") as http:
        returning = [http.get("/readyz", headers={"Cookie": f"assistant_session={expired}"}) for _ in range(10)]
        forged = http.get("/readyz", headers={"Cookie": "assistant_session=9999999999.forged"})
        logins = [http.post("/login", data={"key": f"guess{i}"}).status_code for i in range(3)]
        wrong = http.get("/readyz", headers={"Authorization": "Bearer guess"})
        after = http.get("/readyz", headers=KEY)
    assert [r.status_code for r in returning] == [401] * 10
    assert 'assistant_session=""' in returning[0].headers["set-cookie"], "the stale cookie is cleared"
    assert forged.status_code == 401 and "max-age=0" in forged.headers["set-cookie"].lower()
    assert logins == [401, 401, 401] and wrong.status_code == 401  # the fifth guess: forged, 3 logins, this
    assert after.status_code == 429


# -- uploads off -----------------------------------------------------------------------------------


def test_with_uploads_off_the_pages_upload_route_stores_nothing(server: str, tmp_path: Path):
    """ASSISTANT_UPLOADS=off closes Gradio's upload route as it closes /api/documents: 403 saying why, no file
    kept to be served back. With uploads on, the page's upload box goes through it as before."""
    note = {"files": ("notes.txt", b"a file to host here")}
    with caller(server, "127.0.0.5") as http:
        refused = http.post("/gradio_api/upload", files=note, headers=KEY)
    assert refused.status_code == 403 and "ASSISTANT_UPLOADS=off" in refused.json()["error"]
    on = make_assistant(ARTICLE_DIR, tmp_path / "index", llm="fake", api_key="s3cret")
    on.build_index()
    with running(build_server(on)) as url, caller(url, "127.0.0.5") as http:
        stored = http.post("/gradio_api/upload", files=note, headers=KEY)
        assert stored.status_code == 200, stored.text
        served = http.get(f"/gradio_api/file={stored.json()[0]}", headers=KEY)
    assert served.content == b"a file to host here"


# -- X-Forwarded-For -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "statuses"),
    [([], [401] * 5 + [429]), (["--proxy", "127.0.0.1"], [401] * 6)],
    ids=["no-proxy", "proxy-on-loopback"],
)
def test_forwarded_addresses_are_believed_only_from_the_proxy_named(
    article_corpus: Path, tmp_path: Path, options: list[str], statuses: list[int]
):
    """`assistant serve` on loopback: a client writing a new X-Forwarded-For on each login attempt stays one
    client (the login limit holds) unless `--proxy 127.0.0.1` says a proxy there writes that header."""
    make_assistant(article_corpus, tmp_path / "index").build_index()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("ASSISTANT_TRUSTED_PROXY", "FORWARDED_ALLOW_IPS")},
        "ASSISTANT_CORPUS": str(article_corpus),
        "ASSISTANT_INDEX_DIR": str(tmp_path / "index"),
        "ASSISTANT_EMBEDDINGS": "fake",
        "ASSISTANT_LLM": "fake",
        "ASSISTANT_API_KEY": "s3cret",
    }
    port = free_port()
    command = [sys.executable, "-m", "assistant", "serve", "--port", str(port), *options]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = _wait_for_health(proc, port)
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
            attempts = [
                http.post("/login", data={"key": "guess"}, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(6)
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert attempts == statuses


def _wait_for_health(proc: subprocess.Popen[bytes], port: int, timeout: float = 90.0) -> str:
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1, trust_env=False).raise_for_status()
            return url
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.3)


def test_the_proxy_is_named_by_flag_or_setting_and_must_be_an_address(
    article_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """`--proxy` or ASSISTANT_TRUSTED_PROXY (as deploy/compose.yaml sets it for nginx) reaches uvicorn; a name
    that is no address is refused at start, saying what to give."""
    import uvicorn

    from assistant.interfaces.cli.main import main

    for name in ("ASSISTANT_TRUSTED_PROXY", "ASSISTANT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    served: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))  # not to block the test
    common = ["--corpus", str(article_corpus), "--index-dir", str(tmp_path / "index"), "--embeddings", "fake"]
    common += ["--llm", "fake"]
    assert main(["serve", "--proxy", "nginx", *common]) == 2
    assert "'nginx' is not an IP address or network" in capsys.readouterr().err and served == []
    assert main(["serve", *common]) == 0 and served[-1]["proxy_headers"] is False
    monkeypatch.setenv("ASSISTANT_TRUSTED_PROXY", "172.28.0.10")
    assert main(["serve", *common]) == 0
    assert served[-1]["proxy_headers"] is True and served[-1]["forwarded_allow_ips"] == "172.28.0.10"
    assert main(["serve", "--proxy", "10.0.0.5/24, 127.0.0.1", *common]) == 0  # uvicorn reads networks strictly
    assert served[-1]["forwarded_allow_ips"] == "10.0.0.0/24,127.0.0.1"


def test_the_lockout_cannot_be_set_to_nothing():
    from assistant.errors import ConfigurationError
    from assistant.settings import Settings

    with pytest.raises(ConfigurationError, match="API_KEY_ATTEMPTS=0: give the wrong keys a client may try"):
        Settings.load(env={"ASSISTANT_API_KEY_ATTEMPTS": "0"})
