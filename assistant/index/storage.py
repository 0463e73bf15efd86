"""Storage: where an `Index` gets its Chroma client, and how it writes a new version of the data.

`EmbeddedStorage` opens a `PersistentClient` on the current build of an index directory (`builds`),
tells when another build has been switched in, and writes a sync into a copy that is switched in
only when the write succeeded; a read-only directory is searched through a private temporary copy.
`ServerStorage` (`server`) keeps versioned collections on a `chroma run` server. Both turn Chroma's
exceptions into `AssistantError`s that say what to do. What is in a collection is `collection`'s.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import chromadb
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import InternalError

from assistant.errors import (
    AssistantError,
    IndexCorruptError,
    IndexNotWritableError,
)
from assistant.index.builds import BuildDir, copy_database, hold_for_reading, release

log = logging.getLogger(__name__)


@dataclass
class Build:
    """A collection being written by a sync: `alive()` between batches keeps a builder's lease."""

    client: Any
    name: str
    alive: Callable[[], None] = field(default=lambda: None)


class Storage(Protocol):
    location: str

    def version(self) -> Hashable:
        """Changes when the data was replaced under open clients (cheap: called for every request)."""

    def serving(self, name: str) -> str:
        """The Chroma collection that holds index `name` now."""

    def open(self) -> Any | None:
        """A client on the current data, or None when nothing has been built yet."""

    def close(self, client: Any) -> None: ...

    def failure(self, exc: Exception) -> AssistantError | None:
        """What a Chroma exception means for the user (None: not a store problem)."""

    def locked(self) -> AbstractContextManager[None]:
        """Held for a whole sync, so two writers never build at once."""

    def writing(self, name: str, metadata: dict[str, Any], copy: bool, rebuild: bool) -> AbstractContextManager[Build]:
        """A `Build` of index `name` to write a sync into: starting from the current data if `copy`, from
        nothing if `rebuild`; switched in only when the block succeeds."""


class EmbeddedStorage:
    """Chroma's embedded store, one build of `index_dir` at a time."""

    def __init__(self, index_dir: Path) -> None:
        import chromadb.api.rust  # noqa: F401 - Chroma's native store loads here (~0.15 s), not in the first sync

        self.builds = BuildDir(index_dir)
        self.location = str(index_dir)
        self._copies: dict[int, tempfile.TemporaryDirectory[str]] = {}
        self._holds: dict[int, int | None] = {}  # client -> its build's reader lock

    def version(self) -> Hashable:
        return self.builds.version()

    def serving(self, name: str) -> str:
        return name  # a new build is a new directory: the collection keeps its name

    def open(self) -> Any | None:
        path = self.builds.current()
        return None if path is None else self._connect(path)

    def close(self, client: Any) -> None:
        client.close()  # the last client on a path stops Chroma's shared system for it
        release(self._holds.pop(id(client), None))
        copy = self._copies.pop(id(client), None)
        if copy is not None:
            copy.cleanup()

    def failure(self, exc: Exception) -> AssistantError | None:
        if isinstance(exc, (InternalError, sqlite3.DatabaseError, OSError)):
            return IndexCorruptError(
                f"cannot read the index at {self.location} ({exc}): run `assistant index --rebuild` to build it again"
            )
        return None

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self.builds.locked():
            self.builds.collect_garbage()  # e.g. the half-built directory of a killed run
            yield

    @contextmanager
    def writing(self, name: str, metadata: dict[str, Any], copy: bool, rebuild: bool) -> Iterator[Build]:
        """A client on a new build; the build is switched in if the block succeeds, removed if not."""
        store = self.builds.start(self.builds.current() if copy else None)
        switched = False
        try:
            client = _persistent_client(store)
            try:
                if rebuild and copy:  # the copy's other collections are kept; this one starts empty
                    _drop_collection(client, name)
                yield Build(client, name)
            finally:
                client.close()
            self.builds.switch(store)
            switched = True
        except (InternalError, sqlite3.Error, OSError) as exc:
            raise IndexNotWritableError(
                f"cannot write the index at {store} ({exc}): free disk space or fix the directory's "
                "permissions, then run `assistant index` again (the previous index is unchanged)"
            ) from exc
        finally:
            if not switched:
                shutil.rmtree(store.parent, ignore_errors=True)

    def _connect(self, path: Path) -> Any:
        hold = hold_for_reading(path)  # before opening: a clean-up from now on leaves this build alone
        try:
            client = _persistent_client(path)
            self._holds[id(client)] = hold
            return client
        except Exception as exc:
            release(hold)
            if "readonly" in str(exc).lower():
                return self._read_only_copy(path)
            raise IndexCorruptError(
                f"cannot open the index at {path} ({exc}): run `assistant index --rebuild` to build it again"
            ) from exc

    def _read_only_copy(self, path: Path) -> Any:
        """Chroma writes even to read: search a private copy of a build in a read-only directory."""
        copy = tempfile.TemporaryDirectory(prefix="assistant-index-")
        log.warning("%s is read-only: searching a temporary copy of it in %s", path, copy.name)
        try:
            copy_database(path, Path(copy.name) / "chroma")
            client = _persistent_client(Path(copy.name) / "chroma")
        except BaseException:
            copy.cleanup()
            raise
        self._copies[id(client)] = copy
        return client


def chroma_settings() -> Settings:
    """Chroma client settings for every client the index opens: no telemetry."""
    return _settings()


def is_missing(exc: Exception) -> bool:
    """chromadb raises NotFoundError for a missing collection (ValueError in older releases)."""
    return "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError"


def _settings() -> Settings:
    return Settings(anonymized_telemetry=False, allow_reset=False)


def _persistent_client(path: Path) -> Any:
    try:
        return chromadb.PersistentClient(path=str(path), settings=_settings())
    except Exception:
        # chromadb caches a system per path before starting it; a failed start stays cached and
        # would make the next open of this path fail with an unrelated AttributeError
        SharedSystemClient._identifier_to_system.pop(str(path), None)
        raise


def _drop_collection(client: Any, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception as exc:
        if not is_missing(exc):
            raise
