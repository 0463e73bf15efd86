"""The local chat model in a process of its own, started again when it dies.

llama.cpp is native code: a fault in it (an AMX kernel on some VMs, an out-of-memory kill, a bad build)
ends the process it runs in. So the model runs in a child process (`python -m assistant.models.worker`),
one per model file and context size, and `ModelProcess` talks to it over a socket pair: a request carries
the chat messages and sampling settings, the child streams back text pieces, then one last message with
the token counts. When the child dies, the call in flight ends with `ModelCrashedError` (HTTP: 503 with
Retry-After), a new child is started at once, and the next call waits for it to load. The page, the API
and Slack stay up, and quotes (which need no model) go on being answered meanwhile. The child's side is
`worker`.
"""

from __future__ import annotations

import atexit
import logging
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from assistant.errors import (
    AssistantError,
    ConfigurationError,
    ModelCrashedError,
    ModelTimeoutError,
    ModelUnavailableError,
)

log = logging.getLogger(__name__)

STALL_S = 60.0  # a child silent this long past its own timeout is hung: it is killed and started again
NO_TIMEOUT_STALL_S = 600.0  # the same for a call without a timeout
LOAD_S = 300.0  # a child that has not loaded the model by then is stuck (a stalled disk, memory thrashing)
ERRORS: dict[str, type[AssistantError]] = {
    cls.__name__: cls for cls in (ConfigurationError, ModelTimeoutError, ModelUnavailableError)
}


class ModelProcess:
    """One child process holding one model file; started on first use and again after it dies.

    `lock` lets one call run at a time (the child answers requests in order); `waiting` counts the callers
    queued for it. `pid` and `restarts` are for operators and tests.
    """

    def __init__(self, path: Path, n_ctx: int) -> None:
        self.path, self.n_ctx = path, n_ctx
        self.lock = threading.Lock()
        self.waiting = 0
        self.restarts = 0
        self.load_s = 5.0  # until measured: what a Retry-After promises
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._starting = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child and self._child.poll() is None else None

    def complete(self, request: dict[str, Any], timeout: float | None) -> Iterator[dict[str, Any]]:
        """Run one completion: {"text": ...} pieces, then {"done": True, ...token counts}. Call with `lock` held."""
        conn = self.ready()
        finished = False
        try:
            conn.send(request)
            while not finished:
                reply = self._receive(conn, timeout)
                if "error" in reply:
                    finished = True
                    raise ERRORS.get(reply["error"], ModelUnavailableError)(reply["message"])
                finished = bool(reply.get("done"))
                yield reply
        except (EOFError, OSError) as exc:
            finished = True
            raise self._crashed() from exc
        finally:
            if not finished:  # the caller stopped reading: stop the child's generation and drain it
                self._cancel(conn)

    def ready(self) -> Connection:
        """The connection to a loaded child, starting one (and waiting for its load) if none is running."""
        with self._starting:
            if self._conn is None or self._child is None or self._child.poll() is not None:
                self._start()
            assert self._conn is not None
            return self._conn

    def stop(self) -> None:
        """End the child (at exit, or before a restart)."""
        child, self._child, conn, self._conn = self._child, None, self._conn, None
        if conn is not None:
            conn.close()
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    def _start(self) -> None:
        self.stop()
        ours, theirs = socket.socketpair()
        # -P: the package as installed, never an `assistant/` in the directory the server was started from
        command = [sys.executable, "-P", "-m", "assistant.models.worker", "--fd", str(theirs.fileno())]
        command += ["--model", str(self.path), "--n-ctx", str(self.n_ctx)]
        started = time.perf_counter()
        self._child = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(ours.detach())
        try:
            if not self._conn.poll(LOAD_S):
                self.stop()
                raise ModelUnavailableError(
                    f"the chat model's process did not load {self.path.name} in {LOAD_S:.0f} s: is the machine "
                    "out of memory or its disk stalled? See the server log"
                )
            hello = self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._child.wait()
            self.stop()
            raise ModelUnavailableError(
                f"the chat model's process ended while loading ({describe_exit(code)}): see the server log; "
                "if it crashed, rebuild llama.cpp (`make llama`)"
            ) from exc
        if "error" in hello:
            self.stop()
            raise ERRORS.get(hello["error"], ModelUnavailableError)(hello["message"])
        self.load_s = time.perf_counter() - started
        log.info("chat model process %d loaded %s in %.1f s", self._child.pid, self.path.name, self.load_s)

    def _receive(self, conn: Connection, timeout: float | None) -> dict[str, Any]:
        limit = timeout + STALL_S if timeout else NO_TIMEOUT_STALL_S
        if not conn.poll(limit):
            log.error("the chat model process sent nothing for %.0f s: killing it", limit)
            self.stop()
            raise ModelTimeoutError(f"the chat model stopped responding for {limit:.0f} s; it is being restarted")
        reply: dict[str, Any] = conn.recv()
        return reply

    def _crashed(self) -> ModelCrashedError:
        """The error for the call in flight when the child died; a new child starts loading at once."""
        child, code = self._child, None
        if child is not None:
            try:
                code = child.wait(timeout=10)
            except subprocess.TimeoutExpired:  # its socket broke but it lives on: it is ended all the same
                child.kill()
                code = child.wait()
        self.restarts += 1
        log.error("the chat model process died (%s); starting it again", describe_exit(code))
        with self._starting:
            self.stop()
        threading.Thread(target=self._restart_quietly, name="model-restart", daemon=True).start()
        seconds = max(1, math.ceil(self.load_s))
        return ModelCrashedError(
            f"the chat model stopped while answering ({describe_exit(code)}) and is being restarted: "
            f"ask again in about {seconds} s (fast answers, which quote without the model, work meanwhile)",
            retry_after=seconds,
        )

    def _restart_quietly(self) -> None:
        try:
            self.ready()
        except AssistantError as exc:
            log.error("the chat model could not be started again: %s", exc)

    def _cancel(self, conn: Connection) -> None:
        try:
            conn.send({"op": "cancel"})
            while not ((reply := self._receive(conn, 1.0)).get("done") or "error" in reply):
                pass
        except (EOFError, OSError, AssistantError):
            with self._starting:
                self.stop()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


_processes: dict[tuple[str, int], ModelProcess] = {}
_processes_lock = threading.Lock()


def process_for(path: Path, n_ctx: int) -> ModelProcess:
    """The process serving `path` with a context of `n_ctx` tokens (one per pair, shared process-wide)."""
    key = (str(path.resolve()), n_ctx)
    with _processes_lock:
        if key not in _processes:
            _processes[key] = ModelProcess(path.resolve(), n_ctx)
        return _processes[key]


@atexit.register
def _stop_all() -> None:
    for process in list(_processes.values()):
        process.stop()
