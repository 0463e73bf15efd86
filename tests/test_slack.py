"""The Slack bot end to end: the real Bolt app over HTTP, signed requests, a fake Slack Web API on loopback.

The assistant runs over a real index (fake embeddings) with a scripted chat model; assertions read what a
Slack user would see: the final `chat.update` of the "thinking…" placeholder in the right thread.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field
from slack_sdk import WebClient

from assistant.core import Assistant
from assistant.errors import ConfigurationError
from assistant.interfaces.cli.main import main
from assistant.interfaces.slack.blocks import SECTION_LIMIT, WRITING, answer_blocks, answer_text
from assistant.interfaces.slack.bot import build_app, strip_mentions
from assistant.interfaces.slack.http import http_server
from assistant.interfaces.slack.serve import SlackTokens
from assistant.types import Answer, Citation

from conftest import ARTICLE_DIR, make_assistant, scripted, with_llm

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT = "UBOT"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeSlack:
    """Slack's Web API on 127.0.0.1: records every call (method, params, response), answers like Slack."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.replies: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (channel, thread ts) -> messages
        self.auth_error = ""  # set to make auth.test fail like Slack does for a bad token
        self.lock = threading.Lock()
        self._ts = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                self._answer(path, dict(urllib.parse.parse_qsl(query)))

            def do_POST(self) -> None:
                path, _, query = self.path.partition("?")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(urllib.parse.parse_qsl(raw or query))
                for key in ("blocks", "metadata"):
                    if isinstance(params.get(key), str):
                        params[key] = json.loads(params[key])
                self._answer(path, params)

            def _answer(self, path: str, params: dict[str, Any]) -> None:
                method = path.rsplit("/", 1)[-1] if path.startswith("/api/") else "response_url"
                with fake.lock:
                    response = fake.respond(method, params)
                    fake.calls.append((method, params, response))
                data = json.dumps(response).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def respond(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test" and self.auth_error:
            return {"ok": False, "error": self.auth_error}
        if method == "auth.test":
            return {"ok": True, "user_id": BOT, "bot_id": "BBOT", "team_id": "T1", "user": "assistant"}
        if method == "chat.postMessage":
            ts = f"1800000000.{next(self._ts):06d}"
            return {"ok": True, "channel": params["channel"], "ts": ts, "message": {"text": params.get("text")}}
        if method == "chat.update":
            return {"ok": True, "channel": params["channel"], "ts": params["ts"], "text": params.get("text")}
        if method == "conversations.replies":
            return {"ok": True, "messages": self.replies.get((params["channel"], params["ts"]), [])}
        return {"ok": True}

    def of(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for m, p, _ in self.calls if m == method]

    def posts_in(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """What the bot posted in a thread (or at the channel's top level), each with the `ts` Slack gave it."""
        with self.lock:
            return [
                {**p, "ts": r["ts"]}
                for m, p, r in self.calls
                if m == "chat.postMessage" and (p["channel"], p.get("thread_ts")) == (channel, thread_ts)
            ]

    def final_reply(self, channel: str, thread_ts: str, timeout: float = 8.0) -> dict[str, Any]:
        """The `chat.update` that replaced the placeholder in this thread with the answer (polls until it
        arrives; an earlier update showing the supporting quote while the answer is written is skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for post in self.posts_in(channel, thread_ts):
                updates = [u for u in self.of("chat.update") if u["ts"] == post["ts"] and WRITING not in u["text"]]
                if updates:
                    return updates[-1]
            time.sleep(0.02)
        raise AssertionError(f"no answer in thread {channel}/{thread_ts}; calls: {self.calls}")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    index_dir = tmp_path_factory.mktemp("slack-index")
    make_assistant(ARTICLE_DIR, index_dir).build_index()
    return ARTICLE_DIR, index_dir


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


class Bot:
    """The real Bolt app served over HTTP on a free loopback port; `post` sends signed requests to it."""

    def __init__(self, assistant: Assistant, fake: FakeSlack) -> None:
        client = WebClient(token="xoxb-test", base_url=fake.url + "/api/")
        self.app = build_app(assistant, signing_secret=SECRET, client=client)
        self.server = http_server(self.app, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def post(
        self, body: str, *, form: bool = False, timestamp: int | None = None, secret: str = SECRET, **headers: str
    ) -> tuple[int, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.url, data=body.encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded" if form else "application/json")
        request.add_header("X-Slack-Request-Timestamp", ts)
        request.add_header("X-Slack-Signature", f"v0={digest}")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with OPENER.open(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def start_bot(slack: FakeSlack) -> Iterator[Callable[[Assistant], Bot]]:
    bots: list[Bot] = []

    def start(assistant: Assistant) -> Bot:
        bots.append(Bot(assistant, slack))
        return bots[-1]

    yield start
    for bot in bots:
        bot.server.shutdown()
        bot.server.server_close()


class Spy:
    """Wraps `assistant.stream`, recording each question, its history and the answer (optionally slowly)."""

    def __init__(self, assistant: Assistant, delay: float = 0.0) -> None:
        self.asked: list[tuple[str, list[str]]] = []
        self.answers: list[Answer] = []
        self._stream, self.delay = assistant.stream, delay
        assistant.stream = self  # type: ignore[method-assign]

    def __call__(self, question: str, history: Any = (), fast: bool = False) -> Iterator[Any]:
        self.asked.append((question, list(history)))
        time.sleep(self.delay)
        for event in self._stream(question, history, fast=fast):
            if isinstance(event, Answer):
                self.answers.append(event)
            yield event


def event(kind: str, text: str, ts: str, channel: str = "C1", event_id: str | None = None, **extra: Any) -> str:
    body = {
        "token": "legacy",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id or f"Ev{ts.replace('.', '')}",
        "event_time": int(time.time()),
        "event": {"type": kind, "user": "U1", "text": text, "ts": ts, "channel": channel, "event_ts": ts, **extra},
    }
    return json.dumps(body, ensure_ascii=False)


def command(text: str, trigger_id: str, response_url: str) -> str:
    fields = {
        "token": "legacy",
        "team_id": "T1",
        "channel_id": "C2",
        "user_id": "U1",
        "command": "/ask",
        "text": text,
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urllib.parse.urlencode(fields)


def shown(reply: dict[str, Any]) -> str:
    """Everything a user reads in a message: each block's text and context elements."""
    parts = []
    for block in reply["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [e["text"] if isinstance(e["text"], str) else e["text"]["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


def sentinel(bot: Bot, slack: FakeSlack, ts: str) -> None:
    """A question sent and answered after the request under test: by then, any reply to it would be posted; and
    the bot still answers right (every assistant the sentinel is sent to has the model that says STEP3)."""
    bot.post(event("app_mention", f"<@{BOT}> {SENTINEL}", ts, channel="CS"))
    assert said(slack.final_reply("CS", ts)) == VERIFIED


def said(reply: dict[str, Any]) -> str:
    """The answer (or refusal) a message shows: its first block, without the sources under it."""
    return str(reply["blocks"][0]["text"]["text"])


STEP3 = "Step-3 每次推理仅激活 38B 参数 [1]。"
VERIFIED = "Step-3 每次推理仅激活 38B 参数。[1]"  # STEP3 as the verified answer shows it
SENTINEL = "Step-3 模型每次推理激活多少参数？"


def step3_assistant(indexed: tuple[Path, Path], delay: float = 0.0) -> tuple[Assistant, Spy]:
    assistant = with_llm(make_assistant(*indexed), scripted(STEP3))
    return assistant, Spy(assistant, delay)


def test_a_mention_is_answered_in_its_thread_with_sources(indexed, slack, start_bot):
    assistant, spy = step3_assistant(indexed)
    bot = start_bot(assistant)
    status, _ = bot.post(event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "1700000000.000100"))
    assert status == 200
    reply = slack.final_reply("C1", "1700000000.000100")
    [placeholder] = slack.posts_in("C1", "1700000000.000100")
    assert placeholder["text"] == "thinking…"
    [c] = spy.answers[0].citations
    answer, sources, context, buttons = reply["blocks"]
    assert answer["text"]["text"] == "Step-3 每次推理仅激活 38B 参数。[1]"  # verified, marker after the full stop
    assert [b["action_id"] for b in buttons["elements"]] == ["feedback_up", "feedback_down"]
    assert "*Sources*" in sources["text"]["text"]
    assert f"*[1]* {c.section} · ¶{c.paragraph}" in sources["text"]["text"] and c.section
    assert "每次推理仅激活 38B 参数" in c.quote and c.quote in sources["text"]["text"]
    footer = context["elements"][0]["text"]
    assert footer.startswith(spy.answers[0].models["llm"]) and " · fake · " in footer and footer.endswith(" s")
    assert "38B" in reply["text"] and "[1]" in reply["text"], "a plain-text fallback for notifications"
    assert spy.asked == [("Step-3 每次推理激活多少参数？", [])], "mention stripped; a new thread has no history"
    assert slack.of("conversations.replies") == []


def test_the_supporting_quote_replaces_the_placeholder_before_the_answer(indexed, slack, start_bot):
    assistant, spy = step3_assistant(indexed)
    bot = start_bot(assistant)
    bot.post(event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "1700000000.000150"))
    final = slack.final_reply("C1", "1700000000.000150")
    [placeholder] = slack.posts_in("C1", "1700000000.000150")
    first, last = [u for u in slack.of("chat.update") if u["ts"] == placeholder["ts"]]
    assert WRITING in first["text"] and "“" in first["text"] and "38B" in first["text"], "a labelled quote first"
    assert last == final and WRITING not in last["text"] and not spy.answers[0].refused


def test_a_direct_message_is_answered_and_bot_posts_and_edits_are_ignored(indexed, slack, start_bot):
    assistant, spy = step3_assistant(indexed)
    bot = start_bot(assistant)
    im = {"channel_type": "im"}
    bot.post(event("message", "Step-3 每次推理激活多少参数？", "1700000001.000100", channel="D1", **im))
    bot.post(event("message", "Step-3 呢？", "1700000001.000200", channel="D1", bot_id="BOTHER", **im))
    bot.post(event("message", "Step-3 呢？", "1700000001.000300", channel="D1", subtype="message_changed", **im))
    assert said(slack.final_reply("D1", "1700000001.000100")) == VERIFIED
    sentinel(bot, slack, "1700000001.000900")
    assert [q for q, _ in spy.asked] == ["Step-3 每次推理激活多少参数？", SENTINEL]
    assert slack.posts_in("D1", "1700000001.000200") == slack.posts_in("D1", "1700000001.000300") == []


def test_a_follow_up_in_a_thread_is_asked_with_the_earlier_user_turns(indexed, slack, start_bot):
    llm = scripted("朱亦博具备万卡集群建设经验 [1]。")  # "他" resolves by rule: no condense call
    assistant = with_llm(make_assistant(*indexed), llm)
    spy = Spy(assistant)
    bot = start_bot(assistant)
    root, later = "1700000002.000100", "1700000002.000300"
    slack.replies[("C1", root)] = [
        {"type": "message", "user": "U1", "text": f"<@{BOT}> 阶跃星辰的 CTO 是谁？", "ts": root},
        {"type": "message", "user": BOT, "bot_id": "BBOT", "text": "CTO 是朱亦博 [1]。", "ts": "1700000002.000200"},
        {"type": "message", "user": "U1", "text": f"<@{BOT}> 他有什么特别的经验？", "ts": later, "thread_ts": root},
    ]
    bot.post(event("app_mention", f"<@{BOT}> 他有什么特别的经验？", later, thread_ts=root))
    reply = slack.final_reply("C1", root)
    assert spy.asked == [("他有什么特别的经验？", ["阶跃星辰的 CTO 是谁？"])]
    assert "万卡集群" in reply["blocks"][0]["text"]["text"] and "万卡集群建设经验" in shown(reply)
    [replies] = slack.of("conversations.replies")
    assert (replies["channel"], replies["ts"]) == ("C1", root)


def test_a_follow_up_under_a_slash_command_question_keeps_that_question(indexed, slack, start_bot):
    llm = scripted("朱亦博具备万卡集群建设经验 [1]。")  # "他" resolves by rule: no condense call
    assistant = with_llm(make_assistant(*indexed), llm)
    spy = Spy(assistant)
    bot = start_bot(assistant)
    root, later = "1800000000.000001", "1800000000.000009"
    quoted = {"event_type": "assistant_question", "event_payload": {"question": "阶跃星辰的 CTO 是谁？"}}
    slack.replies[("C2", root)] = [
        {"type": "message", "user": BOT, "bot_id": "BBOT", "text": "<@U1> asked: …", "ts": root, "metadata": quoted},
        {"type": "message", "user": "U1", "text": f"<@{BOT}> 他有什么特别的经验？", "ts": later, "thread_ts": root},
    ]
    bot.post(event("app_mention", f"<@{BOT}> 他有什么特别的经验？", later, channel="C2", thread_ts=root))
    assert "万卡集群" in shown(slack.final_reply("C2", root))
    assert spy.asked == [("他有什么特别的经验？", ["阶跃星辰的 CTO 是谁？"])]
    assert slack.of("conversations.replies")[0]["include_all_metadata"] in (True, "true", "1")


def test_slash_command_acks_at_once_then_answers_in_a_thread_under_the_question(indexed, slack, start_bot):
    assistant, spy = step3_assistant(indexed, delay=1.0)
    bot = start_bot(assistant)
    started = time.monotonic()
    status, body = bot.post(
        command("Step-3 每次推理激活多少参数？", "13345224609.738474", slack.url + "/respond"), form=True
    )
    acked = time.monotonic() - started
    assert status == 200 and acked < 1.0, f"ack took {acked:.2f}s"
    assert json.loads(body)["response_type"] == "ephemeral" and "Working on it" in json.loads(body)["text"]
    assert slack.of("chat.update") == [], "the answer comes after the ack"
    deadline = time.monotonic() + 5
    while not slack.posts_in("C2") and time.monotonic() < deadline:
        time.sleep(0.02)
    [question] = slack.posts_in("C2")
    assert "Step-3 每次推理激活多少参数？" in question["blocks"][0]["text"]["text"] and "<@U1>" in question["text"]
    assert question["metadata"]["event_payload"] == {"question": "Step-3 每次推理激活多少参数？"}
    reply = slack.final_reply("C2", question["ts"])
    assert said(reply) == VERIFIED and "每次推理仅激活 38B 参数" in shown(reply).split("*Sources*")[1]
    assert spy.asked == [("Step-3 每次推理激活多少参数？", [])]


def test_an_empty_slash_command_gets_usage_and_no_post(indexed, slack, start_bot):
    bot = start_bot(step3_assistant(indexed)[0])
    status, body = bot.post(command("  ", "1.2", slack.url + "/respond"), form=True)
    assert status == 200 and "/ask <question>" in json.loads(body)["text"]
    sentinel(bot, slack, "1700000003.000900")
    assert slack.posts_in("C2") == []


@pytest.mark.parametrize(
    ("secret", "age"), [("wrong-secret", 0), (SECRET, 6 * 60)], ids=["bad signature", "old timestamp"]
)
def test_unverified_requests_get_401_and_no_reply(indexed, slack, start_bot, secret, age):
    assistant, spy = step3_assistant(indexed)
    bot = start_bot(assistant)
    body = event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "1700000004.000100")
    status, _ = bot.post(body, secret=secret, timestamp=int(time.time()) - age)
    assert status == 401
    sentinel(bot, slack, "1700000004.000900")
    assert slack.posts_in("C1", "1700000004.000100") == [] and [q for q, _ in spy.asked] == [SENTINEL]


