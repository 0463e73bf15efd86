"""The server behind `assistant serve`: the HTTP API with the chat page mounted beside it, and the Slack bot.

Composes `api.create_api` (JSON, SSE and OpenAI-compatible endpoints, queue, key, limits) and
`web.build_ui` (the Gradio page at `/`) over one `Assistant`, from `Settings`; with a Slack `App`
(`slack.bot.build_app`), its HTTP events at `/slack/events` on the same app: one process, one model, one
queue for the page, the API and Slack. Running it is left to uvicorn in the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from assistant.core import Assistant
from assistant.interfaces.http.api import create_api
from assistant.interfaces.web.ui import build_ui

if TYPE_CHECKING:
    from slack_bolt import App

SLACK_MAX_BYTES = 1 << 20  # as the standalone bot's HTTP server: Slack's events are far smaller


def build_server(assistant: Assistant, slack: App | None = None) -> FastAPI:
    """The API (under /api, /v1, /healthz, /readyz) and the chat page (at /) in one app; with `slack`, its
    HTTP Events API at /slack/events (Bolt checks each request's signature)."""
    import gradio as gr

    s = assistant.settings
    app = create_api(
        assistant,
        api_key=s.api_key,
        rate_limit_per_minute=s.api_rate_limit or None,
        max_body_bytes=s.api_max_body_bytes,
    )
    if slack is not None:
        _mount_slack(app, slack)
    # the page and its Gradio API sit behind the same key, body limit and rate limit as the API (`access`)
    page = build_ui(assistant)
    return gr.mount_gradio_app(app, page, path="/", footer_links=["api"], max_file_size=s.upload_max_bytes)


def _mount_slack(app: FastAPI, slack: App) -> None:
    """POST /slack/events dispatched to the Bolt app off the event loop (it acknowledges at once and answers
    in its own threads, taking its turn in the assistant's queue like the page and the API)."""
    from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

    @app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        # read at most SLACK_MAX_BYTES before Bolt checks the signature: an unsigned client cannot send more
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > SLACK_MAX_BYTES:
            return Response("the body is too large for a Slack event", 413)
        body = b""
        async for piece in request.stream():
            body += piece
            if len(body) > SLACK_MAX_BYTES:
                return Response("the body is too large for a Slack event", 413)
        try:
            bolt_request = to_bolt_request(request, body)
        except ValueError:  # not UTF-8, or not the JSON / form its content type says
            return Response("the body is not a Slack event (UTF-8 JSON or form data)", 400)
        return to_starlette_response(await run_in_threadpool(slack.dispatch, bolt_request))
