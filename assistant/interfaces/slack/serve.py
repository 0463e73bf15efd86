"""Running the Slack bot: its tokens (`SlackTokens.from_env`, the only code reading `SLACK_*`), and `serve`,
the bot (`bot.build_app`) on its own until interrupted, over Socket Mode or the HTTP Events API (`http`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from assistant.core import Assistant
from assistant.errors import ConfigurationError
from assistant.interfaces.slack.bot import build_app
from assistant.interfaces.slack.http import http_server

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackTokens:
    bot_token: str
    app_token: str = ""  # Socket Mode
    signing_secret: str = ""  # HTTP Events API

    @classmethod
    def from_env(cls, http: bool, env: Mapping[str, str] | None = None) -> SlackTokens:
        """SLACK_BOT_TOKEN plus SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP)."""
        env = os.environ if env is None else env
        needed = ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET" if http else "SLACK_APP_TOKEN"]
        missing = [name for name in needed if not env.get(name)]
        if missing:
            raise ConfigurationError(
                f"set {' and '.join(missing)} to run the Slack bot"
                f" ({'HTTP Events API' if http else 'Socket Mode'}): see the README's 'Slack bot' section"
            )
        tokens = cls(env["SLACK_BOT_TOKEN"], env.get("SLACK_APP_TOKEN", ""), env.get("SLACK_SIGNING_SECRET", ""))
        if not http and not tokens.app_token.startswith("xapp-"):
            raise ConfigurationError(
                "SLACK_APP_TOKEN must be an app-level token (xapp-…) with connections:write: "
                "create one under Basic Information > App-Level Tokens"
            )
        return tokens


def serve(
    assistant: Assistant,
    tokens: SlackTokens,
    *,
    http: bool = False,
    host: str = "0.0.0.0",
    port: int = 3000,
    fast: bool = False,
) -> None:
    """Run the bot until interrupted: Socket Mode by default, else the HTTP Events API on host:port."""
    app = build_app(assistant, token=tokens.bot_token, signing_secret=tokens.signing_secret, fast=fast)
    if http:
        server = http_server(app, host, port)
        log.info("Slack events at http://%s:%d/slack/events", host, server.server_address[1])
        try:
            server.serve_forever()
        finally:
            server.server_close()
    else:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, tokens.app_token).start()
