"""Build an `Assistant` from `Settings`: the only code that picks concrete backends.

Embeddings are chosen by name (`embeddings.make_embeddings`), the store by whether a Chroma
server URL is set. Chroma telemetry is off and nothing here touches the network beyond that URL.
"""

from __future__ import annotations

import os

from .core import Assistant
from .embeddings import LazyEmbeddings
from .index import Index, connect
from .settings import Settings


def build_assistant(settings: Settings | None = None) -> Assistant:
    settings = settings or Settings.load()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    client = connect(settings.index_dir, settings.chroma_url)
    location = settings.chroma_url or str(settings.index_dir)
    index = Index(
        client,
        settings.collection,
        LazyEmbeddings(settings.embeddings),
        settings.embeddings,
        location=f"{location} (collection {settings.collection})",
    )
    return Assistant(settings, index)
