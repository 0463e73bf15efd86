"""Saved conversations: the page's current conversation and the earlier ones, kept in the browser's storage.

The page keeps `{"current": [answer, …], "earlier": [{"title", "when", "answers"}, …]}` in a Gradio
`BrowserState` (the browser's localStorage, encrypted with a key derived from the server's settings, so it
survives a reload and a server restart). Answers are stored as the answer contract without server paths;
restoring locates each cited file again inside the corpus. Building the page is `ui`'s job.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from assistant.core import Assistant
from assistant.types import Answer, Citation

STORAGE_KEY = "assistant-conversations"
MAX_EARLIER = 20
TITLE_CHARS = 40
Saved = dict[str, Any]


def empty() -> Saved:
    return {"current": [], "earlier": []}


def secret(assistant: Assistant) -> str:
    """The storage's encryption key: the same for every process serving this corpus (and key), so a reload
    after a restart, or on another replica, still reads it."""
    s = assistant.settings
    return hashlib.sha256(f"assistant-page:{s.collection}:{s.api_key or ''}".encode()).hexdigest()[:32]


def keep(saved: Saved | None, turns: Sequence[Answer]) -> Saved:
    """`saved` with `turns` as the current conversation."""
    saved = dict(saved or empty())
    saved["current"] = [a.to_dict(paths=False) for a in turns]
    return saved


def start_new(saved: Saved | None, turns: Sequence[Answer]) -> Saved:
    """Put the current conversation (if any) first among the earlier ones, and start an empty one."""
    saved = keep(saved, turns)
    earlier = list(saved.get("earlier", []))
    if saved["current"]:
        title = saved["current"][0]["question"][:TITLE_CHARS]
        earlier.insert(0, {"title": title, "when": time.strftime("%Y-%m-%d %H:%M"), "answers": saved["current"]})
    return {"current": [], "earlier": earlier[:MAX_EARLIER]}


def reopen(saved: Saved | None, turns: Sequence[Answer], index: int) -> Saved:
    """Make earlier conversation `index` the current one (the current one, if any, becomes an earlier one)."""
    saved = dict(saved or empty())
    earlier = list(saved.get("earlier", []))
    if not 0 <= index < len(earlier):
        return keep(saved, turns)
    chosen = earlier.pop(index)
    saved = start_new({"current": [], "earlier": earlier}, turns)
    saved["current"] = chosen["answers"]
    return saved


def titles(saved: Saved | None) -> list[tuple[str, int]]:
    """(label, index) of each earlier conversation, newest first."""
    return [(f"{c['when']} · {c['title']}", i) for i, c in enumerate((saved or empty()).get("earlier", []))]


def current(assistant: Assistant, saved: Saved | None) -> list[Answer]:
    """The current conversation's answers, each citation's file located again inside the corpus (a record that
    cannot be read, from an older version of the store, is dropped rather than breaking the page)."""
    answers = []
    for data in (saved or empty()).get("current", []):
        try:
            answers.append(_answer(assistant, data))
        except (KeyError, TypeError, ValueError):
            continue
    return answers


def _answer(assistant: Assistant, data: dict[str, Any]) -> Answer:
    def cite(c: dict[str, Any]) -> Citation:
        return replace(Citation(**c), path=assistant.locate(str(c["source"])))

    return Answer(
        str(data["question"]),
        str(data["answer"]),
        bool(data["refused"]),
        tuple(cite(c) for c in data.get("citations", [])),
        dict(data.get("timings", {})),
        dict(data.get("models", {})),
        tuple(cite(c) for c in data.get("related", [])),
        data.get("refusal_reason"),
        str(data.get("refusal_detail", "")),
        tuple(data.get("verification", [])),
        dict(data.get("usage", {})),
        str(data.get("answer_id") or ""),  # so a 👍 after a reload still counts (`feedback`)
    )
