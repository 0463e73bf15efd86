"""Build an `Assistant` from `Settings`: the only code that picks concrete backends.

Embeddings and the chat model are chosen by name (`embeddings`, `llm`), the storage by whether a
Chroma server URL is set. Models load, and the storage connects, on first use, or (`preload`) the
embedding model loads on a background thread while the modules below are imported, which is most
of a cold start. Chroma telemetry is off and nothing here touches the network beyond that URL.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from assistant.models.embeddings import LazyEmbeddings
from assistant.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

    from assistant.core import Assistant
    from assistant.index.storage import Storage


def build_assistant(
    settings: Settings | None = None,
    *,
    llm: BaseChatModel | None = None,
    embeddings: Embeddings | None = None,
    preload: bool = False,
) -> Assistant:
    """An `Assistant` for `settings`. `llm` and `embeddings` are parts passed in instead of the ones the
    settings name (tests, or an application embedding its own models; the index records `embeddings` under
    the name `settings.embeddings`, so keep that name for one model). `preload` starts loading the
    embedding model at once."""
    settings = settings or Settings.load()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if embeddings is None:
        urls = [u.strip() for u in (settings.embeddings_url or "").split(",") if u.strip()]
        embeddings = lazy = LazyEmbeddings(settings.embeddings, urls, settings.openai_api_key)
        if preload:
            lazy.preload()
    # Imported only now, so the preload above overlaps them (chromadb and LangChain: ~1.5 s of CPU).
    from assistant.core import Assistant
    from assistant.index.collection import Index
    from assistant.models.llm import make_chat_model, model_label

    storage = make_storage(settings.index_dir, settings.chroma_url, settings.collection, settings.index_lease_s)
    index = Index(storage, settings.collection, embeddings, settings.embeddings)
    if llm is not None:
        models = {"llm": getattr(llm, "model_name", None) or llm._llm_type, "embeddings": settings.embeddings}
        return Assistant(settings, index, lambda: llm, models)
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


def make_storage(index_dir: Path, chroma_url: str | None, collection: str, lease: float = 60.0) -> Storage:
    """The server at `chroma_url` if given (`lease`: seconds of silence after which a builder there is
    taken as dead), else the embedded store in `index_dir`."""
    if chroma_url:
        from assistant.index.server import ServerStorage

        return ServerStorage(chroma_url, collection, lease=lease)
    from assistant.index.storage import EmbeddedStorage

    return EmbeddedStorage(index_dir)
