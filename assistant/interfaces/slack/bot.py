"""A Slack bot (Bolt for Python) over an `Assistant`: mentions, DMs and `/ask`, answered in threads.

Receives a built `Assistant` and a Slack client; posts a "thinking…" placeholder, then replaces it
with the Block Kit answer (`blocks`). Earlier user turns of the thread become the history. Text
echoed back (questions, answers) is escaped, so it cannot mention @channel. Its tokens and running it
(Socket Mode or the HTTP Events API) are `serve`'s; the HTTP endpoint for the Events API is `http`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from assistant.admission import Busy
from assistant.checks.inputs import check_question
from assistant.core import Assistant
from assistant.errors import AssistantError, ConfigurationError, InputError
from assistant.interfaces.slack.blocks import (
    answer_blocks,
    answer_text,
    escape,
    evidence_blocks,
    evidence_text,
    feedback_block,
    message_blocks,
    question_blocks,
    rated_blocks,
)
from assistant.types import Answer, Evidence

log = logging.getLogger(__name__)

THINKING = "thinking…"
QUESTION_EVENT = "assistant_question"  # message metadata marking a /ask question the bot quoted
MAX_HISTORY = 10  # earlier user turns passed to the assistant
MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
# Slack's broadcast markup (<!channel>, <!here>, <!everyone>, <!subteam^S1|@team>): addressed to people, never asked
BROADCAST = re.compile(r"<![^>]*>")


class SeenKeys:
    """A bounded, thread-safe LRU of delivery keys (event ids, channel+ts, trigger ids)."""

    def __init__(self, maxsize: int = 2048) -> None:
        self.maxsize = maxsize
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, keys: Iterable[str]) -> bool:
        """Record `keys`; False when any of them was seen before."""
        keys = list(keys)
        with self._lock:
            seen = any(k in self._keys for k in keys)
            for k in keys:
                self._keys[k] = None
                self._keys.move_to_end(k)
            while len(self._keys) > self.maxsize:
                self._keys.popitem(last=False)
            return not seen


def build_app(
    assistant: Assistant,
    *,
    token: str | None = None,
    signing_secret: str,
    client: WebClient | None = None,
    fast: bool = False,
    seen: SeenKeys | None = None,
) -> App:
    """A Bolt `App` answering mentions, DMs and `/ask` with `assistant` (checks the token with auth.test)."""
    try:
        if client is not None:
            app = App(client=client, signing_secret=signing_secret, name="assistant")
        else:
            app = App(token=token, signing_secret=signing_secret, name="assistant")
    except BoltError as exc:
        raise ConfigurationError(
            f"Slack rejected the bot token ({exc}): set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) "
            "from your app's OAuth & Permissions page"
        ) from exc
    bot = _Bot(assistant, fast, seen or SeenKeys())
    app.middleware(bot.skip_duplicates)
    app.event("app_mention")(bot.on_mention)
    app.event("message")(bot.on_message)
    app.command("/ask")(ack=bot.ack_command, lazy=[bot.answer_command])
    app.action("feedback_up")(bot.on_feedback)
    app.action("feedback_down")(bot.on_feedback)
    return app


class _Bot:
    """The listeners; answers take their turn in the assistant's queue (shared with the page and the API)."""

    def __init__(self, assistant: Assistant, fast: bool, seen: SeenKeys) -> None:
        self.assistant = assistant
        self.fast = fast
        self.seen = seen

    def skip_duplicates(self, req: BoltRequest, body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
        """Acknowledge retries and duplicate deliveries of an event already seen, without work."""
        keys = _delivery_keys(body)
        if keys and not self.seen.first_time(keys):
            retry = req.headers.get("x-slack-retry-num", ["0"])[0]
            log.info("ignoring a repeated delivery %s (retry %s)", keys[0], retry)
            return BoltResponse(status=200, body="")
        return next()

    def on_mention(self, event: dict[str, Any], client: WebClient, context: Any) -> None:
        self._answer_event(event, client, context.bot_user_id)

    def on_message(self, event: dict[str, Any], client: WebClient, context: Any) -> None:
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return  # only people's new DMs: no edits, joins, bot posts
        self._answer_event(event, client, context.bot_user_id)

    def ack_command(self, ack: Callable[..., Any], command: dict[str, Any]) -> None:
        question = strip_mentions(command.get("text", ""))
        if not question:
            ack(response_type="ephemeral", text="Usage: `/ask <question>`, e.g. `/ask Step-3 每次推理激活多少参数？`")
            return
        try:
            question = check_question(question)
        except InputError as exc:
            ack(response_type="ephemeral", text=f"Sorry — I can't answer that: {escape(str(exc))}")
            return
        ack(
            response_type="ephemeral",
            text=f"Working on it: “{escape(question)}” — the answer will appear here shortly.",
        )

    def answer_command(self, command: dict[str, Any], client: WebClient, respond: Callable[..., Any]) -> None:
        channel, user = command["channel_id"], command["user_id"]
        try:
            question = check_question(strip_mentions(command.get("text", "")))
        except InputError:
            return  # the acknowledgement said what is wrong
        try:
            root = client.chat_postMessage(
                channel=channel,
                text=f"<@{user}> asked: {escape(question)}",
                blocks=question_blocks(user, question),
                metadata={"event_type": QUESTION_EVENT, "event_payload": {"question": question}},
            )
        except SlackApiError as exc:
            log.warning("cannot post in %s: %s", channel, exc.response.get("error"))
            respond(response_type="ephemeral", text="Sorry — I can't post in this channel: invite me first, or DM me.")
            return
        self._reply(client, root["channel"], root["ts"], question, [])

    def _answer_event(self, event: dict[str, Any], client: WebClient, bot_user_id: str | None) -> None:
        channel, ts = event.get("channel"), event.get("ts")
        if not channel or not ts:
            log.warning("ignoring a %s event without a channel or ts", event.get("type"))
            return
        thread_ts = event.get("thread_ts") or ts
        question = strip_mentions(event.get("text", ""), bot_user_id)
        history = self._history(client, channel, thread_ts, ts, bot_user_id) if event.get("thread_ts") else []
        self._reply(client, channel, thread_ts, question, history)

    def _reply(self, client: WebClient, channel: str, thread_ts: str, question: str, history: list[str]) -> None:
        """Post the placeholder in the thread, then replace it with the answer or an apology."""
        try:
            placeholder = client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=THINKING)
        except SlackApiError as exc:
            log.error("cannot reply in %s: %s", channel, exc.response.get("error"))
            return

        def update(text: str, blocks: list[dict[str, Any]]) -> None:
            try:
                client.chat_update(
                    channel=placeholder["channel"], ts=placeholder["ts"], text=escape(text), blocks=blocks
                )
            except SlackApiError as exc:
                log.error("cannot update the reply in %s: %s", channel, exc.response.get("error"))

        update(*self._compose(question, history, lambda e: update(evidence_text(e), evidence_blocks(e))))

    def _compose(
        self, question: str, history: list[str], show: Callable[[Evidence], None] = lambda e: None
    ) -> tuple[str, list[dict[str, Any]]]:
        """The reply as plain text (not yet escaped) and as blocks: the answer, or a polite apology;
        `show` gets the best supporting quote as soon as it is found."""
        if not question:
            return _plain("Ask me a question about the article, e.g. “Step-3 每次推理激活多少参数？”")
        try:
            answer = None
            with self.assistant.queue.hold():
                for event in self.assistant.stream(question, history, fast=self.fast):
                    if isinstance(event, Evidence):
                        show(event)
                    elif isinstance(event, Answer):
                        answer = event
            assert answer is not None, "Assistant.stream ended without an Answer"
            return answer_text(answer), answer_blocks(answer) + self._feedback(answer, history)
        except Busy as exc:
            log.warning("turned a Slack question away: %s", exc)
            return _plain(f"Sorry — I'm answering other questions right now: ask again in about {exc.retry_after} s.")
        except AssistantError as exc:  # InputError included: the message says what to change
            log.error("could not answer %r: %s", question, exc)
            return _plain(f"Sorry — I couldn't answer that: {exc}")
        except Exception as exc:
            log.exception("failed to answer %r", question)
            return _plain(
                f"Sorry — something went wrong while answering ({type(exc).__name__}): "
                "please try again; if it keeps happening, ask whoever runs this bot to check its log."
            )

    def _feedback(self, answer: Answer, history: list[str]) -> list[dict[str, Any]]:
        """The 👍/👎 buttons, the answer kept in the feedback store for them (none if it cannot be written)."""
        try:
            return [feedback_block(self.assistant.feedback.record(answer.to_dict(), history, "slack"))]
        except AssistantError as exc:
            log.error("answering without feedback buttons: %s", exc)
            return []

    def on_feedback(self, ack: Callable[..., Any], body: dict[str, Any], client: WebClient) -> None:
        """A 👍/👎 click: kept with its answer, and the message shows the choice instead of the buttons."""
        ack()
        action, message = body["actions"][0], body.get("message") or {}
        rating = "up" if action["action_id"] == "feedback_up" else "down"
        try:
            self.assistant.feedback.rate(int(action["value"]), rating)
        except (AssistantError, ValueError) as exc:
            log.error("could not keep Slack feedback: %s", exc)
            return
        try:
            client.chat_update(
                channel=body["channel"]["id"],
                ts=message["ts"],
                text=message.get("text", ""),
                blocks=rated_blocks(message.get("blocks", []), rating),
            )
        except (SlackApiError, KeyError) as exc:
            log.error("could not show the rating in Slack: %s", exc)

    def _history(self, client: WebClient, channel: str, thread_ts: str, ts: str, bot: str | None) -> list[str]:
        """The user's earlier turns in the thread, oldest first (bot replies and edits left out)."""
        try:
            replies = client.conversations_replies(channel=channel, ts=thread_ts, limit=200, include_all_metadata=True)
        except SlackApiError as exc:
            log.warning("no thread history for %s/%s: %s", channel, thread_ts, exc.response.get("error"))
            return []
        turns = []
        for m in replies.get("messages") or []:
            if float(m.get("ts", 0)) >= float(ts):
                continue
            meta = m.get("metadata") or {}
            if meta.get("event_type") == QUESTION_EVENT:
                turns.append(str(meta.get("event_payload", {}).get("question", "")))
            elif not (m.get("bot_id") or m.get("subtype") or (bot and m.get("user") == bot)):
                turns.append(strip_mentions(m.get("text", ""), bot))
        return [t for t in turns if t][-MAX_HISTORY:]


def _plain(text: str) -> tuple[str, list[dict[str, Any]]]:
    return text, message_blocks(text)


def strip_mentions(text: str, bot_user_id: str | None = None) -> str:
    """The question without the bot's `<@U…>` mention (any user mention when the bot id is unknown) and without
    broadcast markup such as `<!channel>` (read as a name, it turned the question into a false premise)."""
    pattern = re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>") if bot_user_id else MENTION
    return " ".join(BROADCAST.sub(" ", pattern.sub(" ", text)).split())


def _delivery_keys(body: dict[str, Any]) -> list[str]:
    """What identifies one delivery: the event id and its channel+ts, or a slash command's trigger id."""
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        keys = [f"event:{body['event_id']}"] if body.get("event_id") else []
        if event.get("channel") and event.get("ts"):
            keys.append(f"message:{event['channel']}:{event['ts']}")
        return keys
    if body.get("command") and body.get("trigger_id"):
        return [f"command:{body['trigger_id']}"]
    return []