def test_retries_and_duplicate_deliveries_are_acknowledged_without_a_second_answer(indexed, slack, start_bot):
    assistant, spy = step3_assistant(indexed)
    bot = start_bot(assistant)
    ts = "1700000005.000100"
    body = event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", ts, event_id="Ev1")
    assert bot.post(body)[0] == 200
    assert said(slack.final_reply("C1", ts)) == VERIFIED
    assert bot.post(body, X_Slack_Retry_Num="1", X_Slack_Retry_Reason="http_timeout")[0] == 200
    assert bot.post(body)[0] == 200  # the same event_id delivered again
    same_message = event("message", "Step-3 每次推理激活多少参数？", ts, event_id="Ev2", channel_type="channel")
    assert bot.post(same_message)[0] == 200  # another event about the same message (channel + ts)
    sentinel(bot, slack, "1700000005.000900")
    assert len(slack.posts_in("C1", ts)) == 1 and len(spy.asked) == 2


def test_a_retry_of_an_event_never_seen_is_answered_once(indexed, slack, start_bot):
    """Slack retries when the first delivery never arrived (e.g. the bot was restarting): answer it then."""
    bot = start_bot(step3_assistant(indexed)[0])
    body = event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "1700000006.000100")
    bot.post(body, X_Slack_Retry_Num="1")
    assert said(slack.final_reply("C1", "1700000006.000100")) == VERIFIED


