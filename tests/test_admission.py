"""The answer queue every interface shares: one answer at a time, in arrival order, from threads and
event loops alike, and a full line turned away at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from assistant.admission import AnswerQueue, Busy


def test_threads_and_event_loops_take_their_turns_in_arrival_order():
    queue = AnswerQueue(size=4)
    order: list[str] = []
    running = threading.Lock()

    def job(name: str) -> None:
        assert running.acquire(blocking=False), "two jobs held the turn at once"
        order.append(name)
        time.sleep(0.05)
        running.release()

    def in_thread(name: str) -> None:
        with queue.hold():
            job(name)

    async def in_loop(name: str) -> None:
        async with queue.turn():
            job(name)

    first = queue.join()  # holds the turn while the others line up
    workers = []
    for name in ("thread-1", "loop-1", "thread-2", "loop-2"):
        target = (lambda n=name: asyncio.run(in_loop(n))) if name.startswith("loop") else (lambda n=name: in_thread(n))
        workers.append(threading.Thread(target=target))
        workers[-1].start()
        deadline = time.monotonic() + 5
        while queue.waiting < len(workers):  # joined before the next one starts
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert queue.ahead(queue._waiting[-1]) == 4
    first.release()
    for w in workers:
        w.join(10)
    assert order == ["thread-1", "loop-1", "thread-2", "loop-2"]
    assert not queue.busy and queue.waiting == 0


def test_a_full_line_is_turned_away_at_once_and_a_place_given_up_is_freed():
    queue = AnswerQueue(size=1)
    running, waiting = queue.join(), queue.join()
    with pytest.raises(Busy) as busy:
        queue.join()
    assert busy.value.waiting == 1 and busy.value.retry_after >= 1
    waiting.release()  # gave up before its turn
    third = queue.join()
    running.release()
    assert third.wait(timeout=1) and queue.ahead(third) == 0
    third.release()
    third.release()  # twice is harmless
    assert not queue.busy
