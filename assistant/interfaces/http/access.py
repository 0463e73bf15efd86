"""Access: who may reach the server, and how often. One ASGI middleware in front of every route `serve` answers.

With an API key, every way in needs it: the JSON API and the OpenAI routes, the chat page, its Gradio API
(`gradio_client`), its queue and upload routes, `/docs`. A request shows the key as `Authorization: Bearer <key>`,
or carries the session cookie that a login at `/login` sets (signed with the key, so replicas that share the
key accept each other's; it lasts `SESSION_S`). Only `/healthz` is open, and `/slack/events`, which Bolt checks
by Slack's signature. Login attempts are limited per client (`LOGIN_PER_MINUTE`); every comparison is
constant-time. A browser that asks for a page without the key is sent to the login form, anything else gets a
JSON 401.

Wrong keys are guesses: a wrong bearer key, a session cookie the key did not sign, a wrong key at the login form.
A client may make a few a minute (`Lockout`, fail2ban's rule); past them it is locked out, every request (the
right key too, so a guess tells nothing) answered 429 with `Retry-After`, until one is forgiven. Requests with
the key, and ones that show none, count nothing.

The rate limit counts, per client, every request to `/api/` and `/v1/` and every other POST (a question from
the page or from `gradio_client`), so the page is no way around it. The client is the peer address, or the one
uvicorn took from `X-Forwarded-For` because the peer is the trusted proxy (`serve --proxy`; by default none).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.interfaces.http.jobs import RateLimiter

OPEN_PATHS = ("/healthz", "/slack/events")  # the health check; Slack's events carry Slack's signature instead
COUNTED = ("/api/", "/v1/")
COOKIE = "assistant_session"
SESSION_S = 12 * 3600
LOGIN_PER_MINUTE = 5
LOGIN_MAX_BYTES = 4096
KEY_ATTEMPTS_PER_MINUTE = 5  # wrong keys per client (fail2ban's maxretry is 5 too); `Settings.api_key_attempts`

ErrorResponse = Callable[[str, int, str, dict[str, str]], Response]


class Access:
    """ASGI middleware: the key (when set) on every route but `OPEN_PATHS`, the login form, the lockout of clients
    that guess keys (`lockout`), and the rate limit.
    `error(path, status, message, headers)` shapes a refusal as the route's clients expect it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        rate_limit_per_minute: int | None,
        error: ErrorResponse,
        key_attempts_per_minute: int = KEY_ATTEMPTS_PER_MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app, self.key, self.error, self.clock = app, api_key, error, clock
        self.limiter = RateLimiter(rate_limit_per_minute) if rate_limit_per_minute else None
        self.logins = RateLimiter(LOGIN_PER_MINUTE)
        self.lockout = Lockout(key_attempts_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope.get("method", "GET")
        client = scope["client"][0] if scope.get("client") else "?"
        if path in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if self.key and (wait := self.lockout.wait(client)):  # before any key is looked at
            return await self._turn_away(scope, receive, send, self._locked_out(scope, path, wait))
        if self.key and path == "/login":
            response = await self._login(scope, receive, method, client)
            return await response(scope, receive, send)
        if self.key and not (shown := self._credentials(scope)):
            if shown is False:
                self.lockout.strike(client)
            return await self._turn_away(scope, receive, send, self._refuse(scope, path, method))
        if self.limiter and (path.startswith(COUNTED) or method == "POST") and (wait := self.limiter.check(client)):
            seconds, per_minute = math.ceil(wait), self.limiter.per_minute
            message = f"too many requests: the limit is {per_minute} a minute per client; retry in {seconds} s"
            return await self.error(path, 429, message, {"Retry-After": str(seconds)})(scope, receive, send)
        return await self.app(scope, receive, send)

    # -- the key ------------------------------------------------------------------------------------

    def _credentials(self, scope: Scope) -> bool | None:
        """True: the key, or a live session it signed; False: a guess (a wrong bearer key, a session the key did not
        sign); None: neither shown, or a session that merely expired."""
        headers = _headers(scope)
        scheme, _, given = headers.get("authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer"
        if bearer and self._is_key(given.strip()):
            return True
        session = self._session(_cookies(headers.get("cookie", "")).get(COOKIE, ""))
        if session:
            return True
        return False if bearer or session is False else None

    def _is_key(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), (self.key or "").encode())

    def session(self) -> str:
        """A session cookie's value: its expiry and the key's signature over it."""
        expiry = str(int(self.clock()) + SESSION_S)
        return f"{expiry}.{self._sign(expiry)}"

    def _session(self, value: str) -> bool | None:
        """True: a session the key signed, not expired; None: none, or an expired one; False: one it did not sign."""
        if not value:
            return None
        expiry, _, signature = value.partition(".")
        if not expiry.isdigit() or not hmac.compare_digest(signature.encode(), self._sign(expiry).encode()):
            return False
        return True if int(expiry) > self.clock() else None

    def _sign(self, expiry: str) -> str:
        return hmac.new((self.key or "").encode(), f"session:{expiry}".encode(), hashlib.sha256).hexdigest()

    def _refuse(self, scope: Scope, path: str, method: str) -> Response:
        if _wants_page(scope, path, method):
            response: Response = RedirectResponse(f"/login?next={quote(_requested(scope))}", 303)
        else:
            message = "missing or wrong API key: send the header `Authorization: Bearer <key>` (or log in at /login)"
            response = self.error(path, 401, message, {"WWW-Authenticate": "Bearer"})
        if COOKIE in _cookies(_headers(scope).get("cookie", "")):  # expired, or signed by a key since replaced:
            response.delete_cookie(COOKIE)  # not sent again, so a browser does not lock itself out with it
        return response

    def _locked_out(self, scope: Scope, path: str, wait: float) -> Response:
        seconds = math.ceil(wait)
        message = f"too many wrong API keys from this client: all its requests are refused for {seconds} s"
        headers = {"Retry-After": str(seconds)}
        if path == "/login" or _wants_page(scope, path, scope.get("method", "GET")):
            return _form(_next(scope) if path == "/login" else _requested(scope), message, 429, headers)
        return self.error(path, 429, message, headers)

    @staticmethod
    async def _turn_away(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        if scope["type"] == "websocket":  # closed before it is accepted: the client sees a 403
            return await send({"type": "websocket.close", "code": 1008})
        return await response(scope, receive, send)

    # -- the login form -----------------------------------------------------------------------------

    async def _login(self, scope: Scope, receive: Receive, method: str, client: str) -> Response:
        target = _next(scope)
        if method != "POST":
            return _form(target, "")
        if wait := self.logins.check(client):
            seconds = math.ceil(wait)
            message = f"too many login attempts: try again in {seconds} s"
            return _form(target, message, 429, {"Retry-After": str(seconds)})
        body = await _read(receive, LOGIN_MAX_BYTES)
        fields = parse_qs(body.decode("utf-8", "replace")) if body is not None else {}
        if not self._is_key(fields.get("key", [""])[0]):
            self.lockout.strike(client)
            return _form(_local(fields.get("next", [target])[0]), "wrong key: ask whoever runs this server", 401)
        response = RedirectResponse(_local(fields.get("next", [target])[0]), 303)
        secure = scope.get("scheme") == "https"
        response.set_cookie(COOKIE, self.session(), max_age=SESSION_S, httponly=True, samesite="strict", secure=secure)
        return response


class Lockout:
    """Wrong keys per client, forgiven at `per_minute` a minute (a leaky bucket): a client with `per_minute` of them
    unforgiven is locked out until one is, so it gets `per_minute` guesses a minute however fast it sends."""

    MAX_CLIENTS = 10_000  # past this many, forget the clients with nothing left unforgiven

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"a client needs at least 1 attempt at the key a minute, not {per_minute}")
        self.per_minute, self._rate, self._clock = per_minute, per_minute / 60.0, clock
        self._strikes: dict[str, tuple[float, float]] = {}  # client -> (wrong keys unforgiven, when counted)

    def wait(self, client: str) -> float:
        """0.0 when `client` may try a key, else the seconds until it may."""
        return max(0.0, (self._unforgiven(client, self._clock()) - (self.per_minute - 1)) / self._rate)

    def strike(self, client: str) -> None:
        """Count one wrong key from `client`."""
        now = self._clock()
        self._strikes[client] = (self._unforgiven(client, now) + 1.0, now)
        if len(self._strikes) > self.MAX_CLIENTS:
            self._strikes = {c: (n, t) for c, (n, t) in self._strikes.items() if self._unforgiven(c, now) > 0}

    def _unforgiven(self, client: str, now: float) -> float:
        strikes, then = self._strikes.get(client, (0.0, now))
        return max(0.0, strikes - (now - then) * self._rate)


def _wants_page(scope: Scope, path: str, method: str) -> bool:
    """A browser asking for a page (sent to the login form rather than given JSON)."""
    return method == "GET" and "text/html" in _headers(scope).get("accept", "") and not path.startswith(COUNTED)


def _requested(scope: Scope) -> str:
    """The path and query the request asked for."""
    query = scope.get("query_string", b"").decode("latin-1")
    return scope["path"] + (f"?{query}" if query else "")


def _next(scope: Scope) -> str:
    """The login form's `next` page, when it is on this server (else "/")."""
    return _local(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("next", ["/"])[0])


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return {name: value for name, _, value in pairs if name}


def _local(target: str) -> str:
    """`target` if it is a path on this server, else "/" (no open redirect to another site)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None past `limit` bytes."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            return None
    return body


def _form(target: str, problem: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    note = f'<p role="alert">{html.escape(problem)}</p>' if problem else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · assistant</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:15vh auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}button{{padding:.5rem 1rem}}
[role=alert]{{color:#b00020}}</style></head><body>
<h1>assistant</h1><p>This server needs its API key (<code>ASSISTANT_API_KEY</code>).</p>{note}
<form method="post" action="/login"><input type="hidden" name="next" value="{html.escape(target)}">
<label for="key">API key</label><input id="key" name="key" type="password" autocomplete="current-password" autofocus>
<button type="submit">Log in</button></form></body></html>"""
    return HTMLResponse(page, status, headers=headers)
