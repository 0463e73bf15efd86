"""How a request's failure becomes a response: `describe` gives the status, message and headers for anything a
request can end with (unexpected ones are logged), `error_response` the JSON (OpenAI's error object under
/v1), `handle` is the app's exception handler; `ask_or_error` is an answer whose unexpected failure becomes
an `ApiError` (the server stays up).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from assistant.admission import Busy
from assistant.errors import AssistantError, CorpusError, InputError, ModelTimeoutError
from assistant.interfaces.http.jobs import Answering
from assistant.interfaces.http.models import NOT_UTF8, ApiError, invalid
from assistant.types import Answer

log = logging.getLogger(__name__)

UNEXPECTED = "internal error ({}): try again; if it keeps happening, ask whoever runs this server to check its log"


async def ask_or_error(
    answering: Answering, question: str, history: list[str], *, fast: bool, max_tokens: int | None = None
) -> Answer:
    """`answering.ask`, with an unexpected failure logged and turned into an `ApiError` (the server stays up)."""
    try:
        return await answering.ask(question, history, fast=fast, max_tokens=max_tokens)
    except (AssistantError, Busy):
        raise
    except Exception as exc:
        status, message, _, _ = describe(exc)
        raise ApiError(status, message) from exc


async def handle(request: Request, exc: Exception) -> JSONResponse:
    status, message, headers, detail = describe(exc)
    return error_response(request.url.path, status, message, headers=headers, detail=detail)


def describe(exc: Exception) -> tuple[int, str, dict[str, str] | None, Any]:
    """(status, message, headers, detail) for anything a request can end with; unexpected ones are logged."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message, exc.headers, None
    if isinstance(exc, Busy):
        log.warning("turned a request away: %s", exc)
        return 503, str(exc), {"Retry-After": str(exc.retry_after)}, None
    if isinstance(exc, RequestValidationError):
        status, message, detail = invalid(jsonable_encoder(exc.errors()))
        return status, message, None, detail
    if isinstance(exc, HTTPException) and exc.status_code == 400 and "parsing the body" in str(exc.detail):
        return 400, NOT_UTF8, None, None
    if isinstance(exc, HTTPException):
        hint = ": the endpoints are listed at /docs" if exc.status_code in (404, 405) else ""
        return exc.status_code, f"{exc.detail}{hint}", dict(exc.headers or {}), None
    if isinstance(exc, AssistantError):  # the request's own input: 422; the rest: the server's model or index
        timeout = isinstance(exc, ModelTimeoutError)
        status = 422 if isinstance(exc, (InputError, CorpusError)) else 504 if timeout else 503
        retry = getattr(exc, "retry_after", 0)  # the store is down: when the server tries it again
        return status, str(exc), {"Retry-After": str(max(1, math.ceil(retry)))} if retry else None, None
    log.exception("unexpected failure", exc_info=exc)
    return 500, UNEXPECTED.format(type(exc).__name__), None, None


def error_response(
    path: str, status: int, message: str, headers: dict[str, str] | None = None, *, detail: Any = None
) -> JSONResponse:
    """{"error": message} (with `detail` for invalid fields), or OpenAI's error object under /v1."""
    if path.startswith("/v1/"):
        return JSONResponse({"error": openai_error(status, message)}, status, headers=headers)
    return JSONResponse({"error": message, **({"detail": detail} if detail else {})}, status, headers=headers)


def openai_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object: a type and a string code (as its API sends them), the message saying what to do."""
    kinds = {401: "authentication_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    codes = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large", 429: "rate_limit_exceeded",
             503: "service_unavailable", 504: "timeout"}  # fmt: skip
    code = codes.get(status, "invalid_request" if status < 500 else "server_error")
    return {"message": message, "type": kind, "param": None, "code": code}
