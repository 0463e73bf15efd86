"""Isolated: a PDF's or Word file's text extracted in a child process, under limits on its CPU time, memory and
wall time.

The parsers' work grows with what a file says, not with its size: a page that draws one content stream a
thousand times, a Word table python-docx walks in quadratic time, a cell that claims to span two billion
columns. In a child, such a file costs at most the limits (then it is refused, saying which), and whatever memory
it took goes back when the child ends. Input: the kind and the bytes; output: the text and the metadata
reader found (a function named as "module:function", so this module imports none of its callers), or a
`CorpusError`. What is extracted, and how, is the reader's (`convert.extract`).
"""

from __future__ import annotations

import importlib
import json
import logging
import resource
import signal
import subprocess
import sys
from pathlib import Path

from assistant.errors import CorpusError

log = logging.getLogger(__name__)

# CPU seconds per kind: far above what real files take (a 100-page PDF: 0.3 s; a Word file at its element limits
# in `convert`: about 10 s), far below the minute a hostile one took in the server before.
CPU_SECONDS = {"pdf": 60, "docx": 30}
WALL_SECONDS = 120  # a child waiting on nothing (it reads only its input) is stopped too
MEMORY_BYTES = 2_000_000_000  # address space: python-docx at the element limits needs about 500 MB
_ROOT = str(Path(__file__).resolve().parents[2])  # where the `assistant` package is, for the child to import it
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from assistant.corpus.isolated import main; main()"


def in_child(reader: str, kind: str, data: bytes, what: str) -> tuple[str, dict[str, str]]:
    """`reader(kind, data)`'s text and metadata (`reader`: "module:function", returning an object with `text` and
    `meta`), computed in a child process under the limits; a `CorpusError` saying why not (`what` names the kind in
    it: "a PDF")."""
    cpu = CPU_SECONDS[kind]
    command = [sys.executable, "-I", "-c", _CHILD, _ROOT, reader, kind, str(cpu), str(MEMORY_BYTES)]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=WALL_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise CorpusError(f"reading it took over {WALL_SECONDS} s: split it into parts, or save it as text") from None
    except OSError as exc:  # no process could be started (out of memory, no more processes)
        raise CorpusError(f"cannot start a process to read it ({exc.strerror or exc}): try again later") from None
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # past the soft limit, then the hard one
        raise CorpusError(
            f"reading it took over {cpu} s of CPU time (the limit for {what}): split it into parts, or save it as text"
        )
    try:
        result = json.loads(done.stdout)
    except ValueError:
        log.info("the child reading %s ended with %s: %s", what, done.returncode, done.stderr[-2000:])
        raise CorpusError(
            f"cannot be read as {what} (its reader stopped with exit status {done.returncode}): check the file"
        ) from None
    if result.get("memory"):
        raise CorpusError(
            f"reading it needed over {MEMORY_BYTES // 1_000_000:,} MB of memory: split it into parts, or save it "
            "as text"
        )
    if "refused" in result:
        raise CorpusError(result["refused"])
    if "failed" in result:
        raise CorpusError(f"cannot be read as {what} ({result['failed']})")
    return result["text"], result["meta"]


def main() -> None:
    """The child: limits set first, then the reader, kind and limits from argv, the bytes from stdin, one JSON object
    to stdout (text and meta, or why not)."""
    reader, kind, cpu, memory = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))  # SIGXCPU at the soft limit, SIGKILL at the hard one
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    data = sys.stdin.buffer.read()
    result: dict[str, object]
    try:
        module, _, function = reader.partition(":")
        converted = getattr(importlib.import_module(module), function)(kind, data)
        result = {"text": converted.text, "meta": converted.meta}
    except CorpusError as exc:
        result = {"refused": str(exc)}
    except MemoryError:
        result = {"memory": True}
    except Exception as exc:  # a damaged file makes the parsers raise anything
        result = {"failed": f"{type(exc).__name__}: {exc}"}
    sys.stdout.buffer.write(json.dumps(result, ensure_ascii=False).encode("utf-8"))  # whatever the locale
