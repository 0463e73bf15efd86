"""A pytest plugin that swaps in a broken `Answerer`, to measure whether the tests notice (issue 29).

Registered by conftest.py only when ASSISTANT_BROKEN_ANSWERER is set:

- `refuse`: every question is refused, with the real refusal text for its language and reason "not_covered";
- `answer`: every question is answered with one fixed made-up claim citing the top retrieved passage;
- `real`: the real `Answerer`, only recorded (which tests touch answers, and fail even so).

Inputs are still checked (a bad question is still an `InputError`): only the answering is broken. The
plugin records the tests that called the patched `Answerer.stream` (they "touch answers"), also from
`python -m assistant` processes they start (through a `sitecustomize` on PYTHONPATH that patches the
module when it is imported there and appends the running test's id, from PYTEST_CURRENT_TEST, to a log),
and writes {mode, touched, failed} as JSON to ASSISTANT_BROKEN_REPORT at the end of the session.
`bench/broken_answerer.py` runs the fast suite under each mode and reads that file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MODE_ENV = "ASSISTANT_BROKEN_ANSWERER"
REPORT_ENV = "ASSISTANT_BROKEN_REPORT"
LOG_ENV = "ASSISTANT_BROKEN_TOUCH_LOG"  # where processes started by a test append its id when they answer
MODES = ("refuse", "answer", "real")
MADE_UP_ZH = "阶跃星辰由张三于 1999 年在杭州创立。"  # nowhere in the article
MADE_UP_EN = "StepFun was founded in Hangzhou in 1999 by Zhang San."

_touched: set[str] = set()
_current: str | None = None
_lock = threading.Lock()


def _record() -> None:
    """Note the running test as one that touches answers (this process's, or the parent's from the env)."""
    test = _current or os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0] or None
    if test is None:
        return
    with _lock:
        if _current is not None:
            _touched.add(test)
        elif log := os.environ.get(LOG_ENV):
            with open(log, "a", encoding="utf-8") as f:
                f.write(test + "\n")


def broken_stream(mode: str) -> Any:
    """The replacement for `Answerer.stream` in `mode`."""
    from assistant.answering import prompts
    from assistant.checks.decide import NOT_COVERED
    from assistant.checks.inputs import check_history, check_question
    from assistant.text import is_english
    from assistant.types import Answer, Citation

    def stream(
        self: Any, question: str, history: Sequence[str] = (), *, fast: bool = False, max_tokens: int | None = None
    ) -> Iterator[Any]:
        question, history = check_question(question), check_history(history)
        _record()  # after the input checks: a question refused as input gets no answer to be wrong
        english = is_english(question)
        hits = self.retriever.search(question, k=max(5, self.settings.passages), history=list(history))
        cited = [
            Citation.of(n, h.chunk, h.chunk.text.split("。")[0], self.locate(h.chunk.source))
            for n, h in enumerate(hits[: self.settings.passages], 1)
        ]
        timings = {"retrieve_s": 0.0, "total_s": 0.0}
        if mode == "refuse":
            text = prompts.REFUSAL_EN if english else prompts.REFUSAL_ZH
            detail = "broken answerer: refuses everything"
            yield Answer.refusal(
                question, text, reason=NOT_COVERED, detail=detail, timings=timings, models=self.models, related=cited
            )
            return
        claim = MADE_UP_EN if english else MADE_UP_ZH
        yield Answer.answered(question, f"{claim}[1]", cited[:1], timings=timings, models=self.models)

    return stream


def recorded(real: Any) -> Any:
    """`real` (the Answerer's own stream), noting the test once the question passed the input checks."""

    def stream(self: Any, question: str, *args: Any, **kw: Any) -> Iterator[Any]:
        events = real(self, question, *args, **kw)
        try:
            first = next(events, None)  # the input checks passed
            if first is None:
                return
            _record()
            yield first
            yield from events
        finally:
            events.close()

    return stream


def patch(mode: str) -> None:
    from assistant.answering.answer import Answerer

    if not getattr(Answerer.stream, "broken", False):
        stream = recorded(Answerer.stream) if mode == "real" else broken_stream(mode)
        stream.broken = True  # type: ignore[attr-defined]
        Answerer.stream = stream  # type: ignore[method-assign]


SITECUSTOMIZE = """\
# written by tests/broken_answerer.py: patch assistant.answering.answer when this process imports it
import importlib.abc, importlib.machinery, importlib.util, os, sys

class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "assistant.answering.answer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            plugin = importlib.util.spec_from_file_location("broken_answerer", {plugin!r})
            broken = importlib.util.module_from_spec(plugin)
            plugin.loader.exec_module(broken)
            broken.patch(os.environ[broken.MODE_ENV])

        spec.loader.exec_module = exec_module
        return spec

if os.environ.get("ASSISTANT_BROKEN_ANSWERER") in ("refuse", "answer", "real"):
    sys.meta_path.insert(0, _Hook())
"""


class BrokenAnswerer:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.failed: set[str] = set()
        self.shim = Path(tempfile.mkdtemp(prefix="broken-answerer-"))
        self.log = self.shim / "touched.log"

    def pytest_configure(self) -> None:
        patch(self.mode)
        (self.shim / "sitecustomize.py").write_text(SITECUSTOMIZE.format(plugin=str(Path(__file__).resolve())))
        paths = [str(self.shim), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
        os.environ[LOG_ENV] = str(self.log)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        global _current
        _current = nodeid

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        global _current
        _current = None

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed:
            self.failed.add(report.nodeid)

    def pytest_sessionfinish(self) -> None:
        touched = set(_touched)
        if self.log.exists():
            touched |= {line for line in self.log.read_text(encoding="utf-8").splitlines() if line}
        result = {"mode": self.mode, "touched": sorted(touched), "failed": sorted(touched & self.failed)}
        if out := os.environ.get(REPORT_ENV):
            Path(out).write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(self.shim, ignore_errors=True)


def register(config: Any) -> None:
    """Called from conftest.py: does nothing unless ASSISTANT_BROKEN_ANSWERER names a mode."""
    mode = os.environ.get(MODE_ENV, "")
    if not mode:
        return
    if mode not in MODES:
        sys.exit(f"{MODE_ENV} must be one of {', '.join(MODES)}, not {mode!r}")
    config.pluginmanager.register(BrokenAnswerer(mode), "broken_answerer")
