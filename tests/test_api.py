"""The HTTP API over real HTTP: uvicorn on 127.0.0.1, httpx and the `openai` client as the callers.

The assistant runs over a real index (fake embeddings, built once) with scripted, echo and slowed-down
chat models, so the assertions are about what a program calling the API sees: the answer contract,
events in order, clear errors with useful statuses, the queue, the rate limit and the key.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from assistant.core import Assistant
from assistant.interfaces.http.api import create_api
from assistant.types import Answer

from conftest import ARTICLE_DIR, make_assistant, scripted, with_llm

CTO_REPLY = "Step-3 每次推理仅激活 38B 参数 [1]。"
VERIFIED = "Step-3 每次推理仅激活 38B 参数。[1]"  # as rendered: the marker after the full stop
QUESTION = "Step-3 每次推理激活多少参数？"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("api-index")
    make_assistant(ARTICLE_DIR, index_dir).build_index()
    return index_dir


class SlowEcho(GenericFakeChatModel):
    """Answers with its prompt after `delay` seconds and records every prompt; a condense call
    ("改写后的问题") gets the conversation and the question back on one line, so the history shows."""

    messages: Any = iter(())
    delay: float = 0.0
    prompts: list[str] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        time.sleep(self.delay)
        prompt = "\n".join(m.text for m in messages)
        self.prompts.append(prompt)
        if "改写后的问题" in prompt:
            prompt = " ".join(prompt.split("对话：", 1)[1].split("改写后的问题", 1)[0].split())
        self.messages = iter([AIMessage(content=prompt)])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kw)


@contextmanager
def serving(assistant: Assistant, **options: Any) -> Iterator[httpx.Client]:
    """The API for `assistant` on a free loopback port, and an httpx client pointed at it (uvicorn's defaults,
    which trust X-Forwarded-For from loopback, as `assistant serve --proxy 127.0.0.1` runs it; plain `assistant
    serve` trusts no proxy: tests/test_access_holes.py; `forwarded_allow_ips` sets the trusted proxies)."""
    options.setdefault("rate_limit_per_minute", None)
    proxies = options.pop("forwarded_allow_ips", None)  # uvicorn's trusted proxies (None: loopback)
    app = create_api(assistant, **options)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", forwarded_allow_ips=proxies
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def assistant_with(index_dir: Path, llm: Any) -> Assistant:
    return with_llm(make_assistant(ARTICLE_DIR, index_dir), llm)


def openai_client(http: httpx.Client, key: str = "unused") -> openai.OpenAI:
    """The official client (it speaks through httpx2) against the API's /v1."""
    base_url = f"{str(http.base_url).rstrip('/')}/v1"
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, http_client=httpx2.Client(trust_env=False))


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, JSON data) pairs of a server-sent event stream, comments skipped."""
    events, name, data = [], "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
    return events


def stream(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with http.stream("POST", "/api/ask/stream", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response)


# -- answers ---------------------------------------------------------------------------------------


def test_ask_returns_the_answer_contract_with_exact_citations(index_dir):
    with serving(assistant_with(index_dir, scripted(CTO_REPLY))) as http:
        response = http.post("/api/ask", json={"question": QUESTION})
    assert response.status_code == 200, response.text
    d = response.json()
    assert set(d) == set(Answer.__dataclass_fields__), "the whole contract, as ask --json prints it"
    assert d["answer"] == VERIFIED and d["refused"] is False and d["question"] == QUESTION
    [c] = d["citations"]
    assert "每次推理仅激活 38B 参数" in c["quote"] and c["quote"] in c["text"]
    source = (ARTICLE_DIR / Path(c["source"]).name).read_text(encoding="utf-8")
    assert source[c["start"] : c["end"]] == c["text"]
    assert {"retrieve_s", "first_token_s", "total_s"} <= set(d["timings"])


def test_a_question_the_article_does_not_answer_is_refused_with_related_passages(index_dir):
    with serving(assistant_with(index_dir, scripted("不应被调用"))) as http:
        d = http.post("/api/ask", json={"question": "Python 的 GIL 是什么？"}).json()
    assert d["refused"] is True and d["answer"].startswith("文章没有提到") and d["citations"] == []
    assert d["refusal_reason"] == "no_match" and len(d["related"]) == 3, "no passage shares a keyword with it"


def test_the_stream_sends_draft_tokens_then_the_verified_answer(index_dir):
    draft = "印奇是旷视科技创始人 [1]。阶跃星辰的总部位于北京 [1]。"
    with serving(assistant_with(index_dir, scripted(draft))) as http:
        events = stream(http, {"question": "印奇是哪家公司的创始人？"})
    names = [name for name, _ in events]
    assert names[0] == "evidence" and names[-1] == "answer" and set(names[1:-1]) == {"token"} and len(names) > 5
    quote = events[0][1]
    assert "旷视" in quote["text"] and quote["citations"][0]["quote"] in quote["text"], "the supporting quote first"
    assert "".join(data["text"] for _, data in events[1:-1]) == draft
    answer = events[-1][1]
    assert "旷视" in answer["answer"] and "北京" not in answer["answer"], "the unsupported sentence is withdrawn"
    assert answer["citations"][0]["quote"]


def test_a_follow_up_uses_the_history(index_dir):
    llm = scripted("朱亦博具备万卡集群建设经验 [1]。")  # "他" resolves by rule to the role asked about
    with serving(assistant_with(index_dir, llm)) as http:
        d = http.post(
            "/api/ask", json={"question": "他有什么特别的经验？", "history": ["阶跃星辰的 CTO 是谁？"]}
        ).json()
    assert "万卡集群" in d["answer"] and not d["refused"] and "condense_s" in d["timings"]


# -- bad input -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(index_dir: Path) -> Iterator[httpx.Client]:
    with serving(assistant_with(index_dir, scripted(CTO_REPLY)), max_question_chars=100) as http:
        yield http


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 422, "question: Field required"),
        ({"question": ""}, 422, "question"),
        ({"question": "   "}, 422, "the question is empty"),
        ({"question": "融资" * 60}, 422, "120 characters long; the limit is 100"),
        ({"question": "融资" * 1001}, 422, "at most 2000 characters"),
        ({"question": 42}, 422, "question: Input should be a valid string"),
        ({"question": "CTO 是谁？", "history": "CTO"}, 422, "history"),
        ({"question": "CTO 是谁？", "history": ["a", 1]}, 422, "history.1"),
        ({"question": "CTO 是谁？", "fast": "yes"}, 422, "fast: Input should be a valid boolean"),
        ({"question": "CTO 是谁？", "questoin": "typo"}, 422, "questoin: Extra inputs are not permitted"),
        ([QUESTION], 422, "the request body"),
    ],
)
def test_bad_requests_get_clear_errors(plain, body, status, says):
    response = plain.post("/api/ask", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]


def test_malformed_json_is_a_400_that_says_so(plain):
    response = plain.post("/api/ask", content=b'{"question": "CTO', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "raw", "says"),
    [
        ("/api/ask", b'{"question": "\xff\xfe"}', "the body could not be read: send UTF-8 JSON"),
        ("/api/ask", b'{"question": "Step-3 \\ud800"}', "question: not valid text (it holds an unpaired surrogate"),
        ("/api/ask", b'{"question": "CTO", "history": ["\\udc00"]}', "history[0] is not valid text"),
        ("/api/ask", b'{"question": "\\u0000\\u001b[2J\\u202e"}', "the question is empty"),
        ("/api/ask/stream", b'{"question": "\\u0000\\u200b"}', "the question is empty"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud800 CTO"}]}', "not valid text"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": 42}]}', "send text, or a list of"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": [7]}]}', "messages.0.content: "),
    ],
)
def test_broken_text_and_bodies_that_are_not_utf8_get_a_json_4xx(plain, path, raw, says):
    response = plain.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/json", "a JSON error, not an event stream"
    error = response.json()["error"]
    assert says in (error["message"] if path.startswith("/v1/") else error)


def test_errors_never_echo_the_request_back(plain):
    question = "融资" * 1500
    response = plain.post("/api/ask", json={"question": question, "history": 5})
    assert response.status_code == 422 and "融资融资" not in response.text
    assert {"type", "loc", "msg"} == set(response.json()["detail"][0])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
ASK_BODIES = st.fixed_dictionaries(
    {"question": st.one_of(st.text(max_size=150), JSON_VALUES)},
    optional={"history": st.one_of(st.lists(st.text(max_size=30), max_size=3), JSON_VALUES), "fast": JSON_VALUES},
)
CHAT_BODIES = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(st.fixed_dictionaries({"role": JSON_VALUES, "content": JSON_VALUES})), JSON_VALUES)}
)


@settings(max_examples=60, deadline=None)
@given(
    path=st.sampled_from(["/api/ask", "/v1/chat/completions"]),
    body=st.one_of(ASK_BODIES, CHAT_BODIES, JSON_VALUES.map(json.dumps), st.binary(max_size=100)),
)
def test_any_body_gets_an_answer_or_a_json_4xx_never_a_500(plain, path, body):
    if isinstance(body, dict):
        response = plain.post(path, json=body)
    else:
        content = body if isinstance(body, bytes) else body.encode()
        response = plain.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 422), response.text
    data = response.json()
    assert ("error" in data) == (response.status_code != 200)


def test_huge_bodies_are_refused_whether_declared_or_streamed(plain):
    body = json.dumps({"question": "CTO 是谁？", "history": ["融资" * 500] * 40}).encode()
    assert len(body) > 64_000
    declared = plain.post("/api/ask", content=body, headers={"content-type": "application/json"})
    chunked = plain.post(
        "/api/ask", content=iter([body[:40_000], body[40_000:]]), headers={"content-type": "application/json"}
    )
    for response in (declared, chunked):
        assert response.status_code == 413 and "over 64000 bytes" in response.json()["error"]
    after = plain.post("/api/ask", json={"question": QUESTION})
    assert after.status_code == 200 and after.json()["answer"] == VERIFIED, "the next question is answered as ever"


def test_a_failure_inside_the_assistant_is_a_json_500_and_the_server_lives_on(index_dir, monkeypatch):
    assistant = assistant_with(index_dir, scripted(CTO_REPLY))
    monkeypatch.setattr(assistant, "ask", lambda *a, **k: 1 / 0)
    with serving(assistant) as http:
        response = http.post("/api/ask", json={"question": QUESTION})
        assert response.status_code == 500 and "internal error (ZeroDivisionError)" in response.json()["error"]
        assert http.get("/healthz").status_code == 200


# -- OpenAI-compatible -----------------------------------------------------------------------------


def test_openai_clients_get_the_verified_answer_with_sources_and_citations(index_dir):
    with serving(assistant_with(index_dir, scripted(CTO_REPLY))) as http:
        client = openai_client(http)
        assert [m.id for m in client.models.list()] == ["assistant"]
        completion = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": QUESTION}])
        chunks = list(
            client.chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
    content = completion.choices[0].message.content or ""
    assert content.startswith(VERIFIED) and "\n\nSources:\n[1] " in content and "¶" in content
    assert "每次推理仅激活 38B 参数" in content.split("Sources:")[1]
    extra = completion.model_extra or {}
    assert extra["refused"] is False and extra["citations"][0]["n"] == 1
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == content, "the stream carries the same verified answer"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["citations"] == extra["citations"]


def test_openai_messages_make_a_conversation(index_dir):
    llm = scripted("朱亦博具备万卡集群建设经验 [1]。")  # "他" resolves by rule: no condense call
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "阶跃星辰的 CTO 是谁？"},
        {"role": "assistant", "content": "朱亦博 [1]。"},
        {"role": "user", "content": [{"type": "text", "text": "他有什么特别的经验？"}]},
    ]
    with serving(assistant_with(index_dir, llm)) as http:
        completion = openai_client(http).chat.completions.create(model="any", messages=messages)  # type: ignore[arg-type]
        with pytest.raises(openai.UnprocessableEntityError, match="role"):
            openai_client(http).chat.completions.create(
                model="assistant", messages=[{"role": "system", "content": "x"}]
            )
    assert "万卡集群" in (completion.choices[0].message.content or "")


# -- access ----------------------------------------------------------------------------------------


def test_an_api_key_guards_the_api_and_readiness_but_not_the_health_check(index_dir):
    with serving(assistant_with(index_dir, scripted(CTO_REPLY)), api_key="s3cret") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = http.post("/api/ask", json={"question": QUESTION}, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in response.json()["error"]
        ok = http.post("/api/ask", json={"question": QUESTION}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["answer"] == VERIFIED
        assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 401
        assert http.get("/readyz", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        with pytest.raises(openai.AuthenticationError):
            openai_client(http, "wrong").models.list()
        assert [m.id for m in openai_client(http, "s3cret").models.list()] == ["assistant"]


def test_the_rate_limit_answers_429_with_retry_after(index_dir):
    with serving(assistant_with(index_dir, scripted(CTO_REPLY)), rate_limit_per_minute=2) as http:
        statuses = [http.get("/v1/models").status_code for _ in range(3)]
        limited = http.post("/api/ask", json={"question": QUESTION})
        assert all(http.get("/healthz").status_code == 200 for _ in range(5)), "health checks are not limited"
    assert statuses == [200, 200, 429] and limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 30 and "2 a minute" in limited.json()["error"]


def test_behind_a_trusted_proxy_the_rate_limit_counts_each_forwarded_client(index_dir):
    """uvicorn (as `assistant serve --proxy 127.0.0.1` runs it: nginx on the same host) takes the client from
    X-Forwarded-For only when the request comes from the trusted proxy, and then the rightmost address, the
    one the proxy itself appended."""
    llm = scripted(CTO_REPLY)
    with serving(assistant_with(index_dir, llm), rate_limit_per_minute=2) as http:
        first = [http.get("/v1/models", headers={"X-Forwarded-For": "203.0.113.7"}).status_code for _ in range(3)]
        other = http.get("/v1/models", headers={"X-Forwarded-For": "203.0.113.8"}).status_code
        forged = http.get("/v1/models", headers={"X-Forwarded-For": "203.0.113.9, 203.0.113.7"}).status_code
    assert first == [200, 200, 429] and other == 200
    assert forged == 429, "an address the client wrote itself, left of the proxy's, is not trusted"
    with serving(assistant_with(index_dir, llm), rate_limit_per_minute=2, forwarded_allow_ips="10.0.0.1") as http:
        direct = [http.get("/v1/models", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
    assert direct == [200, 200, 429], "a client that is not behind the trusted proxy cannot pick its address"


class ForwardingProxy:
    """One proxy hop as `deploy/nginx.conf` configures nginx: each request is passed to the server with
    X-Forwarded-For set to the peer it came from (or, `append`, added to what the client sent), from its own
    address `source` (the one the replicas trust, as nginx's fixed address in compose)."""

    def __init__(self, upstream: int, append: bool, source: str = "127.0.0.2") -> None:
        import socket

        self.upstream, self.append, self.source = upstream, append, source
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, (peer, _) = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pass, args=(conn, peer), daemon=True).start()

    def _pass(self, conn: Any, peer: str) -> None:
        import socket

        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = [line.split(":", 1) for line in lines[1:]]
            length = next((int(v) for k, v in fields if k.strip().lower() == "content-length"), 0)
            while len(body) < length:
                body += conn.recv(65536)
            sent = next((v.strip() for k, v in fields if k.strip().lower() == "x-forwarded-for"), "")
            forwarded = f"{sent}, {peer}" if self.append and sent else peer
            kept = [f"{k}:{v}" for k, v in fields if k.strip().lower() not in ("x-forwarded-for", "connection")]
            request = "\r\n".join([lines[0], *kept, f"X-Forwarded-For: {forwarded}", "Connection: close", "", ""])
            with socket.create_connection(("127.0.0.1", self.upstream), source_address=(self.source, 0)) as up:
                up.sendall(request.encode("latin-1") + body)
                while chunk := up.recv(65536):
                    conn.sendall(chunk)


