"""The commands that run a server: `serve` (the web chat and the HTTP API, and with `--slack` the Slack bot, in
one process) and `slack` (the Slack bot on its own).

Checks the listen address against the API key and the trusted proxy before anything listens; serving
itself is uvicorn's (`http.server.build_server`) or the bot's (`slack.serve`).
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigurationError, IndexNotFoundError, StoreUnavailableError

if TYPE_CHECKING:
    from assistant.core import Assistant


def cmd_serve(assistant: Assistant, args: argparse.Namespace) -> int:
    import uvicorn

    from assistant.interfaces.http.server import build_server

    proxy = _trusted_proxy(args.proxy or assistant.settings.trusted_proxy)
    if not assistant.settings.api_key:
        if not _loopback(args.host) and not args.no_key:
            raise ConfigurationError(
                f"--host {args.host} without an API key would let anyone who reaches it ask and read the corpus: "
                "set ASSISTANT_API_KEY, or pass --no-key if a proxy in front guards it"
            )
        print(f"no API key (ASSISTANT_API_KEY): open to whoever reaches {args.host}", file=sys.stderr)

    assistant.recover()  # an upload a crash cut off is undone, so corpus and index agree before serving
    try:  # load the index now, so the first question does not wait for it
        print(f"{len(assistant.retriever.chunks)} chunks indexed", file=sys.stderr)
    except (IndexNotFoundError, StoreUnavailableError) as exc:  # a replica started before its index or store
        print(f"not ready yet ({exc}); serving anyway: /readyz answers 503 until it is there", file=sys.stderr)
    print(f"web chat on http://{args.host}:{args.port}/ · API docs at /docs", file=sys.stderr)
    if proxy:
        print(f"clients named by X-Forwarded-For from {proxy} only", file=sys.stderr)
    slack = _slack_app(assistant, args.port) if args.slack else None
    # the model loads while the server already answers /healthz; /readyz says "warming" until it is done
    threading.Thread(target=assistant.warm, name="warm-up", daemon=True).start()
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: here only from the proxy named
    uvicorn.run(
        build_server(assistant, slack),
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=bool(proxy),
        forwarded_allow_ips=proxy or None,
    )
    return 0


def _trusted_proxy(value: str | None) -> str:
    """`value` (addresses and networks, comma-separated) checked, or "" for none."""
    import ipaddress

    addresses, networks = [a.strip() for a in (value or "").split(",") if a.strip()], []
    for address in addresses:
        try:
            networks.append(str(ipaddress.ip_network(address, strict=False)))  # uvicorn: 10.0.0.0/24, not 10.0.0.5/24
        except ValueError:
            raise ConfigurationError(
                f"--proxy / ASSISTANT_TRUSTED_PROXY: {address!r} is not an IP address or network: "
                "give the address your reverse proxy connects from, e.g. 127.0.0.1 for one on this machine"
            ) from None
    return ",".join(n.removesuffix("/32").removesuffix("/128") for n in networks)


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _slack_app(assistant: Assistant, port: int) -> Any:
    """The Slack bot on `assistant` (its model and queue): connected over Socket Mode when SLACK_APP_TOKEN is
    set (returns None: nothing to mount), else returned to be mounted at /slack/events."""
    import os

    from assistant.interfaces.slack.bot import build_app
    from assistant.interfaces.slack.serve import SlackTokens

    socket = bool(os.environ.get("SLACK_APP_TOKEN"))
    tokens = SlackTokens.from_env(http=not socket)
    app = build_app(assistant, token=tokens.bot_token, signing_secret=tokens.signing_secret or "unused")
    if socket:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, tokens.app_token).connect()  # in its own threads; this process serves the rest
        print("Slack bot connected (Socket Mode), on the same model and queue", file=sys.stderr)
        return None
    print(f"Slack events at http://…:{port}/slack/events, on the same model and queue", file=sys.stderr)
    return app


def cmd_slack(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.interfaces.slack.serve import SlackTokens, serve

    tokens = SlackTokens.from_env(http=args.http)
    mode = f"HTTP Events API on {args.host}:{args.port}/slack/events" if args.http else "Socket Mode"
    print(f"Slack bot starting ({mode}): loading the models first…", file=sys.stderr)
    seconds = assistant.warm(model=not args.fast)
    print(f"ready in {seconds:.0f} s; Ctrl-C stops the bot.", file=sys.stderr)
    serve(assistant, tokens, http=args.http, host=args.host, port=args.port, fast=args.fast)
    return 0
