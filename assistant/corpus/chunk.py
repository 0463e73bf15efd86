"""Chunk: a `Document` in, sentence-window `Chunk`s out.

Sentences end at 。！？!?；; (and an ASCII "." before a space), so text that mixes `。` with ASCII
`,` `:` `"` splits where a reader would. Windows of whole sentences (target ~300, at most ~400
characters) never cross a section heading and overlap by one sentence inside a paragraph. A
sentence longer than a window is cut at clause punctuation, never inside a number or a word.
Each chunk's text is exactly `document.text[start:end]`; its id hashes source and text, so it is
stable across re-indexing. A document with a byline, outlet, date or URL also gets a card (paragraph
0): its text is the title and byline lines as they stand in the file, its `section` lists the
metadata (sidecar fields included), so "谁写的" / "哪天发表的" find a passage to cite. Embedding and
storage are left to `index`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from assistant.types import Chunk, Document, Paragraph

TARGET_CHARS = 300
MAX_CHARS = 400

# A sentence ends at a terminator (plus closing quotes/brackets), or at "." followed by whitespace and
# a capital, digit, CJK character or quote (not after a lone initial such as "J.").
_SENTENCE_END = re.compile(r"[。！？!?…；;]+[”’」』）)]*|(?<!\b[A-Z])\.(?=\s+[A-Z0-9\u4e00-\u9fff\"“(]|\s*$)")
# Where an over-long sentence may be cut: after clause punctuation (an ASCII comma between digits,
# as in 5,000, is part of a number).
_CLAUSE_END = re.compile(r"[，；;：:、—]+|(?<![0-9]),(?![0-9])|,(?=\s)")


@dataclass(frozen=True)
class Span:
    """A sentence (or clause) as offsets into the document text."""

    start: int
    end: int
    paragraph: Paragraph


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans within `text[start:end]`, whitespace trimmed, covering all its content."""
    spans: list[tuple[int, int]] = []
    cursor = start
    for m in _SENTENCE_END.finditer(text, start, end):
        spans.append((cursor, m.end()))
        cursor = m.end()
    spans.append((cursor, end))
    return [trimmed for s, e in spans if (trimmed := _trim(text, s, e)) is not None]


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _cut_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut a too-long sentence into pieces of at most `limit` at clause ends (or word gaps)."""
    pieces: list[tuple[int, int]] = []
    while end - start > limit:
        window_end = start + limit
        cuts = [m.end() for m in _CLAUSE_END.finditer(text, start + limit // 3, window_end)]
        cut = cuts[-1] if cuts else _safe_cut(text, start, window_end)
        if (piece := _trim(text, start, cut)) is not None:
            pieces.append(piece)
        start = cut
    if (piece := _trim(text, start, end)) is not None:
        pieces.append(piece)
    return pieces


def _safe_cut(text: str, start: int, end: int) -> int:
    """The last position before `end` that does not split a run of letters or digits."""
    for cut in range(end, start + 1, -1):
        if not (text[cut - 1].isascii() and text[cut - 1].isalnum() and text[cut].isascii() and text[cut].isalnum()):
            return cut
    return end


def sentences(document: Document, max_chars: int = MAX_CHARS) -> list[Span]:
    """Every sentence of the document's body, in order, none longer than `max_chars`."""
    spans = []
    for paragraph in document.paragraphs:
        for s, e in split_sentences(document.text, paragraph.start, paragraph.end):
            for ps, pe in _cut_long(document.text, s, e, max_chars):
                spans.append(Span(ps, pe, paragraph))
    return spans


def chunk_document(document: Document, target_chars: int = TARGET_CHARS, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Group the document's sentences into overlapping windows; see the module docstring."""
    seen: dict[str, int] = {}
    chunks: list[Chunk] = [card] if (card := document_card(document, seen)) else []
    for window in _windows(sentences(document, max_chars), target_chars, max_chars):
        start, end = window[0].start, window[-1].end
        text = document.text[start:end]
        chunk_id = _chunk_id(document.source, text, seen)
        first = window[0].paragraph
        chunks.append(Chunk(chunk_id, document.source, document.title, first.section, first.number, start, end, text))
    return chunks


CARD_LABELS = (("title", "标题"), ("outlet", "媒体"), ("byline", "作者"), ("date", "发表日期"), ("url", "网址"))
CARD_SECTION = "文档信息"


def document_card(document: Document, seen: dict[str, int] | None = None) -> Chunk | None:
    """The document's card (see the module docstring), or None when it has no metadata beyond a title."""
    meta = {**document.meta, "title": document.title}
    if document.header is None or not any(meta.get(k) for k in ("outlet", "byline", "date", "url")):
        return None
    start, end = document.header
    section = CARD_SECTION + "：" + "；".join(f"{label}：{meta[k]}" for k, label in CARD_LABELS if meta.get(k))
    text = document.text[start:end]
    chunk_id = _chunk_id(document.source, f"{section}\x00{text}", {} if seen is None else seen)
    return Chunk(chunk_id, document.source, document.title, section, 0, start, end, text)


def _windows(spans: list[Span], target: int, limit: int) -> list[list[Span]]:
    windows: list[list[Span]] = []
    current: list[Span] = []
    for span in spans:
        if current and _must_break(current, span, target, limit):
            windows.append(current)
            overlap = current[-1]
            same_paragraph = overlap.paragraph == span.paragraph
            fits = span.end - overlap.start <= limit and overlap.end - overlap.start <= target // 2
            current = [overlap] if same_paragraph and fits and len(current) > 1 else []
        current.append(span)
    if current:
        windows.append(current)
    return windows


def _must_break(current: list[Span], span: Span, target: int, limit: int) -> bool:
    if span.paragraph.section != current[-1].paragraph.section:
        return True
    size = span.end - current[0].start
    if size > limit:
        return True
    current_size = current[-1].end - current[0].start
    if span.paragraph != current[-1].paragraph and current_size >= target // 2:
        return True  # a paragraph boundary is the natural place to end a window
    return size > target and current_size >= target // 3


def _chunk_id(source: str, text: str, seen: dict[str, int]) -> str:
    digest = hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:20]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