def test_through_the_shipped_proxy_a_client_cannot_pick_its_rate_limit_bucket(index_dir):
    """The deployment as shipped: nginx (set as deploy/nginx.conf sets its X-Forwarded-For) in front of a replica
    that trusts X-Forwarded-For from nginx's address only (ASSISTANT_TRUSTED_PROXY in deploy/compose.yaml). A client
    that writes a new X-Forwarded-For on every request still lands in its own bucket; so does one that skips the
    proxy. nginx is published on loopback unless the operator says otherwise."""
    import yaml

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    nginx = (deploy / "nginx.conf").read_text(encoding="utf-8")
    header = re.search(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", nginx)
    compose = yaml.safe_load((deploy / "compose.yaml").read_text(encoding="utf-8"))
    trusted = compose["x-assistant"]["environment"]["ASSISTANT_TRUSTED_PROXY"]
    nginx_address = compose["services"]["nginx"].get("networks", {}).get("default", {}).get("ipv4_address")
    assert header is not None
    trust = "127.0.0.2" if trusted == nginx_address else trusted  # nginx's address is the proxy's here
    append = header[1] == "$proxy_add_x_forwarded_for"
    with serving(
        assistant_with(index_dir, scripted(CTO_REPLY)), rate_limit_per_minute=2, forwarded_allow_ips=trust
    ) as http:
        proxy = ForwardingProxy(http.base_url.port, append=append)  # type: ignore[arg-type]
        with httpx.Client(base_url=proxy.url, trust_env=False, timeout=30) as via_proxy:
            spoofed = [via_proxy.get("/v1/models", headers={"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(3)]
        direct = httpx.Client(
            base_url=str(http.base_url), trust_env=False, transport=httpx.HTTPTransport(local_address="127.0.0.3")
        )
        with direct:
            skipped = [direct.get("/v1/models", headers={"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(3)]
        proxy.listener.close()
    assert [r.status_code for r in spoofed] == [200, 200, 429], "through nginx: one client, one bucket"
    assert [r.status_code for r in skipped] == [200, 200, 429], "around nginx: the header is not believed"
    assert compose["services"]["nginx"]["ports"][0].startswith("${ASSISTANT_PUBLISH:-127.0.0.1}:")


# -- one answer at a time --------------------------------------------------------------------------


def test_past_the_queue_requests_get_503_busy_and_the_rest_are_answered(index_dir):
    with serving(assistant_with(index_dir, SlowEcho(delay=0.8)), queue_size=1) as http:
        with ThreadPoolExecutor(5) as pool:
            responses = list(pool.map(lambda _: http.post("/api/ask", json={"question": QUESTION}), range(5)))
        after = http.post("/api/ask", json={"question": "CTO 是谁？", "fast": True})
        assert after.status_code == 200 and "朱亦博" in after.json()["answer"], after.text
    assert sorted(r.status_code for r in responses) == [200, 200, 503, 503, 503]
    for busy in (r for r in responses if r.status_code == 503):
        assert busy.json() == {"error": "busy: 1 requests are waiting; retry shortly"}
        assert int(busy.headers["retry-after"]) >= 1


def test_requests_are_answered_in_arrival_order(index_dir):
    questions = ["阶跃星辰的 CTO 是谁？", "阶跃星辰的首席科学家是谁？", "Step-3 模型的总参数量是多少？", QUESTION]
    llm = SlowEcho(delay=0.3)
    with serving(assistant_with(index_dir, llm)) as http, ThreadPoolExecutor(4) as pool:
        futures = []
        for q in questions:
            futures.append(pool.submit(http.post, "/api/ask", json={"question": q}))
            time.sleep(0.1)
        assert all(f.result().status_code == 200 for f in futures)
    assert [p.rsplit("问题：", 1)[1].strip() for p in llm.prompts] == questions


def test_concurrent_conversations_never_see_each_others_history(index_dir):
    llm = SlowEcho(delay=0.2)
    histories = {"cto": ["阶跃星辰的 CTO 是谁？"], "scientist": ["阶跃星辰的首席科学家是谁？"]}
    with serving(assistant_with(index_dir, llm)) as http, ThreadPoolExecutor(2) as pool:
        drafts = dict(
            zip(
                histories,
                # "那…呢" is condensed by the model (a pronoun would be resolved by rule, with no model call)
                pool.map(lambda h: stream(http, {"question": "那有什么经验呢？", "history": h}), histories.values()),
                strict=True,
            )
        )
    for name, events in drafts.items():
        draft = "".join(data["text"] for event, data in events if event == "token")
        other = next(h for n, h in histories.items() if n != name)[0]
        assert histories[name][0] in draft and other not in draft, draft
        assert events[-1][0] == "answer"


def test_many_parallel_conversations_over_http_never_see_each_others_history(index_dir):
    """24 conversations of 3 turns each, all at once: every prompt the model sees, every draft and every
    answer belongs to exactly one conversation."""
    llm, n, tag = SlowEcho(delay=0.01), 24, re.compile(r"会话(\d\d)")

    def converse(i: int) -> list[tuple[str, str, dict[str, Any]]]:
        history: list[str] = []
        seen = []
        for turn in range(3):
            question = f"那有什么经验呢？（会话{i:02d}）"
            events = stream(http, {"question": question, "history": history})
            draft = "".join(data["text"] for event, data in events if event == "token")
            seen.append((question, draft, events[-1][1]))
            history.append(f"阶跃星辰的 CTO 是谁？（会话{i:02d}第{turn}轮）")
        return seen

    with serving(assistant_with(index_dir, llm), queue_size=n) as http, ThreadPoolExecutor(n) as pool:
        conversations = list(pool.map(converse, range(n)))
    for i, seen in enumerate(conversations):
        for question, draft, answer in seen:
            assert answer["question"] == question and set(tag.findall(draft)) <= {f"{i:02d}"}, draft
    assert sum(bool(draft) for seen in conversations for _, draft, _ in seen) >= n * 2, "the model saw most turns"
    assert len(llm.prompts) >= n * 4 and all(len(set(tag.findall(p))) == 1 for p in llm.prompts)


def test_a_client_leaving_mid_stream_gives_its_turn_back(index_dir):
    # LangChain's LCEL stream finishes the model's generation when closed early, so the turn comes back
    # when the (bounded) generation ends: here about 1.3 s.
    llm = scripted("印奇是旷视科技创始人，也是阶跃星辰的联合创始人 [1]。")
    llm.sleep = 0.05  # a token every 50 ms
    with serving(assistant_with(index_dir, llm), queue_size=0) as http:
        with http.stream("POST", "/api/ask/stream", json={"question": "印奇是哪家公司的创始人？"}) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("event: evidence")  # the supporting quote, then the model writes
            assert http.post("/api/ask", json={"question": QUESTION}).status_code == 503, "one answer at a time"
        deadline = time.monotonic() + 5
        while (response := http.post("/api/ask", json={"question": "CTO 是谁？", "fast": True})).status_code == 503:
            assert time.monotonic() < deadline, "the abandoned stream still holds the queue"
            time.sleep(0.05)
        assert response.status_code == 200 and response.json()["citations"]


def test_health_answers_at_once_while_an_answer_is_generated(index_dir):
    with serving(assistant_with(index_dir, SlowEcho(delay=2.0))) as http, ThreadPoolExecutor(1) as pool:
        answering = pool.submit(http.post, "/api/ask", json={"question": QUESTION})
        queue = http.app.state.answering.queue  # type: ignore[attr-defined]
        while not queue.busy:
            time.sleep(0.01)
        started = time.monotonic()
        assert http.get("/healthz").json() == {"status": "ok"}
        assert time.monotonic() - started < 0.5 and not answering.done()
        assert answering.result().status_code == 200


# -- readiness and schema --------------------------------------------------------------------------


def test_readyz_is_503_until_the_index_exists(tmp_path):
    assistant = make_assistant(ARTICLE_DIR, tmp_path / "no-index-yet")
    with serving(with_llm(assistant, scripted(CTO_REPLY))) as http:
        before = http.get("/readyz")
        asked = http.post("/api/ask", json={"question": QUESTION})
        streamed = stream(http, {"question": QUESTION})
        assistant.build_index()
        after = http.get("/readyz")
    assert before.status_code == 503 and "run `assistant index`" in before.json()["error"]
    assert asked.status_code == 503 and "run `assistant index`" in asked.json()["error"]
    assert streamed[-1][0] == "error" and streamed[-1][1]["status"] == 503
    assert after.status_code == 200 and after.json()["chunks"] > 10


def test_readyz_is_503_while_the_models_warm_up(index_dir):
    assistant = assistant_with(index_dir, SlowEcho(delay=1.5))  # a model that takes 1.5 s to load and answer
    with serving(assistant) as http, ThreadPoolExecutor(1) as pool:
        warming = pool.submit(assistant.warm)
        while assistant.warmth != "warming":
            time.sleep(0.01)
        during = http.get("/readyz")
        seconds = warming.result()
        after = http.get("/readyz")
    assert during.status_code == 503 and "loading" in during.json()["error"]
    assert after.status_code == 200 and after.json()["warm"] is True and seconds >= 1.5


def test_readyz_answers_from_what_is_loaded_and_never_reads_the_index_itself(tmp_path):
    """Probes come every few seconds from every balancer: after the first load, /readyz reads nothing from the
    index (no record metadata, no keyword index rebuilt). A build switched in by another writer is loaded once,
    in the background, while readiness keeps answering 200 from the build it has."""
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(ARTICLE_DIR, corpus)
    assistant = make_assistant(corpus, tmp_path / "index")
    assistant.build_index()
    reads: list[str] = []
    for name in ("stored_chunks", "documents", "info"):
        real = getattr(assistant.index, name)
        setattr(assistant.index, name, lambda *a, real=real, name=name: reads.append(name) or real(*a))
    with serving(with_llm(assistant, scripted(CTO_REPLY))) as http:
        first = [http.get("/readyz") for _ in range(20)]
        assert reads == ["stored_chunks"], "only the first probe loads the index"
        (corpus / "note.txt").write_text("札记\n\n星河一号于三月发布。", encoding="utf-8")
        make_assistant(corpus, tmp_path / "index").build_index()  # another writer switches a build in
        during = http.get("/readyz")
        deadline = time.monotonic() + 30
        while http.get("/readyz").json()["chunks"] == first[0].json()["chunks"]:
            assert time.monotonic() < deadline, "the new build was never loaded"
            time.sleep(0.05)
    assert all(r.status_code == 200 for r in first) and during.status_code == 200
    assert reads == ["stored_chunks", "stored_chunks"], "one background load for the new build"


def test_the_openapi_schema_describes_the_endpoints(plain):
    schema = plain.get("/openapi.json").json()
    assert {"/api/ask", "/api/ask/stream", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz"} <= set(
        schema["paths"]
    )
    ask = schema["paths"]["/api/ask"]["post"]
    request = schema["components"]["schemas"][
        ask["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    ]
    assert request["required"] == ["question"]
    assert (
        request["properties"]["question"]["type"] == "string" and request["properties"]["question"]["maxLength"] == 2000
    )
    assert request["properties"]["history"]["items"]["type"] == "string"
    assert request["properties"]["fast"]["type"] == "boolean"
    answer = schema["components"]["schemas"][
        ask["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    ]
    assert {"question", "answer", "refused", "citations", "timings", "models"} <= set(answer["required"])
    assert "text/event-stream" in schema["paths"]["/api/ask/stream"]["post"]["responses"]["200"]["content"]


@pytest.mark.parametrize(
    ("question", "refused", "says"),
    [("Step-3 每次推理激活多少参数？", False, "38B"), ("阶跃星辰的办公楼位于哪座城市？", True, "not_covered")],
)
def test_api_ask_returns_exactly_what_ask_json_prints(question: str, refused: bool, says: str, index_dir: Path):
    """One contract: the same question (an answer, and a refusal) through `/api/ask` and `ask --json` gives the
    same fields with the same values (times aside, and the citations' server `path`, which only the CLI and
    Python callers get), since both serialise `types.Answer`."""
    from conftest import run_cli

    env = {"ASSISTANT_CORPUS": str(ARTICLE_DIR), "ASSISTANT_INDEX_DIR": str(index_dir), "ASSISTANT_EMBEDDINGS": "fake"}
    printed = run_cli(["ask", question, "--json", "--fast"], env)
    assert printed.returncode == 0, printed.stderr
    cli = json.loads(printed.stdout)
    assert cli["refused"] is refused
    if refused:  # no sentence of the passages found says where the office is
        assert cli["refusal_reason"] == says and cli["related"], cli
    else:
        assert says in cli["answer"] and says in cli["citations"][0]["quote"], cli
    with serving(make_assistant(ARTICLE_DIR, index_dir)) as client:
        api = client.post("/api/ask", json={"question": question, "fast": True}).json()
    assert set(api) == set(cli) >= {"refusal_reason", "refusal_detail", "verification", "related"}
    for field in ("citations", "related"):
        assert all(c["path"] == "" for c in api[field]) and all(Path(c["path"]).is_absolute() for c in cli[field])
        for c in (*api[field], *cli[field]):
            c.pop("path")
    for field in set(api) - {"timings"}:
        assert api[field] == cli[field], field
    assert set(api["timings"]) == set(cli["timings"])


class ReportingModel(BaseChatModel):
    """Replies `reply` and reports token usage as llama.cpp does (usage_metadata on the message)."""

    reply: str

    @property
    def _llm_type(self) -> str:
        return "reporting"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        usage = {"input_tokens": 120, "output_tokens": 9, "total_tokens": 129}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply, usage_metadata=usage))])


def test_the_token_usage_of_an_answer_reaches_every_caller(index_dir):
    """`usage` in the answer contract, in OpenAI's non-streamed response, and (asked for with
    stream_options.include_usage) in a last chunk with no choices, as the official client reads them."""
    with serving(assistant_with(index_dir, ReportingModel(reply=CTO_REPLY))) as http:
        contract = http.post("/api/ask", json={"question": QUESTION}).json()
        client = openai_client(http)
        messages: Any = [{"role": "user", "content": QUESTION}]
        completion = client.chat.completions.create(model="assistant", messages=messages)
        chunks = list(
            client.chat.completions.create(
                model="assistant", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
    assert contract["usage"] == {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129, "calls": 1}
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.total_tokens) == (
        120,
        129,
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_errors_carry_a_string_code(index_dir):
    with (
        serving(assistant_with(index_dir, scripted(CTO_REPLY)), api_key="right") as http,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        openai_client(http, key="wrong").chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": QUESTION}]
        )
    assert refused.value.code == "invalid_api_key" and refused.value.status_code == 401


class RecordingModel(ReportingModel):
    """A ReportingModel that records the keyword arguments of each call (max_tokens among them)."""

    calls: list[dict[str, Any]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.calls.append(kw)
        return super()._generate(messages, stop, run_manager, **kw)


def test_max_tokens_is_honoured_up_to_the_servers_cap_and_temperature_refused(index_dir):
    llm = RecordingModel(reply=CTO_REPLY)
    messages: Any = [{"role": "user", "content": QUESTION}]
    with serving(assistant_with(index_dir, llm)) as http:
        client = openai_client(http)
        client.chat.completions.create(model="assistant", messages=messages, max_tokens=7)
        client.chat.completions.create(model="assistant", messages=messages, max_completion_tokens=100_000)
        client.chat.completions.create(model="assistant", messages=messages, temperature=0)
        with pytest.raises(openai.BadRequestError) as sampled:
            client.chat.completions.create(model="assistant", messages=messages, temperature=0.7)
    assert [c.get("max_tokens") for c in llm.calls] == [7, 96, 96], "capped at the server's 96"
    assert sampled.value.status_code == 400 and "temperature" in str(sampled.value)


def test_a_server_whose_chat_model_cannot_load_is_ready_and_answers_with_quotes(index_dir):
    """Only a missing index (or store) keeps /readyz at 503: a chat model that cannot load makes answers quote
    and say why, so the server is ready all the same (and does not retry the load on every probe)."""
    from assistant.models.llm import UnavailableChatModel

    assistant = assistant_with(index_dir, UnavailableChatModel(reason="no model file here"))
    assistant.warm()
    assert assistant.warmth == "warm"
    with serving(assistant) as http:
        assert http.get("/readyz").status_code == 200
        answer = http.post("/api/ask", json={"question": QUESTION}).json()
    assert "no model file here" in answer["answer"] and answer["citations"]


def test_feedback_on_an_answer_is_kept_and_comes_out_as_an_eval_item(index_dir, tmp_path):
    """POST /api/feedback with the answer /api/ask returned: stored with its question, history and citations;
    `assistant feedback report` counts it and `assistant feedback export` writes it as an eval item (a 👍 with
    its answer as the candidate gold). Bad ratings and bodies that are not an answer get a 422 and store nothing."""
    from conftest import run_cli

    with serving(assistant_with(index_dir, scripted(CTO_REPLY))) as http:
        answer = http.post("/api/ask", json={"question": QUESTION, "history": ["阶跃星辰是谁？"]}).json()
        kept = http.post(
            "/api/feedback",
            json={"answer": answer, "rating": "up", "comment": "对的", "history": ["阶跃星辰是谁？"]},
        )
        wrong = [
            http.post("/api/feedback", json={"answer": answer, "rating": "meh"}),
            http.post("/api/feedback", json={"answer": {"text": "x"}, "rating": "up"}),
            http.post("/api/feedback", json={"answer": answer, "rating": "down", "comment": "x" * 2001}),
        ]
    assert kept.status_code == 200 and kept.json()["id"] >= 1
    assert [r.status_code for r in wrong] == [422, 422, 422]
    env = {"ASSISTANT_CORPUS": str(ARTICLE_DIR), "ASSISTANT_INDEX_DIR": str(index_dir), "ASSISTANT_EMBEDDINGS": "fake"}
    report = run_cli(["feedback", "report", "--json"], env)
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)
    assert counts["up"] >= 1 and counts["by_source"].get("api", 0) >= 1
    out = tmp_path / "feedback.jsonl"
    exported = run_cli(["feedback", "export", "--out", str(out)], env)
    assert exported.returncode == 0 and "rated up" in exported.stdout, exported.stderr
    items = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    mine = [i for i in items if i["feedback"]["comment"] == "对的"]
    assert mine and mine[0]["turns"] == ["阶跃星辰是谁？", QUESTION] and mine[0]["answers"] == [VERIFIED]
    assert mine[0]["evidence"] and mine[0]["feedback"]["source"] == "api"
    assert run_cli(["feedback", "export"], env).returncode == 2, "export needs --out"
