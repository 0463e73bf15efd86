"""The HTTP Events API endpoint for the Slack bot: a threaded `http.server` in front of a Bolt `App`.

POSTs to the events path go to Bolt, which verifies the signature and timestamp. A request that is
not one (no or a wrong Content-Length, a body over MAX_BODY_BYTES, not UTF-8, not parseable) gets a
4xx at once, never a dropped connection or a stuck thread. What the bot answers is `bot`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # Slack's event and command payloads are a few kB
READ_TIMEOUT_S = 10  # a client that stops sending mid-request is dropped after this long


def http_server(app: App, host: str, port: int, path: str = "/slack/events") -> ThreadingHTTPServer:
    """A threaded `http.server` passing POSTs on `path` to Bolt (which verifies signature and timestamp)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_S

        def do_POST(self) -> None:
            request_path, _, query = self.path.partition("?")
            if request_path != path:
                self._send(404, {}, "")
                return
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self._send(400, {}, "Content-Length must be a number of bytes")
                return
            if int(length) > MAX_BODY_BYTES:
                self._send(413, {}, f"the body is over {MAX_BODY_BYTES} bytes")
                return
            try:
                body = self.rfile.read(int(length)).decode("utf-8")
                request = BoltRequest(body=body, query=query, headers=dict(self.headers.items()))
            except (UnicodeDecodeError, ValueError, AttributeError, TypeError) as exc:
                log.warning("rejected a malformed Slack request: %s", exc)
                self._send(400, {}, "not a Slack request: send UTF-8 JSON or form data signed by Slack")
                return
            response = app.dispatch(request)
            self._send(response.status, response.headers, response.body)

        def _send(self, status: int, headers: Mapping[str, Iterable[str]], body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            for name, values in headers.items():
                for value in values:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return ThreadingHTTPServer((host, port), Handler)
