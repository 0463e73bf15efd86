"""Inputs: what every interface accepts as a question and as the conversation before it, checked once.

`check_question` turns raw text into the question the pipeline sees (terminal escape sequences,
control characters and invisible direction marks removed) or raises an `InputError` that names the
problem and what to do; `check_history` does the same for the earlier turns. Turning the error into
an exit code, an HTTP status or a chat reply is left to each interface.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from assistant.errors import InputError

MAX_QUESTION_CHARS = 2000  # the one question-length limit: every interface and the API's body model use it
MAX_HISTORY_TURNS = 20  # the earlier turns kept (only the last few reach retrieval and the model)
EXAMPLE = "阶跃星辰融资了多少？"

# Terminal escape sequences (CSI such as "\x1b[31m", OSC such as a window title, two-character ones).
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Control characters (tab and newlines kept), zero-width and bidirectional marks, a byte-order mark.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` without escape sequences, control characters or invisible marks, stripped."""
    return _INVISIBLE.sub("", _ESCAPES.sub("", text)).strip()


def check_question(question: object, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """The cleaned question, or `InputError` when it is not text, not valid Unicode, too long or empty."""
    if not isinstance(question, str):
        raise InputError(f"the question must be text, not {type(question).__name__}")
    if _SURROGATE.search(question):
        raise InputError(
            "the question is not valid text (it holds bytes that are not UTF-8): send it as UTF-8, "
            "e.g. check the terminal's encoding"
        )
    if len(question) > max_chars:
        raise InputError(
            f"the question is {len(question)} characters long; the limit is {max_chars}: "
            f"shorten it to under {max_chars}"
        )
    cleaned = clean_text(question)
    if not cleaned:
        raise InputError(f"the question is empty: ask something about the corpus, e.g. {EXAMPLE}")
    return cleaned


def check_history(history: object) -> list[str]:
    """The earlier user turns, oldest first: cleaned, blank ones dropped, the last `MAX_HISTORY_TURNS` kept.

    `None` is no history; a single string or anything but a list of strings is an `InputError`."""
    if history is None:
        return []
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Iterable):
        raise InputError(
            f"history must be a list of the earlier questions (oldest first), not {type(history).__name__}"
        )
    turns = list(history)
    skipped = max(0, len(turns) - MAX_HISTORY_TURNS)
    cleaned = []
    for i, turn in enumerate(turns[skipped:], start=skipped):
        if not isinstance(turn, str):
            raise InputError(f"history[{i}] must be text (an earlier question), not {type(turn).__name__}")
        if _SURROGATE.search(turn):
            raise InputError(f"history[{i}] is not valid text (it holds bytes that are not UTF-8): send it as UTF-8")
        if text := clean_text(turn)[:MAX_QUESTION_CHARS]:
            cleaned.append(text)
    return cleaned
