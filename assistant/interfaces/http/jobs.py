"""Running answers for the HTTP server: in their turn in the assistant's queue, in worker threads.

`Answering` runs an `Assistant`'s `ask`/`stream` once a request's ticket in the assistant's
`AnswerQueue` (`admission`, shared with the page and the Slack bot) has its turn, in a worker thread,
so the event loop stays free. `RateLimiter` (a token bucket per client)
and `BodyLimit` (ASGI) turn away the rest. Routes, status codes and formats are left to `api`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.admission import Ticket
from assistant.core import Assistant
from assistant.errors import IndexNotFoundError
from assistant.types import Answer, Evidence

log = logging.getLogger(__name__)


class Answering:
    """An `Assistant`'s answers, one at a time in arrival order, each computed in a worker thread."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.queue = assistant.queue
        self._warming = threading.Lock()
        self._loading = threading.Lock()  # one load of a newer build at a time, in the background

    async def ask(
        self,
        question: str,
        history: Sequence[str],
        *,
        fast: bool,
        ticket: Ticket | None = None,
        max_tokens: int | None = None,
    ) -> Answer:
        """The verified `Answer`, once it is `ticket`'s turn (a new place in the queue by default)."""
        ticket = ticket or self.queue.join()
        try:
            await ticket.wait_async()
            started = time.perf_counter()
            ask = functools.partial(self.assistant.ask, fast=fast, max_tokens=max_tokens)
            answer = await anyio.to_thread.run_sync(ask, question, history)
        finally:
            ticket.release()
        log.info("answered %r in %.1f s (refused: %s)", question[:80], time.perf_counter() - started, answer.refused)
        return answer

    async def stream(
        self, ticket: Ticket, question: str, history: Sequence[str], *, fast: bool
    ) -> AsyncGenerator[str | Evidence | Answer, None]:
        """The best supporting quote, draft tokens, then the verified `Answer`, once it is `ticket`'s turn;
        releases the ticket at the end (after stopping the model when the consumer gives up early)."""
        events: Iterator[str | Evidence | Answer] | None = None
        try:
            await ticket.wait_async()
            events = self.assistant.stream(question, history, fast=fast)
            while (item := await anyio.to_thread.run_sync(next, events, None)) is not None:
                yield item
        finally:
            if close := getattr(events, "close", None):
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close)
            ticket.release()

    def readiness(self) -> dict[str, Any]:
        """What is known now, in O(1) (probes come every few seconds from every balancer): the retriever already
        built and its counts. Only before the first load does a probe load the index itself (once it exists:
        a missing index or an unreachable store fails fast); a newer build is loaded in the background while the
        one loaded keeps answering. Raises, saying what to do, when not ready."""
        retriever, current = self.assistant.loaded()
        if retriever is None:
            with self._loading:
                retriever = self.assistant.retriever  # raises IndexNotFoundError / StoreUnavailableError
        elif not current:
            self._load_in_background()
        if not retriever.chunks:
            raise IndexNotFoundError(f"the index at {self.assistant.index.location} is empty: run `assistant index`")
        with self._warming:  # started before its index was there: the index is here now (one warm-up, not two)
            if self.assistant.warmth == "unready":
                self.assistant.warmth = "warming"
                threading.Thread(target=self.assistant.warm, name="warm-up", daemon=True).start()
        if self.assistant.warmth == "warming":
            raise Warming("the models are loading (warm-up after start): ready in a few seconds, retry then")
        return {
            "status": "ready",
            "documents": retriever.documents,
            "chunks": len(retriever.chunks),
            "models": self.assistant.models,
            "warm": self.assistant.warmth == "warm",
        }

    def _load_in_background(self) -> None:
        if not self._loading.acquire(blocking=False):
            return  # already loading

        def load() -> None:
            try:
                _ = self.assistant.retriever
            except Exception as exc:  # the next request says why; readiness keeps the build it has
                log.warning("could not load the new index build yet: %s", exc)
            finally:
                self._loading.release()

        threading.Thread(target=load, name="index-load", daemon=True).start()


class Warming(RuntimeError):
    """The server is up but still loading its models."""


class RateLimiter:
    """A token bucket per client key: `per_minute` requests a minute, in bursts of up to `per_minute`."""

    MAX_CLIENTS = 10_000  # past this many buckets, forget the clients whose bucket has refilled

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"the rate limit must be at least 1 request a minute, not {per_minute}")
        self.per_minute = per_minute
        self._rate = per_minute / 60.0  # tokens a second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)

    def check(self, key: str) -> float:
        """0.0 when `key` may go ahead (one token is taken), else the seconds until it may."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - then) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.MAX_CLIENTS:
                self._forget_idle(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self._rate

    def _forget_idle(self, now: float) -> None:
        full = float(self.per_minute)
        self._buckets = {k: (t, w) for k, (t, w) in self._buckets.items() if t + (now - w) * self._rate < full}


PAGE_MAX_BYTES = 4_000_000  # the chat page sends its whole conversation (as rendered) with each question
UPLOAD_PATHS = ("/api/documents", "/gradio_api/upload")  # files for the corpus: the API's, and the page's
UPLOAD_OVERHEAD = 64_000  # a multipart body's headers and boundaries beside the file itself


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` (declared or sent) to the API (`/api/`, `/v1/`), over `page_bytes`
    to the page's routes, or over `upload_bytes` to `UPLOAD_PATHS` (files added to the corpus; any, when it is 0:
    uploads are off), get the `reject(path)` response; `exempt` paths (Slack's events) have a limit of their own."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        reject: Callable[[str], ASGIApp],
        *,
        page_bytes: int = PAGE_MAX_BYTES,
        exempt: tuple[str, ...] = ("/slack/",),
        upload_bytes: int = 0,
    ) -> None:
        self.app, self.max_bytes, self.page_bytes, self.reject, self.exempt = app, max_bytes, page_bytes, reject, exempt
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            return await self.app(scope, receive, send)
        limit = self.max_bytes if scope["path"].startswith(("/api/", "/v1/")) else self.page_bytes
        if scope["path"] in UPLOAD_PATHS and scope["method"] == "POST":
            if not self.upload_bytes:  # uploads are off: not a byte is read (Gradio's route would store the file)
                return await self.reject(scope["path"])(scope, receive, send)
            limit = self.upload_bytes + UPLOAD_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        too_big, body, more = declared.isdigit() and int(declared) > limit, b"", True
        while more and not too_big:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more, too_big = message.get("more_body", False), len(body) > limit
        if too_big:
            return await self.reject(scope["path"])(scope, receive, send)
        replayed: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return replayed.pop() if replayed else await receive()

        await self.app(scope, replay, send)


class QueuedStream(StreamingResponse):
    """An event stream that gives its queue place back however it ends, even if it never starts."""

    def __init__(self, ticket: Ticket, content: AsyncIterator[str]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.ticket.release()
