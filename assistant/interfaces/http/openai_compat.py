"""The OpenAI-compatible endpoints: /v1/chat/completions (the whole answer, or with `stream` its
chat.completion.chunk events, sent only after verification) and /v1/models; the answer in OpenAI's shapes
(content, usage, the extra `citations` and `refused`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from assistant.admission import Ticket
from assistant.interfaces.http.errors import ask_or_error, describe, openai_error
from assistant.interfaces.http.jobs import Answering, QueuedStream
from assistant.interfaces.http.models import MODEL_ID, ApiError, ChatRequest, conversation
from assistant.interfaces.render import plain_text
from assistant.types import Answer


def openai_routes(answering: Answering, max_chars: int) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest) -> dict[str, Any] | StreamingResponse:
        """The last user message is the question, earlier user messages the history. The content is the
        verified answer and a "Sources:" list; `citations` and `refused` are extra top-level fields.
        With `stream: true` the answer is sent in chunks only after verification (a draft could still be
        withdrawn), citations and `refused` in the last chunk, then `data: [DONE]`."""
        if body.temperature:  # sampling would make the verified answer differ from call to call
            raise ApiError(400, "temperature: this server answers deterministically (temperature 0); omit it or send 0")
        question, history = conversation(body.messages, max_chars)
        if body.stream:
            ticket = answering.queue.join()
            usage = bool((body.stream_options or {}).get("include_usage"))
            events = _openai_events(
                answering, ticket, question, history, fast=body.fast, usage=usage, max_tokens=body.limit()
            )
            return QueuedStream(ticket, events)
        answer = await ask_or_error(answering, question, history, fast=body.fast, max_tokens=body.limit())
        message = {"role": "assistant", "content": completion_text(answer)}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        head = _completion_head("chat.completion")
        return {**head, "choices": [choice], "usage": openai_usage(answer), **_extras(answer)}

    @router.get("/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "assistant"}]}

    return router


async def _openai_events(
    answering: Answering,
    ticket: Ticket,
    question: str,
    history: list[str],
    *,
    fast: bool,
    usage: bool = False,
    max_tokens: int | None = None,
) -> AsyncIterator[str]:
    """chat.completion.chunk data: the role, the verified answer in pieces, citations, (with `usage`: a chunk
    with no choices and the token usage, as OpenAI sends for `stream_options.include_usage`), then `[DONE]`."""
    head = _completion_head("chat.completion.chunk")

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps({**head, 'choices': [choice], **extra}, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        answer = await answering.ask(question, history, fast=fast, ticket=ticket, max_tokens=max_tokens)
        text = completion_text(answer)
        for i in range(0, len(text), 24):
            yield chunk({"content": text[i : i + 24]})
        yield chunk({}, "stop", **_extras(answer))
        if usage:
            yield f"data: {json.dumps({**head, 'choices': [], 'usage': openai_usage(answer)})}\n\n"
    except Exception as exc:
        status, message, _, _ = describe(exc)
        yield f"data: {json.dumps({'error': openai_error(status, message)}, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def openai_usage(answer: Answer) -> dict[str, int]:
    """The answer's token usage in OpenAI's shape (zeros for a model that reports none, or no model call)."""
    return {k: int(answer.usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def completion_text(answer: Answer) -> str:
    """The answer, then its sources (or a refusal's related passages) with their quotes."""
    return plain_text(answer, times=False)


def _completion_head(kind: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": MODEL_ID}


def _extras(answer: Answer) -> dict[str, Any]:
    return {"citations": [c.to_dict(path=False) for c in answer.citations], "refused": answer.refused}
