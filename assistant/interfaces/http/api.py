"""An HTTP API over an `Assistant` (FastAPI): JSON and server-sent-event answers, an OpenAI-compatible
chat endpoint, health checks. `create_api` receives a built `Assistant`; answers run one at a time, in
arrival order, in worker threads (`jobs`), so the event loop stays free. Errors become JSON with a
status and what to do next (`errors`); the OpenAI-compatible routes are `openai_compat`, request and
response bodies `models`. Serving (uvicorn), the web page and Slack are left to other modules.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

from assistant.admission import Busy, Ticket
from assistant.checks.inputs import MAX_QUESTION_CHARS
from assistant.core import Assistant
from assistant.corpus.add import Upload
from assistant.errors import AssistantError
from assistant.interfaces.http.access import Access
from assistant.interfaces.http.errors import ask_or_error, describe, error_response, handle
from assistant.interfaces.http.jobs import UPLOAD_PATHS, Answering, BodyLimit, QueuedStream
from assistant.interfaces.http.models import ApiError, AskRequest, ErrorOut, FeedbackRequest, asked
from assistant.interfaces.http.openai_compat import openai_routes
from assistant.types import Answer, Evidence

UPLOADS_OFF = "this server does not take documents (ASSISTANT_UPLOADS=off): ask whoever runs it"
_BEARER = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>` when the server has an API key")


def create_api(
    assistant: Assistant,
    *,
    api_key: str | None = None,
    max_question_chars: int = MAX_QUESTION_CHARS,
    max_body_bytes: int = 64_000,
    queue_size: int | None = None,
    rate_limit_per_minute: int | None = 60,
) -> FastAPI:
    """The app: /api/ask, /api/ask/stream, /v1/chat/completions, /v1/models, /healthz, /readyz, /docs.

    Requests take their turn in `assistant.queue`, which the page and the Slack bot share; `queue_size`
    (when given) sets how many may wait there.
    """
    if not 0 < max_question_chars <= MAX_QUESTION_CHARS:
        raise ValueError(
            f"max_question_chars tightens inputs.MAX_QUESTION_CHARS ({MAX_QUESTION_CHARS}); it cannot raise it"
        )
    if queue_size is not None:
        assistant.queue.size = queue_size
    answering = Answering(assistant)
    guards = [Depends(_BEARER)] if api_key else []  # shows the key in the OpenAPI docs; `Access` checks it
    app = FastAPI(title="assistant", version="0.1.0", description="Short, cited answers about the indexed corpus.")
    app.state.answering = answering
    settings = assistant.settings
    uploads = settings.upload_max_bytes if settings.uploads else 0
    app.add_middleware(
        BodyLimit,
        max_bytes=max_body_bytes,
        upload_bytes=uploads,
        reject=lambda path: _rejected(path, max_body_bytes, uploads),
    )
    # outermost: the key and the rate limit before any body is read, for every route (the page mounted later too)
    app.add_middleware(
        Access,
        api_key=api_key,
        rate_limit_per_minute=rate_limit_per_minute,
        key_attempts_per_minute=settings.api_key_attempts,
        error=error_response,
    )
    for kind in (RequestValidationError, ApiError, Busy, HTTPException, AssistantError, Exception):
        app.add_exception_handler(kind, handle)
    app.include_router(_health_routes(answering))
    app.include_router(_api_routes(answering, max_question_chars), dependencies=guards)
    app.include_router(openai_routes(answering, max_question_chars), dependencies=guards)
    app.include_router(_document_routes(answering), dependencies=guards)
    return app


def _rejected(path: str, max_body_bytes: int, upload_bytes: int) -> JSONResponse:
    """The answer to a body over its limit: 413, saying which limit; uploads to a server that takes none: 403."""
    if path in UPLOAD_PATHS and not upload_bytes:  # the page's upload route (Gradio's) too
        return error_response(path, 403, UPLOADS_OFF)
    if upload_bytes and path in UPLOAD_PATHS:
        message = f"the upload is over {upload_bytes:,} bytes (ASSISTANT_UPLOAD_MAX_BYTES): send fewer or smaller files"
    else:
        message = f"the request body is over {max_body_bytes} bytes: send a shorter question and history"
    return error_response(path, 413, message)


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 413, 422, 429, 503)}


def _api_routes(answering: Answering, max_chars: int) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["answers"], responses=_ERRORS)

    @router.post("/ask", response_model=Answer)  # the dataclass itself: the contract is not restated
    async def ask(body: AskRequest) -> dict[str, Any]:
        """A verified, cited answer (or a refusal): the answer contract."""
        answer = await ask_or_error(answering, *asked(body, max_chars), fast=body.fast)
        return answer.to_dict(paths=False)  # a server path is not the client's business

    @router.post("/feedback")
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        """👍/👎 (and a comment) on an answer: stored with the answer and the conversation (`assistant feedback
        report`, `assistant feedback export` turn it into eval items). Returns the feedback's id, and `verified`:
        whether the answer carries the `answer_id` this server gave it (its content and `history` unchanged), which a
        👍 needs to count as a candidate gold answer."""
        store, answer = answering.assistant.feedback, body.answer.to_dict(paths=False)
        add = functools.partial(store.add, rating=body.rating, comment=body.comment, source="api")
        row = await run_in_threadpool(add, answer, body.history)
        return {"id": row, "verified": store.ids.vouches(answer, body.history)}

    @router.post(
        "/ask/stream", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}}
    )
    async def ask_stream(body: AskRequest) -> StreamingResponse:
        """Server-sent events: `evidence` ({"text", "citations"}: the best supporting sentence as a labelled
        quote, as soon as retrieval is done; not sent for a refusal or a `fast` answer), `token` ({"text"})
        for each draft token, then one `answer` (the answer contract) or `error` ({"error", "status"}).
        The draft can differ from the answer: sentences that fail verification are removed, so show the
        evidence and tokens as provisional and replace them with `answer`."""
        question, history = asked(body, max_chars)
        ticket = answering.queue.join()
        return QueuedStream(ticket, _draft_events(answering, ticket, question, history, fast=body.fast))

    return router


def _document_routes(answering: Answering) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["documents"], responses=_ERRORS)
    assistant = answering.assistant

    @router.get("/documents")
    async def documents() -> dict[str, Any]:
        """What is indexed: each document's source (its text file in the corpus), title and chunk count."""
        info = await run_in_threadpool(assistant.info)
        listed = [{"source": s, **d} for s, d in info["sources"].items()]
        return {"documents": listed, "chunks": info["chunks"], "uploads": assistant.settings.uploads}

    @router.post("/documents", status_code=201, responses={403: {"model": ErrorOut}})
    async def add_documents(
        files: Annotated[list[UploadFile], File(description=".txt, .md, .pdf, .docx or .html; told by content")],
        replace: Annotated[bool, Form(description="replace a different file of the same name")] = False,
    ) -> dict[str, Any]:
        """Add files to the corpus and the index: citable from the next answer. A PDF, Word file or web page is
        converted, its text saved beside it (`report.pdf.txt`: what citations point into). A file that cannot
        be added (its content not what its name says, too large, no text) is a 422 and nothing changes."""
        if not assistant.settings.uploads:
            raise ApiError(403, UPLOADS_OFF)
        uploads = [Upload(f.filename or "", await f.read()) for f in files]
        added, report = await run_in_threadpool(assistant.add, uploads, replace=replace)
        return {"added": [asdict(a) for a in added], "index": asdict(report)}

    return router


