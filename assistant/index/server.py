"""A Chroma server as an index's storage: versioned collections, a pointer, and a lease for builders.

Chroma has no alias, so an index `name` on a server is a series of collections `name--v1`, `name--v2`…
and one small pointer collection `name--pointer` whose one record names the version being served.
`assistant index` builds the next version aside (starting from a copy of the current records, so
unchanged chunks are not embedded again) and switches the pointer when the build is complete; every
replica reads the pointer at most once a second, so it serves the new version within seconds and
never a half-written one. The version before the current one is kept for requests still on it;
older ones are deleted. Creating `name--vN` is the lease: Chroma refuses a second collection of that
name, so two builders cannot build the same version; a builder's heartbeat (collection metadata)
tells a live one from a killed one. A collection `name` from before versioning is served as version 0.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from urllib.parse import urlparse

import chromadb
import httpx

from assistant.errors import AssistantError, ConfigurationError, IndexBusyError, StoreUnavailableError
from assistant.index.storage import Build, chroma_settings, is_missing

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds a replica trusts the pointer it read
LEASE_SECONDS = 60.0  # a build whose heartbeat is older is taken for a killed builder's
COPY_PAGE = 1000  # records per request when copying the current version
BACKOFF = (0.25, 5.0)  # seconds before the first retry of an unreachable server, and the most it grows to
HNSW = {"hnsw": {"space": "cosine"}}


class ServerStorage:
    """Collections of one index on a `chroma run` server; every failure drops the client (reconnects)."""

    def __init__(self, url: str, collection: str, check_every: float = CHECK_EVERY, lease: float = LEASE_SECONDS):
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigurationError(f"ASSISTANT_CHROMA_URL {url!r} is not a URL like http://127.0.0.1:8000")
        self.location = url
        self.host = parsed.hostname
        self.ssl = parsed.scheme == "https"
        self.port = parsed.port or (443 if self.ssl else 8000)
        self.collection = collection
        self.check_every = check_every
        self.lease = lease
        self._pointer_client: Any = None
        self._served: tuple[str, int] | None = None
        self._read_at = -1e9
        self._lock = threading.Lock()
        self._down_until = 0.0  # while unreachable: no connection is tried before this (monotonic) time
        self._failures = 0  # in a row: the wait doubles with each
        self._last_error: Exception | None = None

    # -- reading ---------------------------------------------------------------------------------

    def version(self) -> Hashable:
        return self._current()

    def serving(self, name: str) -> str:
        """The collection that serves index `name` now."""
        return self._current()[0] if name == self.collection else name

    def open(self) -> Any:
        """A client on the server. While it is unreachable, connecting is retried with exponential backoff
        (`BACKOFF`); until the next try every request fails at once, saying when to retry."""
        wait = self._down_until - time.monotonic()
        if wait > 0:
            raise self._unavailable(self._last_error, wait)
        try:
            client = chromadb.HttpClient(host=self.host, port=self.port, ssl=self.ssl, settings=chroma_settings())
        except Exception as exc:  # chromadb raises a plain ValueError when the heartbeat fails
            raise self._unavailable(exc, self._back_off(exc)) from exc
        if self._failures:
            log.warning("the Chroma server at %s answers again (after %d failed tries)", self.location, self._failures)
        self._failures, self._down_until = 0, 0.0
        return client

    def close(self, client: Any) -> None:
        client.close()

    def failure(self, exc: Exception) -> AssistantError | None:
        if isinstance(exc, (httpx.TransportError, ConnectionError)):
            wait = self._down_until - time.monotonic()  # requests failing together count as one failure
            return self._unavailable(exc, wait if wait > 0 else self._back_off(exc))
        return None

    def _back_off(self, exc: Exception) -> float:
        """Note a failed attempt; the seconds before the next one."""
        first, most = BACKOFF
        delay = min(most, first * 2**self._failures)
        self._failures += 1
        self._down_until, self._last_error = time.monotonic() + delay, exc
        return delay

    def _current(self) -> tuple[str, int]:
        """(collection, version) the pointer names, read at most once per `check_every` seconds."""
        with self._lock:
            if self._served is None or time.monotonic() - self._read_at >= self.check_every:
                try:
                    self._pointer_client = self._pointer_client or self.open()
                    self._served = read_pointer(self._pointer_client, self.collection)
                except Exception as exc:  # unreachable: searching says so, with what to do
                    self._pointer_client = None
                    if self._served is None:
                        return self.collection, -1
                    log.warning("cannot read the index pointer (%s): serving %s", exc, self._served[0])
                self._read_at = time.monotonic()
            return self._served

    # -- writing ---------------------------------------------------------------------------------

    def locked(self) -> AbstractContextManager[None]:
        return nullcontext()  # the lease is taken by `writing`, when the build's collection is created

    @contextmanager
    def writing(self, name: str, metadata: dict[str, Any], copy: bool, rebuild: bool) -> Iterator[Build]:
        """A new version of index `name` to write (a copy of the current records unless `rebuild`),
        switched in when the block succeeds and deleted when it fails."""
        client = self.open()
        try:
            current, number = read_pointer(client, name)
            target, lease = self._claim(client, name, number, metadata)
            try:
                if copy and not rebuild:
                    copy_records(client, current, target, lease.renew)
                yield Build(client, target, lease.renew)
                if read_pointer(client, name) != (current, number):  # another builder switched meanwhile
                    raise IndexBusyError(f"another `assistant index` switched {name!r} during this build: run it again")
                client.get_collection(target).modify(metadata=metadata)  # finished: no longer a lease
                write_pointer(client, name, target, int(target.rsplit("--v", 1)[1]))
            except BaseException:
                try:
                    switched = read_pointer(client, name)[0] == target  # the write may have landed
                except Exception:
                    switched = False
                if not switched:
                    _delete(client, target)
                raise
            log.info("switched %s to %s (was %s)", name, target, current)
            with self._lock:
                self._served, self._read_at = None, -1e9
            self._collect_garbage(client, name, keep={target, current})
        except AssistantError:
            raise
        except Exception as exc:
            raise self.failure(exc) or exc from exc
        finally:
            client.close()

    def _claim(self, client: Any, name: str, number: int, metadata: dict[str, Any]) -> tuple[str, _Lease]:
        """Create the next version's collection (the lease), or `IndexBusyError` while another builder is live."""
        builds = versions(client, name)
        for n, meta in builds.items():
            if n > number and self._live_build(meta):
                raise IndexBusyError(
                    f"another `assistant index` ({meta['building']}) is building version {n} of {name!r} on "
                    f"{self.location}: wait for it to finish (a killed one is given up after {self.lease:.0f} s)"
                )
        target = f"{name}--v{max([number, *builds]) + 1}"
        builder = f"{socket.gethostname()}/{uuid.uuid4().hex[:8]}"
        lease = _Lease(client, target, {**metadata, "building": builder}, self.lease)
        try:
            client.create_collection(target, metadata=lease.metadata(), configuration=HNSW, embedding_function=None)
        except Exception as exc:
            if "already exists" in str(exc).lower() or type(exc).__name__ == "UniqueConstraintError":
                raise IndexBusyError(f"another `assistant index` just started building {target}: try again") from exc
            raise
        return target, lease

    def _collect_garbage(self, client: Any, name: str, keep: set[str]) -> None:
        """Delete versions older than the ones kept, and builds whose builder stopped beating."""
        for n, meta in versions(client, name).items():
            collection = f"{name}--v{n}" if n else name
            if collection not in keep and not self._live_build(meta):
                log.info("removing old index version %s", collection)
                _delete(client, collection)

    def _live_build(self, meta: dict[str, Any]) -> bool:
        """A version still being built by a builder whose heartbeat is within the lease."""
        return bool(meta.get("building")) and time.time() - float(meta.get("heartbeat", 0)) < self.lease

    def _unavailable(self, exc: Exception | None, retry_after: float = 0.0) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot reach the Chroma server at {self.location} ({exc}): start it with "
            f"`chroma run --path DIR --host {self.host} --port {self.port}`, or unset ASSISTANT_CHROMA_URL "
            f"to use the embedded store (next try in {retry_after:.1f} s)",
            retry_after,
        )


