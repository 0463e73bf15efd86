"""What the chat page's events do: stream an answer into the chat (`respond`, waiting its turn in the
assistant's queue), keep a 👍/👎 (`rate`), add uploaded files (`add`); and the article view of the documents
cited so far (`article`). Each returns the page's updates; the layout and wiring are `ui`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.admission import Busy
from assistant.core import Assistant
from assistant.corpus.add import Upload
from assistant.corpus.ingest import read_document
from assistant.errors import AssistantError
from assistant.interfaces.web.render import answer_html, article_html, draft_html, error_html, inert, sources_html
from assistant.types import Answer, Citation, Document, Evidence

log = logging.getLogger(__name__)

Message = dict[str, Any]


def add(assistant: Assistant, paths: list[str] | None) -> Iterator[tuple[Any, str]]:
    """Add uploaded files to the corpus and the index: `(file box, status)` updates, then a clear box."""
    import gradio as gr

    if not paths:
        yield gr.skip(), gr.skip()
        return
    names = ", ".join(Path(p).name for p in paths)
    yield gr.update(interactive=False), f'<p class="upload-note">正在添加 / Adding {inert(names)}…</p>'
    try:
        uploads = [Upload(Path(p).name, Path(p).read_bytes()) for p in paths]
        added, _ = assistant.add(uploads)
    except (OSError, AssistantError) as exc:
        log.warning("upload refused: %s", exc)
        yield gr.update(value=None, interactive=True), error_html(str(exc), lead="没能添加 / Not added")
        return
    except Exception:  # the box is usable again; the details go to the log
        log.exception("upload failed")
        unexpected = error_html("an unexpected error; see the server log", lead="没能添加 / Not added")
        yield gr.update(value=None, interactive=True), unexpected
        return
    finally:
        for p in paths:  # Gradio's copy of the upload: the corpus has its own now (or nothing was added)
            Path(p).unlink(missing_ok=True)
    items = "".join(
        f"<li>{inert(a.original)}: {inert(a.title)} "
        + ("(已在库中 / already there)" if a.unchanged else f"({a.chunks} 段 / passages)")
        + "</li>"
        for a in added
    )
    note = f'<div class="upload-note"><p>已添加，可以提问 / Added: ask about it now</p><ul>{items}</ul></div>'
    yield gr.update(value=None, interactive=True), note


def respond(
    assistant: Assistant, text: str, fast: bool, messages: list[Message], past: list[Answer]
) -> Iterator[tuple[Any, ...]]:
    """Stream one answer into the chat: `(question box, chat, turns, sources, article)` updates."""
    import gradio as gr

    question = (text or "").strip()
    if not question:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    asked = {"role": "user", "content": inert(question)}  # shown as typed, never rendered as Markdown or HTML
    messages = [*messages, asked, {"role": "assistant", "content": draft_html("")}]
    yield "", messages, gr.skip(), gr.skip(), gr.skip()
    draft, evidence, answer = "", None, None
    try:
        ticket = assistant.queue.join()
    except Busy as exc:
        messages[-1] = {"role": "assistant", "content": error_html(f"{exc} (about {exc.retry_after} s)")}
        yield gr.skip(), messages, gr.skip(), gr.skip(), gr.skip()
        return
    try:
        while not ticket.wait(timeout=0.5):  # in line behind other pages, API clients or Slack
            messages[-1] = {"role": "assistant", "content": draft_html("", waiting=assistant.queue.ahead(ticket))}
            yield gr.skip(), messages, gr.skip(), gr.skip(), gr.skip()
        for event in assistant.stream(question, [a.question for a in past], fast=fast):
            if isinstance(event, Answer):
                answer = event
                continue
            if isinstance(event, Evidence):
                evidence = event
            else:
                draft += event
            messages[-1] = {"role": "assistant", "content": draft_html(draft, evidence)}
            yield gr.skip(), messages, gr.skip(), gr.skip(), gr.skip()
    except AssistantError as exc:
        log.warning("web question failed: %s", exc)
        messages[-1] = {"role": "assistant", "content": error_html(str(exc))}
        yield gr.skip(), messages, gr.skip(), gr.skip(), gr.skip()
        return
    except Exception:  # the page stays usable; the details go to the log
        log.exception("web question failed")
        messages[-1] = {"role": "assistant", "content": error_html("an unexpected error; see the server log")}
        yield gr.skip(), messages, gr.skip(), gr.skip(), gr.skip()
        return
    finally:
        ticket.release()
    if answer is None:
        return
    turns = [*past, answer]
    messages[-1] = {"role": "assistant", "content": answer_html(answer, len(turns) - 1)}
    yield "", messages, turns, sources_html(turns), article(turns)


def rate(assistant: Assistant, data: Any, past: list[Answer]) -> None:
    """A thumb (or a flagged reason) on an answer of this conversation, kept in the feedback store."""
    found = re.search(r'data-turn="(\d+)"', str(data.value))
    turn = int(found.group(1)) if found else -1
    if not 0 <= turn < len(past):
        log.warning("feedback on a message that is not an answer (%s): ignored", data.index)
        return
    rating, comment = ("up", "") if data.liked is True else ("down", "" if data.liked is False else str(data.liked))
    history = [a.question for a in past[:turn]]
    try:
        assistant.feedback.add(past[turn].to_dict(), history, rating=rating, comment=comment, source="page")
    except AssistantError as exc:  # the page stays usable; the operator sees why
        log.error("could not keep the page's feedback: %s", exc)


def article(turns: Sequence[Answer]) -> str:
    """The article view: every document cited so far, the latest answer's first passage shown."""
    cited = [c for a in turns for c in a.sources]
    documents: dict[str, Document] = {}
    for c in cited:
        if c.source not in documents and (doc := document(c)) is not None:
            documents[c.source] = doc
    latest = turns[-1].sources
    return article_html(documents.items(), latest[0] if latest else None)


def document(c: Citation) -> Document | None:
    """The cleaned source document of a citation (read from its `path`)."""
    path = Path(c.path)
    if not c.path or not path.is_file():
        return None
    try:
        return _read(str(path), c.source, path.stat().st_mtime_ns)
    except (OSError, AssistantError) as exc:
        log.warning("cannot show %s in the article view: %s", path, exc)
        return None


@lru_cache(maxsize=64)
def _read(path: str, source: str, mtime_ns: int) -> Document:  # mtime in the key: an edited file is read again
    return read_document(Path(path), source)
