"""Ingest: corpus files in, cleaned `Document`s out.

Reads every `.txt`/`.md` file under the corpus directory (and its optional `<stem>.meta.json`
sidecar), strips captured-page chrome by general rules (navigation and timestamp lines before the
title, a byline, and everything from the first footer marker such as "相关标签" or "热门推荐"),
finds section headings, and records each body paragraph's character offsets into the original
text. The file itself is never changed. A file that cannot be used (binary, not UTF-8, unreadable,
too large, empty after cleaning) is skipped with the reason; a malformed sidecar (or field) is
ignored with a warning. A symbolic link is never followed: one to a file outside the corpus would read
that file, and one to a file inside would index it twice, so each is skipped with the reason (a sidecar
that is a link is ignored). A PDF, Word file or web page is read through the text `add` saved beside it
(`report.pdf.txt`); one without that is skipped with the command that makes it. Sentence splitting and
chunking are left to `chunk`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.corpus.convert import KINDS
from assistant.errors import CorpusError
from assistant.types import Document, Paragraph

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md")
# indexed through the text `add` saves beside them (`report.pdf.txt`)
CONVERTED = tuple(suffix for suffix, kind in KINDS.items() if kind != "text")
SIDECAR_SUFFIX = ".meta.json"
SIDECAR_FIELDS = ("title", "outlet", "byline", "date", "url", "language")

# A footer marker on a line of its own ends the article: what follows is comments, share widgets
# and recommendations for other pages.
FOOTER_MARKERS = re.compile(
    r"^(相关标签|相关阅读|相关文章|相关推荐|推荐阅读|热门推荐|猜你喜欢|延伸阅读|最新评论|全部评论|"
    r"热门评论|发表评论|扫码分享|分享到.{0,10}|查看更多(内容)?|没有更多评论了|觉得文章不错.*|"
    r"责任编辑.{0,20}|版权声明.*|免责声明.*|本文来源.{0,30}|"
    r"related (articles|posts|tags)|recommended( for you)?|comments?|share this( article)?|"
    r"read more|you may also like)\s*[:：]?$",
    re.IGNORECASE,
)
# Short lines before the title that are site navigation or a relative timestamp.
HEADER_CHROME = re.compile(
    r"(首页|登录|注册|下载|客户端|APP|关于|合作|订阅|导航|菜单|\d+\s*(秒|分钟|小时|天)前|刚刚|昨天|"
    r"^\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?(\s+\d{1,2}:\d{2})?$|home|log ?in|sign ?up|menu|"
    r"subscribe|\d+ (minutes?|hours?|days?) ago)",
    re.IGNORECASE,
)
BYLINE = re.compile(r"^(文|作者|记者|编辑|撰文|来源|出品|by)\s*[|I丨｜:：/ ]", re.IGNORECASE)
SENTENCE_PUNCT = re.compile(r"[。！？!?，,：:；;“”\"]|\.\s|\.$")
MAX_HEADER_LINES = 8
MAX_HEADING_CHARS = 24
MAX_FILE_BYTES = 20_000_000
MAX_META_CHARS = 500
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")  # not tab, newlines, form feed or ESC


@dataclass(frozen=True)
class Skipped:
    """A corpus file that was not ingested, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    text: str


def load_corpus(corpus_dir: Path) -> tuple[list[Document], list[Skipped]]:
    """Read every ingestible file under `corpus_dir`; unreadable files are skipped, not fatal."""
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus directory {corpus_dir} does not exist: create it and put .txt or .md files "
            "in it, or point --corpus / ASSISTANT_CORPUS at one"
        )
    documents: list[Document] = []
    skipped: list[Skipped] = []
    root = corpus_dir.resolve()
    for path in sorted(corpus_dir.rglob("*")):
        if path.name.startswith("."):
            continue
        source = path.relative_to(corpus_dir).as_posix()
        if link := _link(path, root):
            log.warning("skipping %s: %s", source, link)
            skipped.append(Skipped(source, link))
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() in CONVERTED and not path.with_name(path.name + ".txt").is_file():
            skipped.append(Skipped(source, f"not text: `assistant add {path}` extracts its text and indexes it"))
            continue
        if path.suffix.lower() not in SUFFIXES:
            continue
        try:
            document = read_document(path, source)
        except CorpusError as exc:
            log.warning("skipping %s: %s", source, exc)
            skipped.append(Skipped(source, str(exc)))
            continue
        if not document.paragraphs:
            log.warning("skipping %s: no text left after cleaning", source)
            skipped.append(Skipped(source, "no text left after cleaning"))
            continue
        documents.append(document)
    return documents, skipped


def _link(path: Path, root: Path) -> str:
    """Why `path` is not read although it is in the corpus: it is a link, or lies through one outside `root`
    ("" when it is neither). Resolved each time, so a link made after the corpus was listed is caught too."""
    try:
        inside = path.resolve().is_relative_to(root)
        link = path.is_symlink()
    except (OSError, RuntimeError):  # a loop of links
        return "a link that cannot be resolved: never followed"
    if not inside:
        return "a link to a file outside the corpus: never read (copy the file into the corpus to index it)"
    if link:
        return "a link: never followed (the file it points to is indexed where it lies)"
    return ""


