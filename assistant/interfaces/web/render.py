"""HTML for the web chat: answers with clickable `[n]` markers, the sources panel, the article view.

Input is the answer contract (`types.Answer`, `Citation`) and cleaned `Document`s; output is HTML
strings in which every piece of text is escaped. The page's CSS and its one script (clicking a
marker shows the passage and highlights the cited span in the article) ride along in `HEAD`, so
they come with the Blocks wherever it is mounted. Building the page and streaming are `ui`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape

from assistant.types import Answer, Citation, Document, Evidence

MARKER = re.compile(r"\[(\d+)\]")
REFUSAL_NOTE = "文章没有提到这一点 / The article does not say"
RELATED_LABEL = "相关段落（未引用）/ Related (not cited)"
READ_LABEL = "在原文中阅读 / Read in the article"
SNIPPET_CHARS = 90


def answer_html(answer: Answer, turn: int) -> str:
    """A final answer (or a refusal) as a chat bubble; `turn` makes the source ids unique."""
    if answer.refused:
        items = "".join(
            f'<li><a class="rel" href="#{source_id(turn, c, related=True)}">{escape(where(c))}</a> '
            f"“{escape(clip(c.quote or c.text, SNIPPET_CHARS))}”</li>"
            for c in answer.related
        )
        related = f'<div class="related-list"><b>{RELATED_LABEL}</b><ul>{items}</ul></div>' if items else ""
        body = f'<p class="refusal-text">{escape(answer.answer)}</p>{related}'
        return f'<div class="reply refusal">{body}{meta_html(answer)}</div>'
    known = {c.n for c in answer.citations}

    def marker(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in known:
            return m.group(0)
        return f'<a class="cite" href="#src-{turn}-{n}" title="{READ_LABEL}">[{n}]</a>'

    text = MARKER.sub(marker, escape(answer.answer))
    return f'<div class="reply answer"><p>{text}</p>{meta_html(answer)}</div>'


def draft_html(text: str, evidence: Evidence | None = None) -> str:
    """The best supporting quote (found at once) and the model's draft while it streams: both shown as
    provisional, replaced by the verified answer."""
    quote = ""
    if evidence is not None:
        where_ = escape(where(evidence.citation))
        quote = f'<blockquote class="evidence">{escape(evidence.text)} <span class="meta">{where_}</span></blockquote>'
    status = "草稿，核对中… / Draft, checking…" if text else "正在生成回答… / Writing the answer…"
    return (
        f'<div class="reply draft">{quote}<p>{escape(text)}<span class="caret">▍</span></p>'
        f'<p class="meta">{status}</p></div>'
    )


def error_html(message: str) -> str:
    return f'<div class="reply error"><p>抱歉，没能回答 / Sorry, no answer this time: {escape(message)}</p></div>'


def meta_html(answer: Answer) -> str:
    """`models · first token 1.9 s · total 3.1 s` under each answer."""
    parts = [p for p in (answer.models.get("llm", ""), answer.models.get("embeddings", "")) if p]
    t = answer.timings
    if "first_token_s" in t:
        parts.append(f"首字 / first token {t['first_token_s']:.1f} s")
    if "total_s" in t:
        parts.append(f"总计 / total {t['total_s']:.1f} s")
    return f'<p class="meta">{escape(" · ".join(parts))}</p>'


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
        related = answer.refused
        shown = answer.related if related else answer.citations
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


def where(c: Citation) -> str:
    """`section · ¶paragraph` (the title when the passage sits under no heading)."""
    return " · ".join(p for p in (c.section or c.title, f"¶{c.paragraph}") if p)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


CSS = """
#main-row { align-items: flex-start; gap: 16px; }
#main-row > * { min-width: 0; }
.reply p { margin: 0 0 .4em; }
.reply .meta { font-size: .78em; color: #6b7280; margin: .4em 0 0; }
.reply.draft p { color: #6b7280; }
.reply.draft blockquote.evidence { margin: 0 0 .4em; padding-left: .6em; border-left: 3px solid #93c5fd; }
.reply .caret { animation: blink 1s steps(2) infinite; }
@keyframes blink { 50% { opacity: 0; } }
a.cite { display: inline-block; padding: 0 .3em; margin: 0 .1em; border-radius: 4px; font-size: .85em;
  font-weight: 600; background: #dbeafe; color: #1d4ed8 !important; text-decoration: none !important;
  cursor: pointer; line-height: 1.4; }
a.cite:hover, a.cite:focus { background: #1d4ed8; color: #fff !important; }
.reply.refusal { background: #f3f4f6; border: 1px dashed #9ca3af; border-radius: 8px; padding: .6em .8em;
  color: #374151; }
.reply.refusal .refusal-text::before { content: "∅ "; color: #9ca3af; }
.reply.refusal .related-list { font-size: .85em; margin-top: .4em; }
.reply.refusal ul { margin: .2em 0 0 1.1em; padding: 0; }
.reply.error { background: #fef2f2; border: 1px solid #fecaca; border-radius: 8px; padding: .6em .8em;
  color: #991b1b; }
#sources-panel, #article-panel { font-size: 14px; line-height: 1.6; overflow-wrap: anywhere; }
#sources-panel details.turn { margin-bottom: .6em; }
#sources-panel summary { cursor: pointer; font-weight: 600; color: #374151; }
#sources-panel .source { border: 1px solid #e5e7eb; border-left: 4px solid #93c5fd; border-radius: 6px;
  padding: .5em .7em; margin: .5em 0; scroll-margin: 12px; }
#sources-panel .source.related { border-left-color: #d1d5db; background: #f9fafb; }
#sources-panel .source.active { border-left-color: #1d4ed8; box-shadow: 0 0 0 2px #bfdbfe; }
#sources-panel .where { color: #4b5563; font-size: .9em; }
#sources-panel blockquote { margin: .3em 0; padding: 0; border: 0; color: #1f2937; white-space: pre-line; }
#sources-panel mark, #article-panel mark.quote { background: #fde68a; color: inherit; padding: 0 1px; }
#article-panel mark.span { background: #e0f2fe; color: inherit; }
#sources-panel .related-head { color: #6b7280; font-size: .9em; margin: .3em 0 0; }
#sources-panel a.read { font-size: .85em; }
.sources-empty, .article-empty { color: #6b7280; font-size: .9em; }
#article-panel .article-scroll { position: relative; max-height: 420px; overflow-y: auto; border: 1px solid #e5e7eb;
  border-radius: 6px; padding: .3em .8em; }
#article-panel h3 { font-size: 1.05em; margin: .4em 0; }
#article-panel h4 { font-size: .95em; margin: .8em 0 .2em; color: #374151; }
#article-panel .byline { color: #6b7280; font-size: .85em; }
#article-panel p { margin: .3em 0; }
@media (max-width: 700px) {
  #main-row { flex-direction: column !important; flex-wrap: nowrap !important; }
  #main-row > * { width: 100% !important; max-width: 100% !important; flex: 1 1 auto !important; }
  #article-panel .article-scroll { max-height: 320px; }
  #chat { height: 400px !important; }
  #examples > .gallery { flex-wrap: nowrap !important; overflow-x: auto; }
  #examples .gallery-item { flex: 0 0 auto; }
  #examples .gallery-item .gallery { white-space: nowrap !important; }
}
"""

# Delegated on `document`, so it keeps working as Gradio re-renders the chat and the panels.
SCRIPT = """
(function () {
  if (window.__assistantWeb) return;
  window.__assistantWeb = true;
  function mark(p, s, e, qs, qe) {
    var ps = +p.dataset.s, pe = +p.dataset.e, text = p.textContent;
    if (e <= ps || s >= pe) { if (p.querySelector('mark')) p.textContent = text; return; }
    var cuts = [ps, pe, s, e, qs, qe].filter(function (x) { return x >= ps && x <= pe; });
    cuts = cuts.filter(function (x, i) { return cuts.indexOf(x) === i; }).sort(function (a, b) { return a - b; });
    p.textContent = '';
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1], piece = text.slice(a - ps, b - ps);
      if (!piece) continue;
      if (a >= s && b <= e) {
        var m = document.createElement('mark');
        m.className = (qs >= 0 && a >= qs && b <= qe) ? 'quote' : 'span';
        m.textContent = piece;
        p.appendChild(m);
      } else { p.appendChild(document.createTextNode(piece)); }
    }
  }
  function showInArticle(card) {
    var d = card.dataset, shown = null;
    document.querySelectorAll('#article-panel section.article').forEach(function (sec) {
      var on = sec.dataset.source === d.source;
      sec.hidden = !on;
      if (on) shown = sec;
    });
    if (!shown) return;
    shown.querySelectorAll('p[data-s]').forEach(function (p) { mark(p, +d.start, +d.end, +d.qs, +d.qe); });
    var first = shown.querySelector('mark'), box = shown.parentElement;
    if (first && box) box.scrollTop = Math.max(0, first.offsetTop - 24);
  }
  document.addEventListener('click', function (ev) {
    var link = ev.target.closest && ev.target.closest('a.cite, a.read, a.rel');
    if (!link) return;
    var card = document.getElementById((link.getAttribute('href') || '').replace(/^#/, ''));
    if (!card) return;
    ev.preventDefault();
    ev.stopPropagation();
    var turn = card.closest('details');
    if (turn) turn.open = true;
    document.querySelectorAll('#sources-panel .source.active').forEach(function (x) { x.classList.remove('active'); });
    card.classList.add('active');
    showInArticle(card);
    (link.classList.contains('read') ? document.getElementById('article-panel') : card)
      .scrollIntoView({block: 'nearest'});
  }, true);
})();
"""

HEAD = f"<style>{CSS}</style><script>{SCRIPT}</script>"
# For the article panel (`gr.HTML(js_on_load=...)`): each new answer scrolls its highlighted span into view.
ARTICLE_ON_LOAD = (
    "watch('value', function () {"
    " var m = element.querySelector('mark'), box = element.querySelector('.article-scroll');"
    " if (m && box) box.scrollTop = Math.max(0, m.offsetTop - 24); });"
)
