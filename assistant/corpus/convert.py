"""Convert: an added file's bytes in, its kind (told by content, not name) and plain text out.

`convert` recognises PDF (`%PDF-`), Word (a ZIP holding `word/document.xml`), HTML (markup) and plain
text, refuses a file whose content is not what its name says (`report.pdf` that is really a web page)
or that is of no supported kind, and extracts the text: pypdf for PDF (a page's hard-wrapped lines
joined back into paragraphs, columns kept apart), python-docx for Word (`word`: paragraphs and table rows),
trafilatura for HTML (the main text without navigation, with the page's title, author and URL). The
text it returns is what is saved beside the original and indexed, so citations point into it. PDF and Word
files are read in a child process under CPU, memory and time limits (`isolated`), a Word file's XML counted
as a stream first (paragraphs, runs, elements) and refused past the limits before python-docx builds its
tree; a PDF's pages and text are bounded too. Saving and indexing are `add`'s.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from assistant.corpus.isolated import in_child
from assistant.corpus.word import read_word
from assistant.errors import CorpusError

log = logging.getLogger(__name__)

MAX_PDF_PAGES = 2_000
MAX_TEXT_CHARS = 20_000_000  # extracted from one file (its text is refused past 20 MB anyway)
# What a name may end with, and the kind of content it promises.
KINDS = {".txt": "text", ".md": "text", ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html"}
NAMES = {"text": "plain text", "pdf": "a PDF", "docx": "a Word document", "html": "a web page (HTML)"}
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body)\b", re.I)
_HTML_TAGS = re.compile(rb"<(p|div|br|h[1-6]|article|section|span|a|table|li|meta|title)\b[^>]*>", re.I)
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_END = re.compile(r"[。！？!?…”」』\"'）)．.:：;；]$")  # a line that may end a paragraph
_PLACEHOLDER = re.compile(r"^\W*(anonymous|unknown|administrator|admin|user|author)\W*$", re.I)  # tools' defaults
_COLUMN_GAP = re.compile(r"\S {6,}\S")  # two columns side by side on one laid-out line
_SPACES = re.compile(r"(?<=\S) {2,}(?=\S)")  # justified text laid out with runs of spaces
_HAN = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


@dataclass(frozen=True)
class Converted:
    """An added file's text (what gets indexed and cited) and what its format says about it."""

    kind: str  # text, pdf, docx or html
    text: str
    meta: dict[str, str] = field(default_factory=dict)  # title, byline, date, url: as a corpus sidecar holds them


def sniff(data: bytes) -> str:
    """The file's kind by its content: pdf, docx, html (a whole page: a doctype or an <html>, <head> or <body>
    first), text, or "" for none of them. Strict, so a note that quotes `%PDF-` or a Markdown file with inline
    tags stays text."""
    if data.lstrip()[:5] == b"%PDF-" or (b"%PDF-" in data[:1024] and not _is_utf8(data)):
        return "pdf"  # a PDF may start with up to 1 kB of junk; its compressed streams are never UTF-8
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return "docx" if "word/document.xml" in archive.namelist() else ""
        except zipfile.BadZipFile:
            return ""
    head = data[:8192]
    if b"\x00" in data or len(_CONTROL.findall(head)) > 0.05 * max(1, len(head)):
        return ""
    return "html" if _HTML_START.match(_after_comments(head)) else "text"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _after_comments(head: bytes) -> bytes:
    """`head` without its leading whitespace and comments (a loop, not a regex: no backtracking to exploit)."""
    rest = head.lstrip()
    while rest.startswith(b"<!--"):
        end = rest.find(b"-->", 4)
        if end < 0:
            return b""
        rest = rest[end + 3 :].lstrip()
    return rest


