"""The public Python API: importable from the package itself, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import assistant
from assistant.core import Assistant
from assistant.corpus.add import Upload
from assistant.errors import AssistantError
from assistant.factory import build_assistant
from assistant.interfaces.render import plain_text
from assistant.settings import Settings
from assistant.types import Answer, Citation


def test_public_names_are_the_modules_own() -> None:
    own = [Answer, Assistant, AssistantError, Citation, Settings, Upload, build_assistant, plain_text]
    assert sorted(assistant.__all__) == sorted(o.__name__ for o in own)
    for o in own:
        assert getattr(assistant, o.__name__) is o


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'ask'"):
        assistant.ask  # noqa: B018
    with pytest.raises(ImportError):
        from assistant import nothing_here  # noqa: F401


def test_importing_the_package_loads_no_heavy_module() -> None:
    code = (
        "import sys, assistant, assistant.text\n"
        "heavy = [m for m in ('langchain_core', 'chromadb', 'llama_cpp', 'jieba', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
        "from assistant import plain_text\n"
        "print('langchain_core' in sys.modules or 'assistant.interfaces.render' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"
