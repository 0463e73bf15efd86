"""Build an `Assistant` from `Settings`: the only code that picks concrete backends.

Embeddings and the chat model are chosen by name (`embeddings`, `llm`), the store by whether a
Chroma server URL is set. Models load, and the store connects, on first use. Chroma telemetry is
off and nothing here touches the network beyond that URL.
"""

from __future__ import annotations

import os

from .core import Assistant
from .embeddings import LazyEmbeddings
from .index import Index
from .llm import make_chat_model, model_label
from .settings import Settings
from .store import make_store


def build_assistant(settings: Settings | None = None) -> Assistant:
    settings = settings or Settings.load()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    store = make_store(settings.index_dir, settings.chroma_url)
    index = Index(store, settings.collection, LazyEmbeddings(settings.embeddings), settings.embeddings)
    model_label(settings.llm)  # an unknown chat model name fails now, not at the first question

    def make_llm():  # type: ignore[no-untyped-def]
        return make_chat_model(
            settings.llm,
            openai_base_url=settings.openai_base_url,
            openai_api_key=settings.openai_api_key,
            timeout=settings.llm_timeout,
        )

    models = {"llm": model_label(settings.llm), "embeddings": settings.embeddings}
    return Assistant(settings, index, make_llm, models)