def convert(name: str, data: bytes) -> Converted:
    """`name`'s text, or a `CorpusError` saying why it cannot be added (nothing is written here)."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in KINDS:
        raise CorpusError(f"{name}: only {', '.join(KINDS)} files can be added; save it as one of those")
    if not data.strip():
        raise CorpusError(f"{name} is empty")
    kind, promised = sniff(data), KINDS[suffix]
    if kind == "text" and promised == "html" and len(_HTML_TAGS.findall(data[:8192])) >= 3:
        kind = "html"  # a saved fragment of a page: named .html, and markup throughout
    if kind != promised:
        if not kind:
            raise CorpusError(f"{name} is named {suffix} but its content is not {NAMES[promised]}: check the file")
        raise CorpusError(
            f"{name} is named {suffix} but its content is {NAMES[kind]}: rename it to end in {_suffix_for(kind)}"
        )
    try:
        if kind in ("pdf", "docx"):
            converted = Converted(kind, *in_child(f"{__name__}:extract", kind, data, NAMES[kind]))
        else:
            converted = extract(kind, data)
    except CorpusError as exc:
        raise CorpusError(f"{name}: {exc}") from None
    except Exception as exc:  # a damaged file makes the parsers raise anything
        log.info("cannot convert %s", name, exc_info=True)
        raise CorpusError(f"{name} cannot be read as {NAMES[kind]} ({type(exc).__name__}: {exc})") from None
    if not converted.text.strip():
        hint = " (a scanned PDF holds pictures of text: run OCR on it first)" if kind == "pdf" else ""
        raise CorpusError(f"{name} holds no text{hint}")
    return converted


def extract(kind: str, data: bytes) -> Converted:
    """The text of `data`, whose kind `sniff` told, extracted in this process (`convert` has `isolated` call this
    in a child for a PDF or Word file)."""
    if kind == "pdf":
        return _pdf(data)
    if kind == "docx":
        return Converted("docx", *read_word(data))
    if kind == "html":
        return _html(data)
    return Converted("text", _decode(data))


def _suffix_for(kind: str) -> str:
    return {"text": ".txt", "pdf": ".pdf", "docx": ".docx", "html": ".html"}[kind]


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"not valid UTF-8 (byte {exc.start}): convert it first, e.g. `iconv -f GB18030 -t UTF-8`"
        ) from None


def _pdf(data: bytes) -> Converted:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise CorpusError("the PDF is password-protected: save an unprotected copy and add that")
    if len(reader.pages) > MAX_PDF_PAGES:
        raise CorpusError(
            f"the PDF has {len(reader.pages):,} pages; the limit is {MAX_PDF_PAGES:,}: split it into parts"
        )
    pages: list[str] = []
    chars = 0
    for page in reader.pages:
        pages.append(reflow(_page_text(page)))
        chars += len(pages[-1])
        if chars > MAX_TEXT_CHARS:
            raise CorpusError(f"its text is over {MAX_TEXT_CHARS:,} characters: split it into parts")
    meta = {}
    title = (reader.metadata.title if reader.metadata else None) or ""
    if isinstance(title, str) and title.strip() and not title.lower().startswith(("untitled", "microsoft word")):
        meta["title"] = " ".join(title.split())
    author = (reader.metadata.author if reader.metadata else None) or ""
    if isinstance(author, str) and author.strip() and not _PLACEHOLDER.match(author):
        meta["byline"] = " ".join(author.split())
    return Converted("pdf", "\n\n".join(p for p in pages if p), meta)


def _page_text(page: Any) -> str:
    """A page's text with a blank line where the page leaves vertical space (pypdf's layout mode), unless the
    page is set in columns: layout mode would interleave them, so the content's own order is used."""
    try:
        laid = page.extract_text(extraction_mode="layout")
    except Exception:  # layout mode is the younger code path: fall back to the plain one
        laid = ""
    lines = [line for line in laid.splitlines() if line.strip()]
    if lines and sum(1 for line in lines if _COLUMN_GAP.search(line)) <= 0.2 * len(lines):
        return _SPACES.sub(" ", laid)
    return page.extract_text() or ""


def reflow(page: str) -> str:
    """A PDF page's hard-wrapped lines joined back into paragraphs, one a line, blank lines between.

    A line ends its paragraph when the next is blank, or when it ends like a sentence and is shorter
    than the page's full lines (a paragraph's last line rarely reaches the margin); a short line that
    does not end like a sentence (a heading) stands alone too. Han text joins without a space; a word
    hyphenated at the margin is joined back."""
    lines = [line.strip() for line in page.replace("\r", "").split("\n")]
    widths = [_width(line) for line in lines if line]
    if not widths:
        return ""
    full = statistics.quantiles(widths, n=10)[-1] if len(widths) >= 4 else max(widths)
    paragraphs: list[str] = []
    current = ""
    for i, line in enumerate(lines):
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
            continue
        current = _join(current, line) if current else line
        following = next((n for n in lines[i + 1 : i + 2] if n), "")
        width = _width(line)
        if not following or (width < 0.8 * full and (_END.search(line) or width < 0.5 * full)):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


def _width(line: str) -> int:
    """Columns on the page: a Han character is as wide as two Latin ones."""
    return len(line) + len(_HAN.findall(line))


def _join(left: str, right: str) -> str:
    if left.endswith("-") and right[:1].islower():
        return left[:-1] + right
    if _HAN.match(left[-1]) or _HAN.match(right[0]):
        return left + right
    return f"{left} {right}"


def _html(data: bytes) -> Converted:
    import trafilatura

    text = trafilatura.extract(data, output_format="txt", include_comments=False, include_tables=True)
    found = trafilatura.extract_metadata(data, extensive=False)  # no date guessed from the page's other text
    meta = {}
    if found is not None:
        for key, value in (("title", found.title), ("byline", found.author), ("date", found.date), ("url", found.url)):
            if value:
                meta[key] = " ".join(str(value).split())
    paragraphs = [" ".join(p.split()) for p in (text or "").split("\n")]
    return Converted("html", "\n\n".join(p for p in paragraphs if p), meta)
