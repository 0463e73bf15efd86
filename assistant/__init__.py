"""assistant: grounded, cited answers over a folder of documents.

The public Python API, importable from here (each loads on first use, so `import assistant` stays light):

    from assistant import build_assistant, plain_text
    answer = build_assistant().ask("阶跃星辰这轮融资多少？")
    print(plain_text(answer))

The tree follows the pipeline: `corpus/` (ingest, chunk; convert and add for files users give) → `index/`
(Chroma, keyword BM25, `retrieve`, the documents' outlines) → `answering/` (`answer` with `extract`,
`followup`, `parts`, `whole`, `document`, `side_calls`, `prompts`, `compose`) → `checks/` (inputs, question,
premise, injection, claims, verify, decide) → `interfaces/` (`render`, cli, http, web, slack); `models/`
holds the chat and embedding models, `factory` picks them, `core` ties them into the `Assistant`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "build_assistant": "assistant.factory",
    "Assistant": "assistant.core",
    "Settings": "assistant.settings",
    "Answer": "assistant.types",
    "Citation": "assistant.types",
    "plain_text": "assistant.interfaces.render",
    "AssistantError": "assistant.errors",
    "Upload": "assistant.corpus.add",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'assistant' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
