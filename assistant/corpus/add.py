"""Add: files given by a user (page upload, `assistant add`, the API) into the corpus directory.

`plan` checks and converts every file before anything is written: a safe name (NFC, without control or
direction characters), the size limit, the kind told by content (`convert`), text that still has paragraphs
after cleaning, and no clash of any file it would write (the original, its text `report.pdf.txt`, its sidecar
`report.pdf.meta.json`) with a different file already there, or with one another, or with a name that differs
only in case or Unicode form, unless replacing. `write` then saves each file by an atomic rename (and removes
a replaced original's stale sidecar); `journal.recorded` around it puts back what was there if the add fails
or is cut off. `locked` keeps two adds (in any process sharing the corpus) apart. Indexing the result is the
`Assistant`'s (`Assistant.add`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from assistant.corpus.convert import convert
from assistant.corpus.ingest import MAX_FILE_BYTES, SIDECAR_SUFFIX, parse_document
from assistant.errors import CorpusError, IndexBusyError

MAX_NAME_BYTES = 200  # of UTF-8: with ".txt" and ".meta.json" added, under the file systems' 255
LOCK = ".add.lock"  # in the corpus directory: held by the process adding files
# Never in a name: control characters, line and paragraph separators, and the marks that change the direction
# text is shown in (U+202E makes "report\u202efdp.exe" read "reportexe.pdf").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class Upload:
    """A file to add: its name as the user gave it (only the last part is used), its bytes, and the corpus
    folder to save it in ("" for the corpus itself; `assistant add` of a file inside the corpus keeps its folder)."""

    name: str
    data: bytes
    folder: str = ""


@dataclass(frozen=True)
class Added:
    """One added file: the text file that is indexed and cited (`source`), beside its `original`."""

    source: str  # corpus-relative: "report.pdf.txt", or the file itself for .txt/.md
    original: str  # corpus-relative: "report.pdf"
    kind: str  # text, pdf, docx, html
    title: str
    unchanged: bool = False  # the same file was already there: nothing written
    chunks: int = 0  # its text's chunks, as indexed now (0 when unchanged: nothing was indexed)


@dataclass(frozen=True)
class _Planned:
    added: Added
    files: dict[Path, bytes | None]  # what to write where (None: remove, e.g. a replaced file's stale sidecar)


def plan(corpus: Path, uploads: Sequence[Upload], *, replace: bool = False, max_bytes: int) -> list[_Planned]:
    """Every upload checked and converted; a `CorpusError` naming the first that cannot be added (then
    none is). Nothing is written."""
    if not uploads:
        raise CorpusError("no files given: name one or more .txt, .md, .pdf, .docx or .html files")
    planned: list[_Planned] = []
    claimed: dict[Path, str] = {}  # every path this call writes (case-folded) -> the file that writes it
    for upload in uploads:
        folder = _folder(upload.folder)
        where = corpus / folder
        if not where.resolve().is_relative_to(corpus.resolve()):
            raise CorpusError(f"{upload.folder!r} leads out of the corpus (through a link): add the file elsewhere")
        name = _as_spelled(where, safe_name(upload.name))
        _check_size(name, len(upload.data), max_bytes)
        converted = convert(name, upload.data)
        text_name = name if converted.kind == "text" else f"{name}.txt"
        text = converted.text if converted.kind == "text" else converted.text + "\n"
        encoded = upload.data if converted.kind == "text" else text.encode("utf-8")
        if len(encoded) > MAX_FILE_BYTES:
            raise CorpusError(f"{name}: its text is over {MAX_FILE_BYTES:,} bytes: split it into parts")
        document = parse_document(text, text_name, converted.meta)
        if not document.paragraphs:
            raise CorpusError(f"{name}: no text left after cleaning (it holds only a title or page furniture)")
        files: dict[Path, bytes | None] = {where / name: upload.data}
        if converted.kind != "text":
            files[where / text_name] = encoded
            sidecar = where / (PurePath(text_name).stem + SIDECAR_SUFFIX)
            meta = json.dumps(converted.meta, ensure_ascii=False, indent=2) + "\n" if converted.meta else None
            if meta is not None or sidecar.exists():  # a replaced file's old title must not outlive it
                files[sidecar] = meta.encode("utf-8") if meta is not None else None
        for path in files:
            key = Path(_folded(str(path)))
            if key in claimed:
                raise CorpusError(f"{name} and {claimed[key]} would both be saved as {path.name}: add one of them")
            claimed[key] = name
        changed = [path for path, data in files.items() if not _holds(path, data)]
        if changed and not replace:
            _refuse_clashes(changed, name)
        added = Added(_relative(where / text_name, corpus), _relative(where / name, corpus), converted.kind,
                      document.title, unchanged=not changed)  # fmt: skip
        planned.append(_Planned(added, {p: files[p] for p in changed}))
    return planned


def read_upload(path: Path, corpus: Path, max_bytes: int) -> Upload:
    """A file to add, read from disk (its size checked before reading); one inside the corpus keeps its folder."""
    try:
        if not path.is_file():
            raise CorpusError(f"{path} is not a file: check the path")
        _check_size(path.name, path.stat().st_size, max_bytes)
        inside = path.resolve().parent
        folder = inside.relative_to(corpus).as_posix() if inside.is_relative_to(corpus) else ""
        return Upload(path.name, path.read_bytes(), "" if folder == "." else folder)
    except OSError as exc:
        reason = exc.strerror or exc
        raise CorpusError(f"cannot read {path} ({reason}): check that it exists and its permissions") from exc


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise CorpusError(
            f"{name} is {size:,} bytes; the limit is {max_bytes:,} (ASSISTANT_UPLOAD_MAX_BYTES): split it into parts"
        )


def _folded(name: str) -> str:
    """`name` as a person compares names: case and Unicode form (NFC or NFD `café`) set aside."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _as_spelled(where: Path, name: str) -> str:
    """`name` (NFC) as a file already in `where` spells it when the two differ only in Unicode form (a
    decomposed `café.pdf` copied from a Mac is the same file as the composed one a browser sends)."""
    if where.is_dir():
        for there in where.iterdir():
            if there.name != name and unicodedata.normalize("NFC", there.name) == name:
                return there.name
    return name


