"""HTML for the web chat: answers with clickable `[n]` markers, the sources panel, the article view.

Input is the answer contract (`types.Answer`, `Citation`) and cleaned `Document`s; output is HTML
strings in which every piece of text is escaped. The page's CSS and script are `assets`'; building
the page and streaming are `ui`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape

from assistant.interfaces.render import clip, where
from assistant.types import Answer, Citation, Document, Evidence

MARKER = re.compile(r"\[(\d+)\]")
# Every character HTML or Markdown gives a meaning, as a character reference, and line breaks as <br>: a chat
# bubble is one HTML block with no blank line, so the chat's Markdown renderer never reads model output or
# corpus text as an image, a link or HTML (a planted passage can steer what the model writes).
_INERT = {ord(c): f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-.!|~:=/"} | {ord("\n"): "<br>", ord("\r"): ""}
RELATED_LABEL = "相关段落（未引用）/ Related (not cited)"
READ_LABEL = "在原文中阅读 / Read in the article"
SNIPPET_CHARS = 90


def inert(text: str) -> str:
    """`text` as text in a chat bubble: no HTML, no Markdown, no blank line (see `_INERT`)."""
    return text.translate(_INERT)


def answer_html(answer: Answer, turn: int) -> str:
    """A final answer (or a refusal) as a chat bubble; `turn` makes the source ids unique."""
    if answer.uncited:
        items = "".join(
            f'<li><a class="rel" href="#{source_id(turn, c, related=True)}">{inert(where(c))}</a> '
            f"“{inert(clip(c.quote or c.text, SNIPPET_CHARS))}”</li>"
            for c in answer.sources
        )
        related = f'<div class="related-list"><b>{RELATED_LABEL}</b><ul>{items}</ul></div>' if items else ""
        body = f'<p class="refusal-text">{inert(answer.answer)}</p>{related}'
        return f'<div class="reply refusal" data-turn="{turn}">{body}{meta_html(answer)}</div>'
    known = {c.n for c in answer.citations}

    pieces = MARKER.split(answer.answer)  # text, marker number, text, …: the text made inert, known markers linked
    text = "".join(
        inert(piece)
        if i % 2 == 0
        else (
            f'<a class="cite" href="#src-{turn}-{piece}" title="{READ_LABEL}">&#91;{piece}&#93;</a>'
            if int(piece) in known
            else inert(f"[{piece}]")
        )
        for i, piece in enumerate(pieces)
    )
    kind = "correction" if answer.refused else "answer"  # a premise correction cites like an answer
    return f'<div class="reply {kind}" data-turn="{turn}"><p>{text}</p>{meta_html(answer)}</div>'


def draft_html(text: str, evidence: Evidence | None = None, waiting: int = 0) -> str:
    """The best supporting quote (found at once) and the model's draft while it streams: both shown as
    provisional, replaced by the verified answer; before that, how many questions are `waiting` ahead."""
    quote = ""
    if evidence is not None:
        where_ = inert(where(evidence.citation))
        quote = f'<blockquote class="evidence">{inert(evidence.text)} <span class="meta">{where_}</span></blockquote>'
    status = "草稿，核对中… / Draft, checking…" if text else "正在生成回答… / Writing the answer…"
    if waiting:
        status = f"排队中，前面还有 {waiting} 个问题 / In line: {waiting} question(s) ahead"
    return (
        f'<div class="reply draft">{quote}<p>{inert(text)}<span class="caret">▍</span></p>'
        f'<p class="meta">{status}</p></div>'
    )


def error_html(message: str, lead: str = "抱歉，没能回答 / Sorry, no answer this time") -> str:
    return f'<div class="reply error"><p>{inert(lead)}: {inert(message)}</p></div>'


def meta_html(answer: Answer) -> str:
    """`models · first token 1.9 s · total 3.1 s` under each answer."""
    parts = [p for p in (answer.models.get("llm", ""), answer.models.get("embeddings", "")) if p]
    t = answer.timings
    if "first_token_s" in t:
        parts.append(f"首字 / first token {t['first_token_s']:.1f} s")
    if "total_s" in t:
        parts.append(f"总计 / total {t['total_s']:.1f} s")
    return f'<p class="meta">{inert(" · ".join(parts))}</p>'


def sources_html(turns: Sequence[Answer]) -> str:
    """The sources panel: each turn's cited passages (or related ones), newest first and open."""
    if not turns:
        return (
            '<div class="sources-empty">回答引用的段落会显示在这里。点击答案中的 [1] 查看原文。<br>'
            "Passages an answer cites appear here. Click a [1] in an answer to see it in the article.</div>"
        )
    blocks = []
    for turn in range(len(turns) - 1, -1, -1):
        answer = turns[turn]
        related = answer.uncited
        shown = answer.sources
        latest = turn == len(turns) - 1  # its first passage is the one the article view opens on
        cards = "".join(source_card(turn, c, related, active=latest and i == 0) for i, c in enumerate(shown))
        heading = f'<p class="related-head">{RELATED_LABEL}</p>' if related and cards else ""
        if not cards:
            cards = '<p class="none">没有引用 / No sources</p>'
        is_open = " open" if latest else ""
        blocks.append(
            f'<details class="turn"{is_open}><summary>{escape(clip(answer.question, 80))}</summary>'
            f"{heading}{cards}</details>"
        )
    return "".join(blocks)


