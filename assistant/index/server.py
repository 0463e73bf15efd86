"""A Chroma server as an index's storage: versioned collections, and a lease for builders.

Chroma has no alias, so an index `name` on a server is a series of collections `name--v1`, `name--v2`…
The version served is the newest *finished* one: a build is written into a new collection marked as
building, and switches itself in by clearing that mark when it is complete. Versions therefore only move
forward: no builder, however late, can put an older version back, and a half-written one is never served.
Every replica reads the versions at most once a second, so it serves a new version within seconds.
`assistant index` builds the next version aside, starting from a copy of the newest finished one (so
unchanged chunks are not embedded again) and planning its changes from that copy. Creating `name--vN` is
the lease: Chroma refuses a second collection of that name. A heartbeat thread keeps the builder's
timestamp fresh in the collection's metadata while it works, so a long embedding call never loses the
lease; a builder whose heartbeat stopped for the lease's length is taken for dead, a newer version may be
claimed over it, and when it resumes it finds the newer claim and gives up instead of finishing (the
fencing token is the version number). Clean-up never deletes the version served or the one before it.
A collection `name` from before versioning is served as version 0.
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
        """(collection, version) served now (the newest finished version), read at most once per `check_every` s."""
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
        """A new version of index `name` to write (a copy of the newest finished one unless `rebuild`),
        switched in when the block succeeds (unless a newer version was claimed over it meanwhile) and
        deleted when it fails."""
        client = self.open()
        try:
            current, number = read_pointer(client, name)
            target, lease = self._claim(client, name, number, metadata)
            finished = False
            try:
                with lease.beating(self.open):
                    if copy and not rebuild:
                        copy_records(client, current, target, lease.renew)
                    yield Build(client, target, lease.renew)
                mine = int(target.rsplit("--v", 1)[1])
                if newer := [n for n in versions(client, name) if n > mine]:
                    raise IndexBusyError(
                        f"this build of {name!r} stalled past its lease and version {max(newer)} was started over "
                        "it: it is not switched in; run `assistant index` again if that one did not finish"
                    )
                lease.finish(lambda: client.get_collection(target).modify(metadata=metadata))  # the newest
                finished = True  # finished version serves: this one, now
            except BaseException:
                if not finished:
                    _delete(client, target)
                raise
            log.info("switched %s to %s (was %s)", name, target, current)
            with self._lock:
                self._served, self._read_at = None, -1e9
            self._collect_garbage(client, name)
        except AssistantError:
            raise
        except Exception as exc:
            if is_missing(exc):  # its collection was removed: the build was taken for dead and given up
                raise IndexBusyError(
                    f"this build of {name!r} stalled past its lease and was given up (its version removed): "
                    "run `assistant index` again"
                ) from exc
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

    def _collect_garbage(self, client: Any, name: str) -> None:
        """Delete finished versions older than the two newest (the one served and the one before it, for
        requests still on it) and builds whose builder stopped beating; never a live build."""
        found = versions(client, name)
        finished = sorted((n for n, meta in found.items() if not meta.get("building")), reverse=True)
        keep = set(finished[:2])
        for n, meta in found.items():
            if n not in keep and not self._live_build(meta):
                collection = f"{name}--v{n}" if n else name
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
    """The build's heartbeat in its collection's metadata: renewed at most every quarter lease by the writes
    (`renew`) and, while the build runs, by a thread of its own on its own client (`beating`), so a long
    embedding call between two writes does not let the lease run out."""

    def __init__(self, client: Any, collection: str, metadata: dict[str, Any], seconds: float) -> None:
        self.client, self.collection, self._metadata, self.seconds = client, collection, metadata, seconds
        self._beat = time.time()
        self._lock = threading.Lock()
        self._finished = False

    def metadata(self) -> dict[str, Any]:
        return {**self._metadata, "heartbeat": self._beat}

    def finish(self, mark: Callable[[], None]) -> None:
        """`mark` the build finished, after any renewal in flight and with none after it (a late heartbeat
        would put the building mark back)."""
        with self._lock:
            mark()
            self._finished = True

    def renew(self, client: Any = None) -> None:
        with self._lock:
            if self._finished:
                return
            if time.time() - self._beat >= self.seconds / 4:
                self._beat = time.time()
                (client or self.client).get_collection(self.collection).modify(metadata=self.metadata())

    @contextmanager
    def beating(self, connect: Callable[[], Any]) -> Iterator[None]:
        """Renew the lease from a thread while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            client = None
            try:
                while not stop.wait(self.seconds / 8):
                    try:
                        client = client or connect()
                        self.renew(client)
                    except Exception as exc:  # the server is away: the writes will fail and say so
                        log.warning("could not renew the build's lease: %s", exc)
                        client = None
            finally:
                if client is not None:
                    client.close()

        thread = threading.Thread(target=beat, name="index-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(10)


def read_pointer(client: Any, name: str) -> tuple[str, int]:
    """(collection, version) serving index `name`: its newest finished version, else `name` itself (version 0).
    A build in progress is marked `building` in its metadata until it is complete."""
    finished = [n for n, meta in versions(client, name).items() if not meta.get("building")]
    if not finished:
        return name, 0
    newest = max(finished)
    return (f"{name}--v{newest}" if newest else name), newest


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
