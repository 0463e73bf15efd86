"""Chat models behind LangChain's `BaseChatModel`, chosen by a name; answers stream token by token.

`llama-cpp` (default): the packaged Qwen2.5-Coder-1.5B GGUF (`model_file` assembles it, `model_load` loads it) run
by llama.cpp in process (`llama`); `llama-cpp:<path>` runs another local GGUF. `openai:<model>`: any
OpenAI-compatible server. `fake[:<reply>]`: a scripted reply, for tests and demos. Prompts and
answer checking are left to `answer` and `verify`; nothing here downloads a model.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from assistant.errors import AssistantError, ConfigurationError, ModelTimeoutError, ModelUnavailableError
from assistant.models import model_file
from assistant.models.llama import LlamaCppChat

log = logging.getLogger(__name__)

PACKAGED = "packaged"
FAKE_REPLY = "这是一个用于测试的回答 [1]。"
OPENAI_PIP = "langchain-openai==1.7.4"
NAMES = "llama-cpp, llama-cpp:<path to a .gguf file>, openai:<model>, fake, fake:<reply>"


class TokenUsage(BaseCallbackHandler):
    """Adds up the token usage the chat-model calls report (llama.cpp's `usage_metadata`; 0 for a model that
    reports none), so an answer can say what it cost (`Answer.usage`). One answerer answers one question at a
    time (its model is one llama.cpp context), so one counter per answerer is enough."""

    def __init__(self) -> None:
        self.prompt = self.completion = self.calls = 0

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generation in (g for gens in response.generations for g in gens):
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            self.prompt += int(usage.get("input_tokens", 0))
            self.completion += int(usage.get("output_tokens", 0))
            self.calls += 1

    def listen(self, model: BaseChatModel) -> None:
        """Count `model`'s calls, beside the callbacks it has; a counter an earlier answerer of the same model
        left (the answerer is rebuilt when the index changes) is replaced, so the list does not grow."""
        if model.callbacks is None or isinstance(model.callbacks, list):
            model.callbacks = [*(c for c in model.callbacks or [] if not isinstance(c, TokenUsage)), self]

    def take(self) -> dict[str, int]:
        """The usage since the last take (OpenAI's field names, plus the number of model calls); then start over."""
        usage = {"prompt_tokens": self.prompt, "completion_tokens": self.completion}
        usage |= {"total_tokens": self.prompt + self.completion, "calls": self.calls}
        self.prompt = self.completion = self.calls = 0
        return usage


class UnavailableChatModel(BaseChatModel):
    """Stands in for a chat model that could not be set up: every call raises `ModelUnavailableError`
    with the reason, so answers fall back to a quote that says why instead of failing."""

    reason: str

    @property
    def _llm_type(self) -> str:
        return "unavailable"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        raise ModelUnavailableError(self.reason)


def make_chat_model(
    name: str,
    *,
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
    timeout: float = 120.0,
) -> BaseChatModel:
    """Build the chat model a settings string names (see the module docstring)."""
    kind, arg = _parse(name)
    if kind == "llama-cpp":
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(f"the llama-cpp chat model needs `pip install {model_file.LLAMA_PIP}`")
        if arg is not None and not Path(arg).expanduser().is_file():
            raise model_file.no_file_error(arg)
        return LlamaCppChat(model_path=arg, timeout=timeout)
    if kind == "openai":
        return _openai(arg or "", openai_base_url, openai_api_key, timeout)
    from langchain_core.language_models import FakeListChatModel

    return FakeListChatModel(responses=[arg or FAKE_REPLY])


def _openai(model: str, base_url: str | None, api_key: str | None, timeout: float) -> BaseChatModel:
    langchain_openai = _require("langchain_openai", OPENAI_PIP)
    try:
        return langchain_openai.ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key=api_key or ("not-needed" if base_url else None),
            timeout=timeout,
            temperature=0,
            max_retries=1,
            streaming=True,
        )
    except Exception as exc:  # the SDK raises a bare OpenAIError when no key is set
        raise ConfigurationError(
            f"cannot set up openai:{model} ({exc}): set ASSISTANT_OPENAI_API_KEY, "
            "or ASSISTANT_OPENAI_BASE_URL for a local server that needs no key"
        ) from exc


def _parse(name: str) -> tuple[str, str | None]:
    """(`llama-cpp` | `openai` | `fake`, argument or None); unknown names are a ConfigurationError."""
    kind, _, arg = name.partition(":")
    if kind == "llama-cpp" and arg in ("", PACKAGED):
        return kind, None
    if (kind in ("llama-cpp", "openai") and arg) or kind == "fake":
        return kind, arg or None
    raise ConfigurationError(f"unknown chat model {name!r}: use one of {NAMES}")


def model_label(name: str) -> str:
    """A short human label for the `models` field of answers."""
    kind, arg = _parse(name)
    if kind == "llama-cpp":
        return f"{Path(arg).stem if arg else model_file.MODEL_NAME} (llama.cpp)"
    if kind == "openai":
        return f"{arg} (OpenAI-compatible API)"
    return "fake (scripted replies)"


def explain_error(exc: BaseException) -> AssistantError | None:
    """The `AssistantError` a user can act on for an exception raised by a chat model, if any."""
    if isinstance(exc, AssistantError):
        return exc
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeoutError(
            "the chat model server did not answer in time: raise ASSISTANT_LLM_TIMEOUT or check the server"
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(
            f"cannot reach the chat model server ({exc}): start it, or fix ASSISTANT_OPENAI_BASE_URL"
        )
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ConfigurationError(f"the chat model server refused the API key ({exc}): check ASSISTANT_OPENAI_API_KEY")
    if isinstance(exc, openai.NotFoundError):
        return ConfigurationError(f"the chat model server does not know that model ({exc}): check ASSISTANT_LLM")
    if isinstance(exc, openai.APIStatusError):
        return ModelUnavailableError(f"the chat model server failed ({exc}): try again or check its logs")
    return None


def _require(module: str, pip_spec: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise ConfigurationError(f"this chat model needs `pip install {pip_spec}` ({exc})") from exc
