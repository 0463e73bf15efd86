"""Storage: where an `Index` gets its Chroma client, and how it writes a new version of the data.

`EmbeddedStorage` opens a `PersistentClient` on the current build of an index directory (`builds`),
tells when another build has been switched in, and writes a sync into a copy that is switched in
only when the write succeeded; a read-only directory is searched through a private temporary copy.
`ServerStorage` talks to `chroma run` over HTTP and reconnects once the server is back. Both turn
Chroma's exceptions into `AssistantError`s that say what to do. Which collection to use is `collection`'s.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import chromadb
import httpx
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import InternalError

from assistant.errors import (
    AssistantError,
    ConfigurationError,
    IndexCorruptError,
    IndexNotWritableError,
    StoreUnavailableError,
)
from assistant.index.builds import BuildDir, copy_database

log = logging.getLogger(__name__)


class Storage(Protocol):
    location: str

    def version(self) -> Hashable:
        """Changes when the data was replaced under open clients (cheap: called for every request)."""

    def open(self) -> Any | None:
        """A client on the current data, or None when nothing has been built yet."""

    def close(self, client: Any) -> None: ...

    def failure(self, exc: Exception) -> AssistantError | None:
        """What a Chroma exception means for the user (None: not a store problem)."""

    def locked(self) -> AbstractContextManager[None]:
        """Held for a whole sync, so two writers never build at once."""

    def writing(self, copy: bool) -> AbstractContextManager[Any]:
        """A client to write a sync with (on a copy of the current data if `copy`)."""


def make_storage(index_dir: Path, chroma_url: str | None) -> Storage:
    """The server at `chroma_url` if given, else the embedded store in `index_dir`."""
    return ServerStorage(chroma_url) if chroma_url else EmbeddedStorage(index_dir)


class EmbeddedStorage:
    """Chroma's embedded store, one build of `index_dir` at a time."""

    def __init__(self, index_dir: Path) -> None:
        import chromadb.api.rust  # noqa: F401 - Chroma's native store loads here (~0.15 s), not in the first sync

        self.builds = BuildDir(index_dir)
        self.location = str(index_dir)
        self._copies: dict[int, tempfile.TemporaryDirectory[str]] = {}

    def version(self) -> Hashable:
        return self.builds.version()

    def open(self) -> Any | None:
        path = self.builds.current()
        return None if path is None else self._connect(path)

    def close(self, client: Any) -> None:
        client.close()  # the last client on a path stops Chroma's shared system for it
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
    def writing(self, copy: bool) -> Iterator[Any]:
        """A client on a new build; the build is switched in if the block succeeds, removed if not."""
        store = self.builds.start(self.builds.current() if copy else None)
        switched = False
        try:
            client = _persistent_client(store)
            try:
                yield client
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
        try:
            return _persistent_client(path)
        except Exception as exc:
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


class ServerStorage:
    """A Chroma server (`chroma run`); every failure drops the client, so the next call reconnects."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigurationError(f"ASSISTANT_CHROMA_URL {url!r} is not a URL like http://127.0.0.1:8000")
        self.location = url
        self.host = parsed.hostname
        self.ssl = parsed.scheme == "https"
        self.port = parsed.port or (443 if self.ssl else 8000)

    def version(self) -> Hashable:
        return self.location  # the server's data is changed in place, never swapped under a client

    def open(self) -> Any:
        try:
            return chromadb.HttpClient(host=self.host, port=self.port, ssl=self.ssl, settings=_settings())
        except Exception as exc:  # chromadb raises a plain ValueError when the heartbeat fails
            raise self._unavailable(exc) from exc

    def close(self, client: Any) -> None:
        client.close()

    def failure(self, exc: Exception) -> AssistantError | None:
        if isinstance(exc, (httpx.TransportError, ConnectionError)):
            return self._unavailable(exc)
        return None

    def locked(self) -> AbstractContextManager[None]:
        return nullcontext()  # the server serialises writes itself

    @contextmanager
    def writing(self, copy: bool) -> Iterator[Any]:
        client = self.open()
        try:
            yield client
        except Exception as exc:
            error = self.failure(exc)
            if error is None:
                raise
            raise error from exc
        finally:
            client.close()

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot reach the Chroma server at {self.location} ({exc}): start it with "
            f"`chroma run --path DIR --host {self.host} --port {self.port}`, or unset ASSISTANT_CHROMA_URL "
            "to use the embedded store"
        )