def test_a_refusal_says_the_article_does_not_say_and_lists_related_passages(indexed, slack, start_bot):
    assistant = with_llm(make_assistant(*indexed), scripted("阶跃星辰的总部位于北京 [1]。"))
    spy = Spy(assistant)
    bot = start_bot(assistant)
    bot.post(event("app_mention", f"<@{BOT}> 阶跃星辰的总部位于哪个城市？", "1700000007.000100"))
    reply = slack.final_reply("C1", "1700000007.000100")
    assert spy.answers[0].refusal_reason == "unverified", "the model's 北京 has no passage behind it"
    assert reply["blocks"][0]["text"]["text"].startswith("文章没有提到")
    assert "*Related (not cited)*" in shown(reply) and "Sources" not in shown(reply)
    assert reply["text"].startswith("文章没有提到")


def raw_post(bot: Bot, headers: str, body: bytes = b"") -> int:
    """The status of a hand-written POST to the bot's events URL (what a broken client or a scanner sends)."""
    port = int(bot.url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"POST /slack/events HTTP/1.1\r\nHost: bot\r\n{headers}\r\n\r\n".encode() + body)
        return int(conn.recv(200).split()[1])


def test_malformed_requests_get_4xx_at_once_and_the_bot_keeps_answering(indexed, slack, start_bot):
    assistant, spy = step3_assistant(indexed)
    bot = start_bot(assistant)
    assert raw_post(bot, "Content-Length: abc") == 400
    assert raw_post(bot, "Content-Length: -1") == 400, "not a read until the client hangs up"
    assert raw_post(bot, "Content-Length: 2000000") == 413
    assert raw_post(bot, "Content-Length: 4", b"\xff\xfe\xfd\xfc") == 400
    assert bot.post("{not json", secret="anyone")[0] == 400
    assert bot.post("[1, 2]")[0] == 400
    no_channel = json.loads(event("app_mention", f"<@{BOT}> Step-3？", "1700000010.000100"))
    del no_channel["event"]["channel"]
    assert bot.post(json.dumps(no_channel))[0] == 200
    sentinel(bot, slack, "1700000010.000900")
    assert [q for q, _ in spy.asked] == [SENTINEL] and slack.posts_in("C1") == []