def source_card(turn: int, c: Citation, related: bool = False, active: bool = False) -> str:
    qs, qe = quote_span(c)
    kind = "source related" if related else "source"
    kind += " active" if active else ""
    label = "·" if related else f"[{c.n}]"
    return (
        f'<div class="{kind}" id="{source_id(turn, c, related)}" data-source="{escape(c.source)}" '
        f'data-start="{c.start}" data-end="{c.end}" data-qs="{qs}" data-qe="{qe}">'
        f'<div class="where"><b>{label}</b> {escape(where(c))}</div>'
        f"<blockquote>{passage_html(c)}</blockquote>"
        f'<a class="read" href="#{source_id(turn, c, related)}">{READ_LABEL} ↓</a></div>'
    )


def passage_html(c: Citation) -> str:
    """The passage with its supporting sentence in `<mark>`."""
    at = c.text.find(c.quote) if c.quote else -1
    if at < 0:
        return escape(c.text)
    end = at + len(c.quote)
    return f"{escape(c.text[:at])}<mark>{escape(c.quote)}</mark>{escape(c.text[end:])}"


def article_html(documents: Iterable[tuple[str, Document]], focus: Citation | None = None) -> str:
    """Each cited document, cleaned (title, headings, paragraphs), with `focus`'s span highlighted.

    `documents` pairs the citation's `source` (as shown) with the document; only the focused one
    is visible until a marker is clicked."""
    sections = []
    for source, doc in documents:
        visible = focus is not None and focus.source == source
        span = (focus.start, focus.end, *quote_span(focus)) if visible and focus else None
        sections.append(
            f'<section class="article" data-source="{escape(source)}"{"" if visible else " hidden"}>'
            f"<h3>{escape(doc.title)}</h3>{_byline(doc)}{''.join(_paragraphs(doc, span))}</section>"
        )
    if not sections:
        return '<div class="article-empty">原文会显示在这里 / The article appears here</div>'
    return f'<div class="article-scroll">{"".join(sections)}</div>'


def _byline(doc: Document) -> str:
    bits = [doc.meta.get(k, "") for k in ("outlet", "byline", "date")]
    line = " · ".join(b for b in bits if b)
    return f'<p class="byline">{escape(line)}</p>' if line else ""


def _paragraphs(doc: Document, span: tuple[int, int, int, int] | None) -> Iterable[str]:
    section = ""
    for p in doc.paragraphs:
        if p.section != section:
            section = p.section
            if section:
                yield f"<h4>{escape(section)}</h4>"
        text = doc.text[p.start : p.end]
        yield f'<p data-s="{p.start}" data-e="{p.end}" data-n="{p.number}">{_marked(text, p.start, span)}</p>'


def _marked(text: str, offset: int, span: tuple[int, int, int, int] | None) -> str:
    """`text` (starting at `offset` in the file) with the span in `<mark class="span">` and the
    quote inside it in `<mark class="quote">`; the page script does the same on a click."""
    end = offset + len(text)
    if span is None or span[1] <= offset or span[0] >= end:
        return escape(text)
    s, e, qs, qe = span
    cuts = sorted({x for x in (offset, end, s, e, qs, qe) if offset <= x <= end})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        piece = escape(text[a - offset : b - offset])
        if s <= a and b <= e:
            kind = "quote" if qs <= a and b <= qe else "span"
            out.append(f'<mark class="{kind}">{piece}</mark>')
        else:
            out.append(piece)
    return "".join(out)


def quote_span(c: Citation) -> tuple[int, int]:
    """File offsets of the quote inside the passage, or (-1, -1)."""
    at = c.text.find(c.quote) if c.quote else -1
    return (-1, -1) if at < 0 else (c.start + at, c.start + at + len(c.quote))


def source_id(turn: int, c: Citation, related: bool = False) -> str:
    return f"src-{turn}-{'r' if related else ''}{c.n}"
