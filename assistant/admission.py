"""Admission: one answer at a time per `Assistant`, in arrival order, for every interface.

`AnswerQueue` lets one job run while up to `size` wait (first come, first served); past that it refuses
at once with `Busy`, so an interface can say "busy, retry in N s" instead of piling requests up. It is
owned by the `Assistant`, so the page, the HTTP API and the Slack bot of one process share it. A
`Ticket` is waited for from a thread (`wait`, `hold`) or from an event loop (`wait_async`, `turn`).
How a refusal is shown (503, a chat message, a Slack reply) is each interface's.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress


class Busy(Exception):
    """The queue is full: `waiting` requests are already waiting; retry after `retry_after` seconds."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(f"busy: {waiting} requests are waiting; retry shortly")
        self.waiting = waiting
        self.retry_after = retry_after


class Ticket:
    """A place in an `AnswerQueue`: wait for its turn, `release()` when done (or given up)."""

    def __init__(self, queue: AnswerQueue) -> None:
        self._queue = queue
        self._turn = threading.Event()
        self._wakers: list[Callable[[], object]] = []  # event loops waiting on this ticket
        self.started = 0.0
        self.released = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it is this ticket's turn (True), or `timeout` seconds pass (False)."""
        return self._turn.wait(timeout)

    async def wait_async(self) -> None:
        """Wait on the running event loop until it is this ticket's turn."""
        loop = asyncio.get_running_loop()
        turn = asyncio.Event()
        with self._queue._lock:
            if self._turn.is_set():
                return
            self._wakers.append(lambda: loop.call_soon_threadsafe(turn.set))
        await turn.wait()

    def release(self) -> None:
        """Give the turn (or the place in line) to the next request; safe to call more than once."""
        self._queue._leave(self)

    def _grant(self, now: float) -> None:  # under the queue's lock
        self.started = now
        self._turn.set()
        for wake in self._wakers:
            with suppress(RuntimeError):  # that event loop has closed
                wake()
        self._wakers.clear()


class AnswerQueue:
    """One running job plus at most `size` waiting ones, served in the order they joined; thread-safe."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 0:
            raise ValueError(f"queue size must be 0 or more, not {size}")
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._running: Ticket | None = None
        self._waiting: deque[Ticket] = deque()
        self._seconds = 5.0  # moving average of how long a job holds its turn: the retry hint

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def join(self) -> Ticket:
        """A ticket, already holding the turn when nothing runs; `Busy` when the line is full."""
        with self._lock:
            if self._running is not None and len(self._waiting) >= self.size:
                raise Busy(len(self._waiting), max(1, math.ceil(self._seconds)))
            ticket = Ticket(self)
            if self._running is None:
                self._running = ticket
                ticket._grant(self._clock())
            else:
                self._waiting.append(ticket)
            return ticket

    def ahead(self, ticket: Ticket) -> int:
        """How many requests will be served before `ticket` (the running one included)."""
        with self._lock:
            if ticket is self._running or ticket.released:
                return 0
            return self._waiting.index(ticket) + 1

    @contextmanager
    def hold(self) -> Iterator[Ticket]:
        """From a thread: wait for a turn (`Busy` at once when the line is full), hold it inside the block."""
        ticket = self.join()
        try:
            ticket.wait()
            yield ticket
        finally:
            ticket.release()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """From an event loop: as `hold`, without blocking the loop."""
        ticket = self.join()
        try:
            await ticket.wait_async()
            yield
        finally:
            ticket.release()

    def _leave(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            if ticket is self._running:
                now = self._clock()
                self._seconds = 0.7 * self._seconds + 0.3 * (now - ticket.started)
                self._running = None
                if self._waiting:
                    self._running = self._waiting.popleft()
                    self._running._grant(now)
            else:  # gave up while waiting (client gone, cancelled)
                with suppress(ValueError):
                    self._waiting.remove(ticket)