@pytest.mark.parametrize(
    ("text", "says"),
    [("\x00\x1b[2J\u202e", "the question is empty"), ("融资" * 1500, "the question is 3000 characters long")],
    ids=["control characters only", "too long"],
)
def test_a_mention_with_an_unusable_question_gets_a_polite_reply_saying_why(indexed, slack, start_bot, text, says):
    bot = start_bot(step3_assistant(indexed)[0])
    bot.post(event("app_mention", f"<@{BOT}> {text}", "1700000011.000100"))
    reply = slack.final_reply("C1", "1700000011.000100")
    assert reply["text"].startswith("Sorry — I couldn't answer that: ") and says in reply["text"]


def test_an_unusable_slash_command_is_answered_in_the_ack_and_nothing_is_posted(indexed, slack, start_bot):
    bot = start_bot(step3_assistant(indexed)[0])
    status, body = bot.post(command("x" * 100_000, "9.1", slack.url + "/respond"), form=True)
    assert status == 200
    ack = json.loads(body)
    assert ack["response_type"] == "ephemeral" and "100000 characters long; the limit is 2000" in ack["text"]
    sentinel(bot, slack, "1700000012.000900")
    assert slack.posts_in("C2") == []


def test_a_question_echoed_back_cannot_ping_the_channel(indexed, slack, start_bot):
    bot = start_bot(step3_assistant(indexed)[0])
    status, body = bot.post(
        command("<!channel> Step-3 每次推理激活多少参数？", "9.2", slack.url + "/respond"), form=True
    )
    assert status == 200 and "<!channel>" not in json.loads(body)["text"]
    deadline = time.monotonic() + 5
    while not slack.posts_in("C2") and time.monotonic() < deadline:
        time.sleep(0.02)
    [question] = slack.posts_in("C2")
    shown_to_people = json.dumps([question["text"], question["blocks"]], ensure_ascii=False)
    assert "<!channel>" not in shown_to_people and "channel" not in question["text"]  # the markup is no question
    assert "38B" in said(slack.final_reply("C2", question["ts"]))


