"""Builds: the embedded index's directory, written aside and switched in atomically.

`index_dir/builds/<id>/chroma` each hold one complete Chroma database; the small file `index_dir/CURRENT`
names the one readers use (and the one before it). A sync writes a new build (a copy of the current
one, so unchanged vectors are reused) and then replaces `CURRENT` with `os.replace`, so a reader sees
the old build or the new one, never half of one; a run killed halfway leaves only an orphan
directory, removed by the next run. `.lock` (flock) keeps two writers apart; a build is fsynced before the
switch, and a build a process still reads (a shared flock on its `.readers`) is not removed under it. An
index from before builds (`index_dir/chroma`) is read as the current build and migrated by the next sync
that changes something. Opening Chroma clients on a build is left to `storage`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from assistant.errors import IndexBusyError, IndexCorruptError, IndexNotWritableError

log = logging.getLogger(__name__)

POINTER = "CURRENT"
LEGACY = "chroma"  # where the database lived before builds
DATABASE = "chroma.sqlite3"
READERS = ".readers"  # beside a build's database: every process reading the build holds a shared lock on it


class BuildDir:
    """The layout of one embedded index directory: builds, the pointer to the current one, the lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pointer = root / POINTER
        self.builds = root / "builds"

    def version(self) -> tuple[int, int] | None:
        """Changes whenever a new build is switched in: one `stat`, cheap enough for every request."""
        try:
            st = self.pointer.stat()
        except OSError:  # none yet (or unreadable: `current` says so)
            return None
        return (st.st_ino, st.st_mtime_ns)

    def current(self) -> Path | None:
        """The current build's Chroma directory, or None when nothing has been built here yet."""
        names = self._pointed()
        if not names:
            legacy = self.root / LEGACY
            return legacy if (legacy / DATABASE).is_file() else None
        database = self.root / names[0]
        if not (database / DATABASE).is_file():
            raise IndexCorruptError(
                f"the index at {self.root} names build {names[0]!r}, which is missing or incomplete: "
                "run `assistant index --rebuild` to build it again"
            )
        return database

    def start(self, base: Path | None) -> Path:
        """A new build's Chroma directory: a copy of `base` (the current build), or empty."""
        build_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        database = self.builds / build_id / "chroma"
        try:
            if base is None:
                database.mkdir(parents=True)
            else:
                copy_database(base, database)
        except (OSError, sqlite3.OperationalError) as exc:
            shutil.rmtree(database.parent, ignore_errors=True)
            raise _not_writable(self.root, exc) from exc
        except IndexCorruptError:
            shutil.rmtree(database.parent, ignore_errors=True)
            raise
        return database

    def switch(self, database: Path) -> None:
        """Make `database` the current build (atomically); the one it replaces stays for readers still on it."""
        names = self._readable_pointer() or ([LEGACY] if (self.root / LEGACY / DATABASE).is_file() else [])
        lines = [str(database.relative_to(self.root)), *names[:1]]
        _fsync_tree(database)  # the build reaches the disk before any reader is pointed at it
        for directory in (database.parent, database.parent.parent):  # and so do the names leading to it
            _fsync_dir(directory)
        temp = self.root / f".{POINTER}.{os.getpid()}.tmp"
        with open(temp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.pointer)
        with suppress(OSError):  # the switch is done: tidying up must not undo it
            _fsync_dir(self.root)
            self.collect_garbage()

    def collect_garbage(self) -> None:
        """Remove every build but the current and the previous one (half-built ones of killed runs too).
        Only the lock holder may call this: another writer's build in progress would look like garbage."""
        keep = {self.root / name for name in self._readable_pointer()}
        if not keep:
            return  # nothing switched in yet (or a damaged pointer): leave every build alone
        stale = [b / "chroma" for b in self.builds.iterdir()] if self.builds.is_dir() else []
        stale += [self.root / LEGACY] if (self.root / LEGACY).is_dir() else []
        for database in stale:
            if database in keep:
                continue
            shown = database.parent if database.name == "chroma" else database
            with _unread(database) as unread:
                if not unread:  # a process still reads it (a request began on it): a later run removes it
                    log.info("keeping %s while a reader has it open", shown)
                    continue
                log.info("removing old or unfinished build %s", shown)
                shutil.rmtree(database if database == self.root / LEGACY else database.parent, ignore_errors=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold `index_dir/.lock` while writing; if another process holds it, raise `IndexBusyError`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _not_writable(self.root, exc) from exc
        with os.fdopen(fd, "r+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = lock.read().strip() or "?"
                raise IndexBusyError(
                    f"another `assistant index` is running (pid {pid}) on {self.root}: wait for it to finish, "
                    f"or stop it (kill {pid}) and run `assistant index` again"
                ) from None
            lock.truncate(0)
            lock.write(str(os.getpid()))
            lock.flush()
            try:
                yield
            finally:
                lock.truncate(0)  # the lock itself goes with the file descriptor (or the process)

    def _readable_pointer(self) -> list[str]:
        """`_pointed`, but [] for a damaged pointer (which `--rebuild` replaces)."""
        try:
            return self._pointed()
        except IndexCorruptError:
            return []

    def _pointed(self) -> list[str]:
        """The pointer's lines: the current build, then the previous one ([] without a pointer)."""
        try:
            text = self.pointer.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexCorruptError(
                f"cannot read {self.pointer} ({exc}): fix its permissions, or run `assistant index --rebuild` "
                "to build the index again"
            ) from exc
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if not names or any(Path(n).is_absolute() or ".." in Path(n).parts for n in names):
            raise IndexCorruptError(
                f"{self.pointer} does not name a build: run `assistant index --rebuild` to build the index again"
            )
        return names


def copy_database(source: Path, target: Path) -> None:
    """Copy a Chroma directory: vector segment files as plain (writable) files, the SQLite database
    through SQLite's backup API, a consistent snapshot even while a reader has it open."""
    target.mkdir(parents=True)
    for path in source.rglob("*"):
        if path.is_file() and not path.name.startswith(DATABASE):
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    src = sqlite3.connect(f"{(source / DATABASE).as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(target / DATABASE)
    try:
        src.backup(dst)
    except sqlite3.OperationalError:
        raise  # the copy could not be written: `BuildDir.start` reports it
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(
            f"cannot read the index at {source} ({exc}): run `assistant index --rebuild` to build it again"
        ) from exc
    finally:
        src.close()
        dst.close()


def hold_for_reading(database: Path) -> int | None:
    """A shared lock on `database`'s readers file, held (by the returned descriptor) while a client reads the
    build, so no writer's clean-up deletes it under a request; None where it cannot be taken (read-only)."""
    try:
        fd = os.open(database / READERS, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # the lock goes with the descriptor


@contextmanager
def _unread(database: Path) -> Iterator[bool]:
    """True (holding the build exclusively for the block) when no process holds it for reading."""
    try:
        fd = os.open(database / READERS, os.O_RDWR)
    except OSError:  # never read (a half-built directory), or gone
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every directory bottom-up (names are data too)."""
    directories = [root]
    for path in root.rglob("*"):
        if path.is_dir():
            directories.append(path)
        elif path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in reversed(directories):
        _fsync_dir(directory)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_writable(root: Path, exc: Exception) -> IndexNotWritableError:
    read_only = getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM)
    reason = f"read-only: {getattr(exc, 'strerror', None) or exc}" if read_only else str(exc)
    return IndexNotWritableError(
        f"cannot write the index directory {root} ({reason}): make it writable, or "
        "point --index-dir / ASSISTANT_INDEX_DIR at a writable directory and run `assistant index` there"
    )