class _Lease:
    """The build's heartbeat in its collection's metadata, renewed at most every quarter lease."""

    def __init__(self, client: Any, collection: str, metadata: dict[str, Any], seconds: float) -> None:
        self.client, self.collection, self._metadata, self.seconds = client, collection, metadata, seconds
        self._beat = time.time()

    def metadata(self) -> dict[str, Any]:
        return {**self._metadata, "heartbeat": self._beat}

    def renew(self) -> None:
        if time.time() - self._beat >= self.seconds / 4:
            self._beat = time.time()
            self.client.get_collection(self.collection).modify(metadata=self.metadata())


def read_pointer(client: Any, name: str) -> tuple[str, int]:
    """(collection, version) serving index `name`: the pointer's record, else `name` itself (version 0)."""
    try:
        got = client.get_collection(f"{name}--pointer").get(ids=["current"], include=["metadatas"])
    except Exception as exc:
        if is_missing(exc):
            return name, 0
        raise
    if not got["metadatas"]:
        return name, 0
    meta = got["metadatas"][0]
    return str(meta["current"]), int(meta["version"])


def write_pointer(client: Any, name: str, collection: str, version: int) -> None:
    """Point index `name` at `collection` (one record, every key written: Chroma merges metadata)."""
    pointer = client.get_or_create_collection(f"{name}--pointer", embedding_function=None)
    pointer.upsert(ids=["current"], embeddings=[[0.0]], metadatas=[{"current": collection, "version": version}])


def versions(client: Any, name: str) -> dict[int, dict[str, Any]]:
    """Version number -> metadata of every collection of index `name` (0: the unversioned one)."""
    pattern = re.compile(rf"{re.escape(name)}(?:--v(\d+))?")
    found = {}
    for collection in client.list_collections():
        if m := pattern.fullmatch(collection.name):
            found[int(m.group(1) or 0)] = dict(collection.metadata or {})
    return found


def copy_records(client: Any, source: str, target: str, alive: Callable[[], None] = lambda: None) -> None:
    """Every record of `source` (vectors included) into `target`, a page at a time."""
    try:
        src = client.get_collection(source)
    except Exception as exc:
        if is_missing(exc):
            return
        raise
    dst = client.get_collection(target)
    for offset in range(0, src.count(), COPY_PAGE):
        page = src.get(limit=COPY_PAGE, offset=offset, include=["embeddings", "documents", "metadatas"])
        if page["ids"]:
            records = {k: page[k] for k in ("ids", "embeddings", "documents", "metadatas")}
            dst.add(**records)
            alive()


def _delete(client: Any, collection: str) -> None:
    try:
        client.delete_collection(collection)
    except Exception as exc:
        if not is_missing(exc):
            log.warning("could not delete %s: %s", collection, exc)
