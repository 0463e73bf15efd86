"""Add: files given by a user (page upload, `assistant add`, the API) into the corpus directory.

`plan` checks and converts every file before anything is written: a safe name, the size limit, the
kind told by content (`convert`), text that still has paragraphs after cleaning, and no clash with a
different file of the same name unless replacing. `write` then saves each original and, for a PDF,
Word file or web page, its extracted text beside it (`report.pdf` → `report.pdf.txt`, with the title
and author in `report.pdf.meta.json`), each by an atomic rename, and returns an undo that puts back
what was there before. Indexing the result is the `Assistant`'s (`Assistant.add`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath

from assistant.corpus.convert import convert
from assistant.corpus.ingest import MAX_FILE_BYTES, SIDECAR_SUFFIX, parse_document
from assistant.errors import CorpusError

MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class Upload:
    """A file to add: its name as the user gave it (only the last part is used) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Added:
    """One added file: the text file that is indexed and cited (`source`), beside its `original`."""

    source: str  # corpus-relative: "report.pdf.txt", or the file itself for .txt/.md
    original: str  # corpus-relative: "report.pdf"
    kind: str  # text, pdf, docx, html
    title: str
    unchanged: bool = False  # the same file was already there: nothing written
    chunks: int = 0  # filled in once indexed


@dataclass(frozen=True)
class _Planned:
    added: Added
    files: dict[Path, bytes]  # what to write where


def plan(corpus: Path, uploads: Sequence[Upload], *, replace: bool = False, max_bytes: int) -> list[_Planned]:
    """Every upload checked and converted; a `CorpusError` naming the first that cannot be added (then
    none is). Nothing is written."""
    if not uploads:
        raise CorpusError("no files given: name one or more .txt, .md, .pdf, .docx or .html files")
    planned: list[_Planned] = []
    seen: set[str] = set()
    for upload in uploads:
        name = safe_name(upload.name)
        if name.lower() in seen:
            raise CorpusError(f"{name} is given twice: add each file once")
        seen.add(name.lower())
        if len(upload.data) > max_bytes:
            raise CorpusError(
                f"{name} is {len(upload.data):,} bytes; the limit is {max_bytes:,} (ASSISTANT_UPLOAD_MAX_BYTES): "
                "split it into parts"
            )
        converted = convert(name, upload.data)
        text_name = name if converted.kind == "text" else f"{name}.txt"
        text = converted.text if converted.kind == "text" else converted.text + "\n"
        encoded = upload.data if converted.kind == "text" else text.encode("utf-8")
        if len(encoded) > MAX_FILE_BYTES:
            raise CorpusError(f"{name}: its text is over {MAX_FILE_BYTES:,} bytes: split it into parts")
        document = parse_document(text, text_name, converted.meta)
        if not document.paragraphs:
            raise CorpusError(f"{name}: no text left after cleaning (it holds only a title or page furniture)")
        files = {corpus / name: upload.data}
        if converted.kind != "text":
            files[corpus / text_name] = encoded
            if converted.meta:
                sidecar = corpus / (PurePath(text_name).stem + SIDECAR_SUFFIX)
                files[sidecar] = (json.dumps(converted.meta, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        unchanged = all(_holds(path, data) for path, data in files.items())
        if not unchanged and not replace and (corpus / name).exists() and not _holds(corpus / name, upload.data):
            raise CorpusError(
                f"a different {name} is already in the corpus: replace it (`assistant add --replace`, or "
                "replace=true), or rename the new file"
            )
        added = Added(text_name, name, converted.kind, document.title, unchanged)
        planned.append(_Planned(added, {} if unchanged else files))
    return planned


def write(planned: Sequence[_Planned]) -> Callable[[], None]:
    """Save every planned file (each by an atomic rename); returns an undo that restores the files as
    they were (removes new ones, puts back replaced ones)."""
    before: dict[Path, bytes | None] = {}
    try:
        for item in planned:
            for path, data in item.files.items():
                before[path] = path.read_bytes() if path.is_file() else None
                _write_atomically(path, data)
    except OSError as exc:
        _restore(before)
        where = next(iter(before), None)
        raise CorpusError(
            f"cannot write {where.parent if where else 'the corpus'} ({exc.strerror or exc}): make the corpus "
            "directory writable, or point --corpus / ASSISTANT_CORPUS at a writable one"
        ) from exc
    return lambda: _restore(before)


def safe_name(name: str) -> str:
    """The last part of a user's file name, fit to save in the corpus; a `CorpusError` if none is left."""
    base = PureWindowsPath(PurePath(name or "").name).name  # a browser may send C:\\Users\\…\\report.pdf
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    if not base or base.startswith(".") or base.endswith(SIDECAR_SUFFIX):
        raise CorpusError(f"{name!r} is not a usable file name: give the file a name such as report.pdf")
    if len(base) > MAX_NAME_CHARS:
        raise CorpusError(f"{base[:40]}…: the name is over {MAX_NAME_CHARS} characters; shorten it")
    return base


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # hidden: never ingested half-written
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _restore(before: dict[Path, bytes | None]) -> None:
    for path, data in before.items():
        try:
            if data is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomically(path, data)
        except OSError:
            pass  # the corpus directory itself failed: nothing more can be put back
