"""Loading a GGUF model file into llama.cpp, in the model's process (`worker`).

`load()` keeps one llama.cpp model per file and settings in memory for the whole process; `twin()` opens
another context over the same weights (a cache of its own, not a second copy of the file). Generating
text from it is `worker`'s; where the file comes from is `model_file`'s.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError, ModelUnavailableError
from assistant.models.model_file import LLAMA_PIP, no_file_error

log = logging.getLogger(__name__)

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