def test_a_missing_index_becomes_a_polite_reply_in_the_thread(slack, start_bot, tmp_path):
    bot = start_bot(with_llm(make_assistant(ARTICLE_DIR, tmp_path / "no-index"), scripted(STEP3)))
    bot.post(event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "1700000008.000100"))
    reply = slack.final_reply("C1", "1700000008.000100")
    assert reply["text"].startswith("Sorry — I couldn't answer that: no index at")
    assert "run `assistant index`" in shown(reply)


def test_an_unexpected_failure_becomes_a_polite_reply(indexed, slack, start_bot):
    assistant = make_assistant(*indexed)
    assistant.stream = lambda *a, **k: iter([1 / 0])  # type: ignore[method-assign]
    bot = start_bot(assistant)
    bot.post(event("app_mention", f"<@{BOT}> Step-3？", "1700000009.000100"))
    reply = slack.final_reply("C1", "1700000009.000100")
    assert reply["text"].startswith("Sorry — something went wrong while answering (ZeroDivisionError)")


def citation(n: int, quote: str) -> Citation:
    return Citation(n, f"id{n}", "a.txt", "Title", n, 0, 10, quote, quote, section="第一节")


def test_blocks_stay_within_slack_limits():
    long = Answer(
        "问" * 5000 + " <b> & [1]",
        "a&b" * 2000,
        False,
        tuple(citation(n, "句" * 500) for n in range(1, 40)),
        {"total_s": 5.08},
        {"llm": "qwen", "embeddings": "e5-small"},
    )
    blocks = answer_blocks(long)
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if "text" in b)
    assert blocks[0]["text"]["text"].endswith("…") and not blocks[0]["text"]["text"].endswith("&…")
    assert blocks[1]["text"]["text"].endswith("\n…") and "*[1]* 第一节 · ¶1" in blocks[1]["text"]["text"]
    assert blocks[-1]["elements"][0]["text"] == "qwen · e5-small · 5.1 s"
    assert len(answer_text(long)) <= 3000
    small = Answer("q", "x <y> & z [1]", False, (citation(1, "x"),), {}, {})
    assert answer_blocks(small)[0]["text"]["text"] == "x &lt;y&gt; &amp; z [1]"


