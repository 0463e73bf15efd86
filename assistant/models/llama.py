"""The local chat model: a GGUF run in process by llama-cpp-python behind LangChain's `BaseChatModel`.

`LlamaCppChat` streams one chunk per token, reports token usage (with the prompt's cached start as
`cache_read`), bounds a call by a timeout counted from when the model starts on it, and picks how
many cores to generate on. Loading the file (and sharing it process-wide) is `model_file`'s; choosing
a chat model by name is `llm`'s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, ChatMessage, UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from assistant.errors import ConfigurationError, ModelTimeoutError
from assistant.models import model_file

log = logging.getLogger(__name__)

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class LlamaCppChat(BaseChatModel):
    """A GGUF chat model run in process by llama-cpp-python; streams one chunk per token.

    The file (the packaged model when `model_path` is None) is loaded on first use and shared
    process-wide; one generation runs at a time per loaded model. `timeout` bounds a call from when
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
        model = self._model()  # loading (and first-run assembly) is not counted against the timeout
        prompt, stops = self._prompt(model, messages, [*(self.stop or []), *(stop or [])])
        with _counted(model):
            model.lock.acquire()  # callers queue before this (one admission queue); waiting is not timed
        try:
            cores = os.cpu_count() or 1
            threads = self.n_threads or (cores if not model.waiting else max(1, cores - 1))
            model.use_threads(threads, self.n_threads_batch or cores)
            yield from self._generate_tokens(model, prompt, stops, time.monotonic(), run_manager, kwargs)
        finally:
            model.lock.release()

    def _generate_tokens(
        self,
        model: model_file.Loaded,
        prompt: list[int],
        stops: list[str],
        started: float,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        cached = _cached_prefix(model.llama, prompt)
        stream = model.llama.create_completion(
            prompt,
            stream=True,
            temperature=kwargs.get("temperature", self.temperature),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            stop=stops,
            repeat_penalty=self.repeat_penalty,
        )
        text, finish_reason, first = "", None, 0.0
        try:
            for part in stream:
                choice = part["choices"][0]
                finish_reason = choice.get("finish_reason") or finish_reason
                first = first or time.monotonic() - started
                if choice["text"]:
                    text += choice["text"]
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=choice["text"]))
                    if run_manager:
                        run_manager.on_llm_new_token(choice["text"], chunk=chunk)
                    yield chunk
                if self.timeout is not None and self._remaining(started) <= 0 and finish_reason is None:
                    raise ModelTimeoutError(
                        f"the chat model took longer than {self.timeout:.0f} s (stopped after {len(text)} "
                        "characters): raise ASSISTANT_LLM_TIMEOUT, ask a shorter question, or use a faster model"
                    )
        finally:
            stream.close()
        elapsed = time.monotonic() - started
        log.info(
            "%d prompt tokens; first token %.1f s; %d characters in %.1f s", len(prompt), first, len(text), elapsed
        )
        yield self._last_chunk(model, len(prompt), cached, text, finish_reason)

    def _last_chunk(
        self, model: model_file.Loaded, prompt_tokens: int, cached: int, text: str, finish_reason: str | None
    ) -> ChatGenerationChunk:
        output_tokens = len(model.llama.tokenize(text.encode(), add_bos=False, special=True)) if text else 0
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=output_tokens,
            total_tokens=prompt_tokens + output_tokens,
            input_token_details={"cache_read": cached},  # the prompt's start llama.cpp kept from the last call
        )
        message = AIMessageChunk(
            content="",
            chunk_position="last",
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "model_provider": "llama-cpp",
                "finish_reason": finish_reason or "stop",
            },
        )
        return ChatGenerationChunk(message=message)

    def _remaining(self, started: float) -> float:
        return (self.timeout or 0.0) - (time.monotonic() - started)

    def _prompt(
        self, model: model_file.Loaded, messages: list[BaseMessage], stop: list[str]
    ) -> tuple[list[int], list[str]]:
        """The chat rendered with the model's own template, as tokens, plus the stop strings."""
        rendered = model.formatter(messages=[_as_dict(m) for m in messages])
        tokens = model.llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
        if len(tokens) >= self.n_ctx:
            raise ConfigurationError(
                f"the prompt has {len(tokens)} tokens but the chat model's context holds {self.n_ctx}: "
                "give it fewer or shorter passages, or a larger n_ctx"
            )
        extra = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        return tokens, [*stop, *extra]

    def _model(self) -> model_file.Loaded:
        path = Path(self.model_path).expanduser() if self.model_path else model_file.packaged_model_path()
        cores = os.cpu_count() or 1
        return model_file.load(path, self.n_ctx, self.n_threads or cores, self.n_threads_batch or cores, self.instance)


def _cached_prefix(llama: Any, prompt: list[int]) -> int:
    """How many tokens at the start of `prompt` llama.cpp still holds from the previous call (not evaluated again)."""
    held = list(llama.input_ids[: llama.n_tokens])
    n = 0
    for a, b in zip(held, prompt, strict=False):
        if a != b:
            break
        n += 1
    return max(0, n - 1) if n == len(prompt) else n


@contextmanager
def _counted(model: model_file.Loaded) -> Iterator[None]:
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
