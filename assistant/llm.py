"""Chat models behind LangChain's `BaseChatModel`, chosen by a name; answers stream token by token.

`llama-cpp` (default): the packaged Qwen2.5-Coder-1.5B GGUF (`model_file` builds and loads it) run
by llama.cpp in process (`llama`); `llama-cpp:<path>` runs another local GGUF. `openai:<model>`: any
OpenAI-compatible server. `fake[:<reply>]`: a scripted reply, for tests and demos. Prompts and
answer checking are left to `answer` and `verify`; nothing here downloads a model.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from assistant import model_file
from assistant.errors import AssistantError, ConfigurationError, ModelTimeoutError, ModelUnavailableError
from assistant.llama import LlamaCppChat

log = logging.getLogger(__name__)

PACKAGED = "packaged"
FAKE_REPLY = "这是一个用于测试的回答 [1]。"
OPENAI_PIP = "langchain-openai==1.7.4"
NAMES = "llama-cpp, llama-cpp:<path to a .gguf file>, openai:<model>, fake, fake:<reply>"


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
