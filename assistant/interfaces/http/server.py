"""The server behind `assistant serve`: the HTTP API with the chat page mounted beside it.

Composes `api.create_api` (JSON, SSE and OpenAI-compatible endpoints, queue, key, limits) and
`web.build_ui` (the Gradio page at `/`) over one `Assistant`, from `Settings`. Running it is left
to uvicorn in the CLI.
"""

from __future__ import annotations

from fastapi import FastAPI

from assistant.core import Assistant
from assistant.interfaces.http.api import create_api
from assistant.interfaces.web.ui import build_ui


def build_server(assistant: Assistant) -> FastAPI:
    """The API (under /api, /v1, /healthz, /readyz) and the chat page (at /) in one app."""
    import gradio as gr

    s = assistant.settings
    app = create_api(
        assistant,
        api_key=s.api_key,
        rate_limit_per_minute=s.api_rate_limit or None,
        max_body_bytes=s.api_max_body_bytes,
    )
    key = s.api_key
    auth = (lambda _user, password: password == key) if key and not s.page_open else None
    return gr.mount_gradio_app(
        app,
        build_ui(assistant),
        path="/",
        footer_links=["api"],
        auth=auth,
        auth_message="Log in with any user name and the server's API key (ASSISTANT_API_KEY).",
    )