def _health_routes(answering: Answering) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the server answers (even while an answer is being generated)."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"model": ErrorOut}})
    async def readyz() -> JSONResponse:
        """Readiness: 200 when the index exists and can be searched, else 503 with the reason."""
        try:
            return JSONResponse(await run_in_threadpool(answering.readiness))
        except Exception as exc:
            return JSONResponse({"status": "not ready", "error": str(exc) or type(exc).__name__}, 503)

    return router


async def _draft_events(
    answering: Answering, ticket: Ticket, question: str, history: list[str], *, fast: bool
) -> AsyncIterator[str]:
    try:
        if ahead := answering.queue.ahead(ticket):
            yield f": waiting for {ahead} earlier request(s)\n\n"
        async with aclosing(answering.stream(ticket, question, history, fast=fast)) as events:
            async for item in events:
                if isinstance(item, str):
                    yield sse("token", {"text": item})
                else:
                    yield sse("evidence" if isinstance(item, Evidence) else "answer", item.to_dict(paths=False))
    except Exception as exc:
        status, message, headers, _ = describe(exc)
        retry = {"retry_after": int(headers["Retry-After"])} if headers and "Retry-After" in headers else {}
        yield sse("error", {"error": message, "status": status, **retry})


def sse(event: str, data: Any) -> str:
    """One server-sent event with a one-line JSON payload."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