def test_mentions_are_stripped():
    assert strip_mentions(f"<@{BOT}>  CTO 是谁？ ", BOT) == "CTO 是谁？"
    assert strip_mentions(f"<@{BOT}|assistant> 问 <@U2>", BOT) == "问 <@U2>"
    asked = strip_mentions(f"<@{BOT}> <!channel> Step-3 每次推理激活多少参数？<!here>", BOT)
    assert asked == "Step-3 每次推理激活多少参数？"
    assert strip_mentions("<!subteam^S1|@team> CTO 是谁？") == "CTO 是谁？"


def test_missing_tokens_name_the_variables_to_set(indexed, monkeypatch, capsys):
    with pytest.raises(ConfigurationError, match="SLACK_BOT_TOKEN and SLACK_APP_TOKEN"):
        SlackTokens.from_env(http=False, env={})
    with pytest.raises(ConfigurationError, match="set SLACK_SIGNING_SECRET"):
        SlackTokens.from_env(http=True, env={"SLACK_BOT_TOKEN": "xoxb-1"})
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    corpus, index_dir = indexed
    code = main(["slack", "--http", "--corpus", str(corpus), "--index-dir", str(index_dir), "--embeddings", "fake"])
    assert code == 2 and "set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET" in capsys.readouterr().err


