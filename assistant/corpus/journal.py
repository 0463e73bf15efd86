"""Journal: how to put the corpus back if an add is cut off, written before the add changes it.

`recorded` keeps a hard link to every file the add will replace or remove (`.add.undo.<n>`, beside the lock in
the corpus directory), then the journal (`.add.journal`) naming each path and its copy, all on disk before the
block changes anything. A failure in the block puts the files back; its end (the index updated) forgets them. A
crash (`kill -9`, a power cut) leaves the journal: `pending` sees it and `put_back` undoes the add, safely again
if that too is cut off. Holding the add lock (`add.locked`) while calling these, and updating the index after a
`put_back`, are the caller's (`Assistant.recover`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from assistant.errors import CorpusError

log = logging.getLogger(__name__)

JOURNAL = ".add.journal"
_UNDO = ".add.undo."  # + a number: a file as it was before the add


@contextmanager
def recorded(corpus: Path, paths: Iterable[Path]) -> Iterator[None]:
    """Record how to put `paths` (files in `corpus` the block may write or remove) back, then run the block;
    if it raises, they are put back; then the record is forgotten. A `CorpusError` if it cannot be recorded."""
    entries: list[dict[str, str | None]] = []
    try:
        for n, path in enumerate(paths):
            undo = None
            if path.exists() or path.is_symlink():
                undo = f"{_UNDO}{n}"
                _keep(path, corpus / undo)
            entries.append({"path": path.relative_to(corpus).as_posix(), "undo": undo})
        _write_journal(corpus, entries)
    except OSError as exc:
        forget(corpus)
        raise CorpusError(
            f"cannot write in {corpus} ({exc.strerror or exc}): make the corpus directory writable, or point "
            "--corpus / ASSISTANT_CORPUS at a writable one"
        ) from exc
    try:
        yield
    except BaseException:
        try:
            put_back(corpus)
            forget(corpus)
        except OSError as exc:  # the journal stays: the next add, or the next start, tries again
            log.warning("cannot put back the files of a failed add (%s); it will be tried again", exc)
        raise
    forget(corpus)


def pending(corpus: Path) -> bool:
    """Whether an add left its journal: it was cut off, unless it is running now (the caller holds the lock)."""
    return (corpus / JOURNAL).is_file()


def put_back(corpus: Path) -> list[str]:
    """The files the journal names, put back as they were (new ones removed); their corpus-relative paths. The
    journal is kept, so calling this again (after a crash in it) does no harm; an `OSError` (after trying every
    file) if one cannot be put back."""
    try:
        entries = json.loads((corpus / JOURNAL).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read %s (%s): the files of the add it names are left as they are", JOURNAL, exc)
        return []
    restored, failed = [], None
    for entry in entries:
        relative, undo = str(entry.get("path", "")), entry.get("undo")
        parts = PurePosixPath(relative).parts
        if not parts or relative.startswith("/") or ".." in parts or _through_link(corpus, parts):
            continue  # not a path an add writes (a planted journal must not reach outside the corpus)
        path, kept = corpus / relative, corpus / PurePosixPath(str(undo)).name
        try:
            if undo is None:
                path.unlink(missing_ok=True)
            elif kept.name.startswith(_UNDO) and (kept.exists() or kept.is_symlink()):
                os.replace(kept, path)
            # else: its copy was moved back already
            for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # a write cut off before its rename
                temp.unlink(missing_ok=True)
            restored.append(relative)
        except OSError as exc:
            failed = failed or exc
    if failed is not None:
        raise failed
    return restored


def _through_link(corpus: Path, parts: tuple[str, ...]) -> bool:
    """Whether a folder on the way from `corpus` to the file `parts` names is a symlink (it may lead outside)."""
    folder = corpus
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return True
    return False


def forget(corpus: Path) -> None:
    """Remove the journal and every copy it kept (also those of an add cut off before its journal was written)."""
    (corpus / JOURNAL).unlink(missing_ok=True)
    for undo in corpus.glob(f"{_UNDO}*"):
        undo.unlink(missing_ok=True)


def _keep(path: Path, undo: Path) -> None:
    """A copy of `path` as it is now: a hard link (the add replaces a file by renaming a new one over it, so the
    link keeps the old content at no cost), or a real copy where the file system cannot link."""
    undo.unlink(missing_ok=True)
    try:
        os.link(path, undo, follow_symlinks=False)
    except OSError:
        shutil.copy2(path, undo, follow_symlinks=False)


def _write_journal(corpus: Path, entries: list[dict[str, str | None]]) -> None:
    temp = corpus / f"{JOURNAL}.tmp"
    with open(temp, "w", encoding="utf-8") as f:
        json.dump({"files": entries}, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, corpus / JOURNAL)
    directory = os.open(corpus, os.O_RDONLY)
    try:
        os.fsync(directory)  # the copies and the journal's name reach the disk before any file changes
    finally:
        os.close(directory)
