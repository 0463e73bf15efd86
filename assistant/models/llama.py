"""The local chat model: a GGUF run by llama-cpp-python behind LangChain's `BaseChatModel`.

`LlamaCppChat` streams one chunk per token, reports token usage (with the prompt's cached start as
`cache_read`), bounds a call by a timeout counted from when the model starts on it, and picks how
many cores to generate on. The model itself runs in a supervised child process (`model_process`), so a
crash of llama.cpp costs the call in flight, not the server; the file is `model_file`'s, loading it
`model_load`'s; choosing a chat model by name is `llm`'s.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, ChatMessage, UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from assistant.models import model_file, model_process

log = logging.getLogger(__name__)

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class LlamaCppChat(BaseChatModel):
    """A GGUF chat model run by llama-cpp-python in a child process; streams one chunk per token.

    The file (the packaged model when `model_path` is None) is loaded on first use by one child process
    per file, shared process-wide; one generation runs at a time in it. `instance` picks a llama.cpp
    context of its own over the same weights (a cache of its own last prompt). `timeout` bounds a call from when
    the model starts on it (not the load, nor the wait for another call). Token generation uses every
    core when no other call is waiting for the model (24 against 18 tokens/s on 2 idle cores), else one
    fewer: with every core, llama.cpp's threads spin-wait on each other, and a busy neighbour cuts
    generation to 1-3 tokens/s. llama.cpp's prompt-lookup speculative decoding was measured here and
    left out: 7 against 24 tokens/s (it needs logits for every prompt token; `bench/generation.py`).
    """

    model_path: str | None = None
    temperature: float = 0.0
    max_tokens: int | None = 512
    stop: list[str] | None = None
    timeout: float | None = 120.0
    n_ctx: int = 4096
    n_threads: int | None = None  # generation; default: every core, or one fewer while another call waits
    n_threads_batch: int | None = None  # prompt evaluation; default: all cores
    repeat_penalty: float = 1.0
    instance: int = 0  # another number: a separate instance of the model (e.g. to compare settings side by side)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-chat"

    @property
    def model_name(self) -> str:
        return Path(self.model_path).stem if self.model_path else model_file.MODEL_NAME

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="llama-cpp",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
        )
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stop := stop or self.stop:
            params["ls_stop"] = stop
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model = self._model()
        with _counted(model):
            model.lock.acquire()  # callers queue before this (one admission queue); waiting is not timed
        try:
            model.ready()  # starting the process and loading the file are not counted against the timeout
            cores = os.cpu_count() or 1
            threads = self.n_threads or (cores if not model.waiting else max(1, cores - 1))
            request = {
                "op": "complete",
                "context": self.instance,
                "messages": [_as_dict(m) for m in messages],
                "stop": [*(self.stop or []), *(stop or [])],
                "temperature": kwargs.get("temperature", self.temperature),
                "max_tokens": kwargs.get("max_tokens", self.max_tokens),
                "repeat_penalty": self.repeat_penalty,
                "threads": (threads, self.n_threads_batch or cores),
                "timeout": self.timeout,
            }
            for reply in model.complete(request, self.timeout):
                if "text" in reply:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=reply["text"]))
                    if run_manager:
                        run_manager.on_llm_new_token(reply["text"], chunk=chunk)
                    yield chunk
                else:
                    yield self._last_chunk(reply)
        finally:
            model.lock.release()

    def choose(self, messages: list[BaseMessage], options: list[str]) -> dict[str, float]:
        """The log-probability of each option as the first token of the model's reply to `messages` (e.g.
        {"是": -0.1, "否": -2.4} after a yes/no check): the prompt evaluated once, nothing generated. On the
        same context as this model's answers, a prompt that extends the last one pays only for what it adds."""
        model = self._model()
        with _counted(model):
            model.lock.acquire()
        try:
            model.ready()
            cores = os.cpu_count() or 1
            request = {
                "op": "choose",
                "context": self.instance,
                "messages": [_as_dict(m) for m in messages],
                "options": list(options),
                "threads": (self.n_threads or cores, self.n_threads_batch or cores),
            }
            *_, done = model.complete(request, self.timeout)
            return dict(done["logprobs"])
        finally:
            model.lock.release()

    def _last_chunk(self, done: dict[str, Any]) -> ChatGenerationChunk:
        prompt_tokens, output_tokens = int(done["prompt_tokens"]), int(done["output_tokens"])
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=output_tokens,
            total_tokens=prompt_tokens + output_tokens,
            input_token_details={"cache_read": int(done["cached"])},  # the prompt's start llama.cpp kept
        )
        message = AIMessageChunk(
            content="",
            chunk_position="last",
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "model_provider": "llama-cpp",
                "finish_reason": done["finish_reason"],
            },
        )
        return ChatGenerationChunk(message=message)

    def _model(self) -> model_process.ModelProcess:
        path = Path(self.model_path).expanduser() if self.model_path else model_file.packaged_model_path()
        if not path.is_file():
            raise model_file.no_file_error(path)
        return model_process.process_for(path, self.n_ctx)


@contextmanager
def _counted(model: model_process.ModelProcess) -> Iterator[None]:
    """Count the caller among those waiting for `model` while the block runs."""
    with _waiting_lock:
        model.waiting += 1
    try:
        yield
    finally:
        with _waiting_lock:
            model.waiting -= 1


_waiting_lock = threading.Lock()


def _as_dict(message: BaseMessage) -> dict[str, str]:
    role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type, "user")
    return {"role": role, "content": message.text}