def test_a_rejected_bot_token_is_a_configuration_error(indexed, slack):
    slack.auth_error = "invalid_auth"
    client = WebClient(token="xoxb-revoked", base_url=slack.url + "/api/")
    with pytest.raises(ConfigurationError, match="invalid_auth.*set SLACK_BOT_TOKEN"):
        build_app(make_assistant(*indexed), signing_secret=SECRET, client=client)


class TimedModel(GenericFakeChatModel):
    """Replies STEP3 after `delay` seconds and records when each answer call ran (start, end)."""

    messages: Any = iter(())
    delay: float = 0.6
    ran: list[tuple[float, float]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        started = time.monotonic()
        time.sleep(self.delay)
        self.messages = iter([AIMessage(content=STEP3)])
        result = super()._generate(messages, stop=stop, run_manager=run_manager, **kw)
        self.ran.append((started, time.monotonic()))
        return result


def test_one_server_answers_the_page_the_api_and_slack_from_one_queue(indexed, slack):
    """`assistant serve --slack` (HTTP events): a Slack mention and an API question sent together are both
    answered by the one model of the one process, one after the other (the queue), never at once."""
    from assistant.interfaces.http.server import build_server

    from conftest import running

    model = TimedModel()
    assistant = with_llm(make_assistant(*indexed), model)
    client = WebClient(token="xoxb-test", base_url=slack.url + "/api/")
    with running(build_server(assistant, build_app(assistant, signing_secret=SECRET, client=client))) as url:
        bot = Bot.__new__(Bot)  # the signed-request helper, pointed at the server's own /slack/events
        bot.url = f"{url}/slack/events"
        question = json.dumps({"question": "Step-3 每次推理激活多少参数？"}).encode()
        api = urllib.request.Request(f"{url}/api/ask", data=question, headers={"Content-Type": "application/json"})
        assert bot.post(event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "50.1"))[0] == 200
        with OPENER.open(api, timeout=30) as response:
            answered = json.loads(response.read())
        reply = slack.final_reply("C1", "50.1", timeout=30)
    assert not answered["refused"] and "38B" in answered["answer"]
    assert "38B" in shown(reply)
    answers = [r for r in model.ran if r[1] - r[0] >= model.delay]
    assert len(answers) >= 2, model.ran
    ordered = sorted(answers)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered)), f"answers overlapped: {ordered}"


