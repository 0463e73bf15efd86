"""What the `assistant` command shows in a terminal: answers with their sources, the live quote and
draft while the model writes (erased when the verified answer prints), search hits with their
scores, and the embedding progress bar. Corpus text is made printable (no escape sequences).
Parsing flags and choosing what to run is `main`'s.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from unicodedata import east_asian_width

from assistant.interfaces.render import plain_text, where
from assistant.types import Answer, Evidence, Hit

if TYPE_CHECKING:
    from assistant.core import Assistant


def ask_streaming(assistant: Assistant, question: str, history: list[str], *, fast: bool, show_draft: bool) -> Answer:
    """Ask; when stderr is a terminal, show the best supporting quote as soon as it is found and the
    model's draft as it streams, then erase both: the verified answer replaces them."""
    live = show_draft and sys.stderr.isatty()
    shown, answer = "", None
    for event in assistant.stream(question, history, fast=fast):
        if isinstance(event, Answer):
            answer = event
            continue
        if not live:
            continue
        if isinstance(event, Evidence):
            event = printable(f"{event.text}  ({where(event.citation, offsets=True)})\n")
        text = event
        shown += text
        print(text, end="", file=sys.stderr, flush=True)
    if shown:
        print(erase(shown, shutil.get_terminal_size().columns), end="", file=sys.stderr, flush=True)
    assert answer is not None
    return answer


def erase(shown: str, columns: int) -> str:
    """The terminal codes that take the cursor back to where `shown` began and clear what follows
    (wide CJK characters take two columns; long lines wrap)."""
    rows = sum(
        max(1, -(-sum(2 if east_asian_width(ch) in "WF" else 1 for ch in line) // columns))
        for line in shown.split("\n")
    )
    return "\r" + (f"\033[{rows - 1}A" if rows > 1 else "") + "\033[J"


def render_answer(answer: Answer) -> str:
    """The answer, a refusal's reason, its numbered sources with file offsets and quotes, models and times."""
    return printable(plain_text(answer, offsets=True, why=True))


def printable(text: str) -> str:
    """Corpus text made safe for a terminal: control characters (escape sequences) shown as �."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "\ufffd", text)


def print_hits(question: str, hits: list[Hit]) -> None:
    print(f"Q: {question}")
    if not hits:
        print("  (no passages found)")
    for hit in hits:
        c = hit.chunk
        where = " · ".join(p for p in (c.title, c.section, f"¶{c.paragraph}") if p)
        scores = _scores(hit)
        print(printable(f"\n[{hit.rank}] {where}  ({c.source}:{c.start}-{c.end}; {scores})"))
        print(f"    {printable(c.text)}")
    print()


def _scores(hit: Hit) -> str:
    parts: list[str] = [f"fused {hit.score:.4f}"]
    if hit.dense_rank is not None:
        parts.append(f"dense #{hit.dense_rank} {hit.dense_score:.3f}")
    if hit.keyword_rank is not None:
        parts.append(f"bm25 #{hit.keyword_rank} {hit.keyword_score:.2f}")
    return ", ".join(parts)


PROGRESS_EVERY_S = 10.0  # not on a terminal (a log, CI): a line this often while embedding


def progress_bar() -> Callable[[int, int], None]:
    """A tqdm bar on stderr, created when there is something to embed; when stderr is not a terminal, a
    line every PROGRESS_EVERY_S seconds and one at the end instead, so a log shows indexing moving."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if total == 0:
            return
        if not sys.stderr.isatty():
            now = time.monotonic()
            if done >= total or now - state.get("said", 0.0) >= PROGRESS_EVERY_S:
                state["said"] = now
                print(f"embedding: {done} of {total} chunks", file=sys.stderr, flush=True)
            return
        if "bar" not in state:
            from tqdm import tqdm

            state["bar"] = tqdm(total=total, unit="chunk", desc="embedding", file=sys.stderr, disable=None)
        bar = state["bar"]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