def _refuse_clashes(paths: list[Path], name: str) -> None:
    """A path the add would change that holds another file now, or whose name differs from one there only in
    case or Unicode form (two documents a case-insensitive disk, or a person, cannot tell apart): a
    `CorpusError`."""
    for path in paths:
        twins = (
            [p.name for p in path.parent.iterdir() if _folded(p.name) == _folded(path.name)]
            if (path.parent.is_dir())
            else []
        )
        if path.exists() or twins:
            there = path.name if path.exists() else twins[0]
            own = "" if there == name else f" ({name} would write {path.name})"
            raise CorpusError(
                f"a different {there} is already in the corpus{own}: replace it (`assistant add --replace`, or "
                "replace=true), or rename the new file"
            )


def changes(planned: Sequence[_Planned]) -> list[Path]:
    """Every path `write` would write or remove (what `journal.recorded` must be able to put back)."""
    return [path for item in planned for path in item.files]


def write(planned: Sequence[_Planned]) -> None:
    """Save every planned file (each by an atomic rename; None removes it). Putting back what was there when
    this or the index update fails is `journal.recorded`'s, around both."""
    path: Path | None = None
    try:
        for item in planned:
            for path, data in item.files.items():
                if data is None:
                    path.unlink(missing_ok=True)
                else:
                    _write_atomically(path, data)
    except OSError as exc:
        raise CorpusError(
            f"cannot write {path.parent if path else 'the corpus'} ({exc.strerror or exc}): make the corpus "
            "directory writable, or point --corpus / ASSISTANT_CORPUS at a writable one"
        ) from exc


@contextmanager
def locked(corpus: Path, wait: float) -> Iterator[None]:
    """Hold the corpus's add lock for the block, waiting up to `wait` seconds for another process's add
    (an add takes seconds); then `IndexBusyError`. A corpus that cannot hold a lock file cannot be added to."""
    try:
        corpus.mkdir(parents=True, exist_ok=True)
        fd = os.open(corpus / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CorpusError(
            f"cannot write in {corpus} ({exc.strerror or exc}): make the corpus directory writable, or point "
            "--corpus / ASSISTANT_CORPUS at a writable one"
        ) from exc
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusyError(
                        f"another process has been adding files to {corpus} for {wait:.0f} s: try again later"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # the lock goes with the descriptor


def safe_name(name: str) -> str:
    """The last part of a user's file name, fit to save in the corpus; a `CorpusError` if none is left."""
    base = PureWindowsPath(PurePath(name or "").name).name  # a browser may send C:\\Users\\…\\report.pdf
    base = unicodedata.normalize("NFC", base).strip()  # one spelling of `café`, whichever the sender used
    if unsafe := _UNSAFE.search(base):
        char = unsafe.group()
        raise CorpusError(
            f"{base!r} is not a usable file name: it holds U+{ord(char):04X} "
            f"({unicodedata.name(char, 'a control character')}), which can make a name show as another: rename it"
        )
    if not base or base.startswith(".") or base.endswith(SIDECAR_SUFFIX):
        raise CorpusError(f"{name!r} is not a usable file name: give the file a name such as report.pdf")
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        raise CorpusError(f"{base[:30]}…: the name is over {MAX_NAME_BYTES} bytes; shorten it")
    return base


def _folder(folder: str) -> Path:
    """A corpus-relative folder with no way out of the corpus ("" for the corpus itself)."""
    parts = PurePosixPath(folder.replace("\\", "/")).parts if folder else ()
    if any(p in ("..", "/") or p.startswith(".") for p in parts):
        raise CorpusError(f"{folder!r} is not a folder inside the corpus")
    return Path(*parts) if parts else Path()


def _relative(path: Path, corpus: Path) -> str:
    return path.relative_to(corpus).as_posix()


def _holds(path: Path, data: bytes | None) -> bool:
    if data is None:
        return not path.exists()
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