def test_the_servers_slack_route_refuses_oversized_and_undecodable_bodies_before_bolt(indexed, slack):
    from assistant.interfaces.http.server import SLACK_MAX_BYTES, build_server

    from conftest import running

    assistant = with_llm(make_assistant(*indexed), scripted(STEP3))
    client = WebClient(token="xoxb-test", base_url=slack.url + "/api/")
    with running(build_server(assistant, build_app(assistant, signing_secret=SECRET, client=client))) as url:

        def post(body: bytes) -> int:
            request = urllib.request.Request(f"{url}/slack/events", data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            try:
                with OPENER.open(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(b"x" * (SLACK_MAX_BYTES + 1)) == 413
        assert post(b"\xff\xfe not utf-8") == 400
        assert post(b"not json") == 400
        assert post(b"{}") == 401, "an unsigned body reaches Bolt, which refuses it"


@pytest.mark.parametrize("thumb", ["down", "up"])
def test_a_thumb_under_an_answer_is_kept_with_it_and_exported_as_an_eval_item(
    thumb, indexed, slack, start_bot, tmp_path
):
    """A 👎 or 👍 click (a signed interactivity request, as Slack sends it) lands in the feedback store with the
    answer and the thread's question, the message shows the choice instead of the buttons, and
    `assistant feedback export` turns it into an eval item: a 👎 marked for a person to label, a 👍 with its
    answer as candidate gold (the bot kept the answer the server gave, with its id)."""
    assistant = with_llm(make_assistant(*indexed, feedback_db=str(tmp_path / "feedback.sqlite3")), scripted(STEP3))
    bot = start_bot(assistant)
    bot.post(event("app_mention", f"<@{BOT}> Step-3 每次推理激活多少参数？", "1700000000.000900"))
    reply = slack.final_reply("C1", "1700000000.000900")
    [buttons] = [b for b in reply["blocks"] if b["type"] == "actions"]
    clicked = next(e for e in buttons["elements"] if e["action_id"] == f"feedback_{thumb}")
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "api_app_id": "A1",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "channel": {"id": "C1"},
        "container": {"type": "message", "message_ts": reply["ts"], "channel_id": "C1"},
        "message": {"ts": reply["ts"], "text": reply["text"], "blocks": reply["blocks"]},
        "actions": [{**clicked, "block_id": "feedback", "type": "button", "action_ts": "1700000001.0"}],
    }
    status, _ = bot.post(urllib.parse.urlencode({"payload": json.dumps(payload, ensure_ascii=False)}), form=True)
    assert status == 200
    deadline = time.monotonic() + 8
    while not [u for u in slack.of("chat.update") if "rated" in json.dumps(u, ensure_ascii=False)]:
        assert time.monotonic() < deadline, "the message never showed the rating"
        time.sleep(0.05)
    [rated] = assistant.feedback.rows()
    assert rated["rating"] == (1 if thumb == "up" else -1) and rated["verified"] == 1
    assert rated["source"] == "slack" and rated["question"] == "Step-3 每次推理激活多少参数？"
    assert rated["answer"]["answer"] == "Step-3 每次推理仅激活 38B 参数。[1]" and rated["answer"]["citations"]
    exported = assistant.feedback.export(tmp_path / "feedback.jsonl")
    [item] = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
    assert item["turns"] == ["Step-3 每次推理激活多少参数？"] and item["feedback"]["rating"] == thumb
    if thumb == "down":
        assert (exported.gold, exported.to_label) == (0, 1) and item["needs_label"] is True
    else:
        assert (exported.gold, exported.to_label) == (1, 0) and "needs_label" not in item
        assert item["answers"] == ["Step-3 每次推理仅激活 38B 参数。[1]"] and item["evidence"]