def read_document(path: Path, source: str) -> Document:
    """Read one file (and its sidecar) into a cleaned `Document`; `CorpusError` says why it cannot be."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CorpusError(f"too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,}): split it into parts")
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot be read ({exc.strerror or exc}): check that it exists and its permissions") from exc
    if _looks_binary(raw):
        raise CorpusError("looks like a binary file; only UTF-8 .txt/.md text is ingested")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"not valid UTF-8 (byte {exc.start}); convert it, e.g. `iconv -f GB18030 -t UTF-8`") from exc
    meta = read_sidecar(path)
    return parse_document(text, source, meta, sha256=hashlib.sha256(raw).hexdigest())


def _looks_binary(raw: bytes) -> bool:
    """A NUL anywhere, or more than 5% control bytes in the first 8 kB (text has almost none)."""
    head = raw[:8192]
    return b"\x00" in raw or len(_CONTROL_BYTES.findall(head)) > 0.05 * max(1, len(head))


def read_sidecar(path: Path) -> dict[str, str]:
    """The optional `<stem>.meta.json` beside a corpus file; a malformed one is ignored with a warning."""
    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    if sidecar.is_symlink():
        log.warning("ignoring sidecar %s: a link, never followed; put the file itself there", sidecar.name)
        return {}
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("ignoring sidecar %s: not readable UTF-8 JSON (%s); fix it or delete it", sidecar.name, exc)
        return {}
    if not isinstance(data, dict):
        log.warning('ignoring sidecar %s: expected a JSON object such as {"title": "…"}', sidecar.name)
        return {}
    meta = {}
    for key in SIDECAR_FIELDS:
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if value is not None and not isinstance(value, str):
            log.warning("ignoring %s in sidecar %s: expected text, got %s", key, sidecar.name, type(value).__name__)
        elif value and (value := _one_line(value)):
            meta[key] = value
    return meta


def _one_line(value: str) -> str:
    """A metadata value on one line, without control characters, at most MAX_META_CHARS long."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", value).split())[:MAX_META_CHARS]


def parse_document(text: str, source: str, meta: dict[str, str], sha256: str = "") -> Document:
    """Clean `text` into title, byline and body paragraphs with offsets; `text` is kept unchanged."""
    meta = dict(meta)
    lines = _lines(text)
    markdown = source.lower().endswith(".md")
    title_at = _find_title(lines, meta.get("title"), markdown)
    header_start = lines[0].start if lines else 0
    header = None
    if title_at is not None and len(lines) > title_at + 1:  # a file whose only line is a title keeps it as text
        meta.setdefault("title", _heading_text(lines[title_at].text))
        header = (header_start, lines[title_at].end)
        lines = lines[title_at + 1 :]
    if lines and BYLINE.match(lines[0].text) and len(lines[0].text) <= 60 and len(lines) > 1:
        meta.setdefault("byline", lines[0].text)
        header = (header_start, lines[0].end)
        lines = lines[1:]
    lines = _cut_footer(lines)
    if markdown:
        lines = _join_soft_wraps(text, lines)
    title = meta.get("title") or Path(source).stem
    return Document(
        source=source,
        text=text,
        sha256=sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=title,
        paragraphs=tuple(_paragraphs(lines, markdown)),
        meta=meta,
        header=header,
    )


def _lines(text: str) -> list[_Line]:
    """Non-blank lines with their offsets, surrounding whitespace excluded from the span."""
    lines = []
    for m in re.finditer(r"[^\r\n]+", text):
        stripped = m.group().strip().lstrip("\ufeff").lstrip()  # a byte-order mark counts as blank
        if stripped:
            start = m.start() + m.group().index(stripped)
            lines.append(_Line(start, start + len(stripped), stripped))
    return lines


def _find_title(lines: list[_Line], known: str | None, markdown: bool) -> int | None:
    """Index of the title line: the sidecar's title if present, else the first non-chrome line."""
    head = lines[:MAX_HEADER_LINES]
    if known:
        for i, line in enumerate(head):
            if _heading_text(line.text) == known.strip():
                return i
        return None
    for i, line in enumerate(head):
        if markdown and line.text.startswith("#"):
            return i
        if len(line.text) <= 40 and HEADER_CHROME.search(line.text):
            continue
        # A title is a short line; a long first line means the file starts straight with text.
        return i if len(line.text) <= 60 and not line.text.endswith(("。", ".")) else None
    return None


def _cut_footer(lines: list[_Line]) -> list[_Line]:
    for i, line in enumerate(lines):
        if i > 0 and FOOTER_MARKERS.match(line.text):
            return lines[:i]
    return lines


def _join_soft_wraps(text: str, lines: list[_Line]) -> list[_Line]:
    """In Markdown, consecutive non-blank lines form one paragraph (headings stay on their own)."""
    joined: list[_Line] = []
    for line in lines:
        prev = joined[-1] if joined else None
        gap = text[prev.end : line.start] if prev else ""
        if prev and gap.count("\n") == 1 and not line.text.startswith("#") and not prev.text.startswith("#"):
            joined[-1] = _Line(prev.start, line.end, text[prev.start : line.end])
        else:
            joined.append(line)
    return joined


def _is_heading(line: _Line, following: _Line | None, markdown: bool) -> bool:
    if markdown:
        return line.text.startswith("#")
    return (
        len(line.text) <= MAX_HEADING_CHARS
        and not SENTENCE_PUNCT.search(line.text)
        and following is not None
        and len(following.text) > len(line.text)
    )


def _heading_text(text: str) -> str:
    return text.lstrip("#").strip()


def _paragraphs(lines: list[_Line], markdown: bool) -> list[Paragraph]:
    paragraphs: list[Paragraph] = []
    section = ""
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else None
        if _is_heading(line, following, markdown):
            section = _heading_text(line.text)
            continue
        paragraphs.append(Paragraph(len(paragraphs) + 1, line.start, line.end, section))
    return paragraphs
