"""The front object: `Assistant` ties settings, corpus, index and retriever together.

Every interface (CLI, web, Slack, Python) receives an `Assistant`; none builds its own backends.
It is built by `factory.build_assistant`, the only code that names concrete backends. Models load
lazily, so `info` stays cheap and `search` pays for the keyword index once.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import CorpusError
from .index import Index, Progress, SyncReport
from .ingest import Skipped, load_corpus
from .retrieve import HybridRetriever, LangChainRetriever
from .settings import Settings
from .types import Hit

log = logging.getLogger(__name__)


class Assistant:
    def __init__(self, settings: Settings, index: Index) -> None:
        self.settings = settings
        self.index = index
        self._retriever: HybridRetriever | None = None
        self.skipped: list[Skipped] = []

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            self._retriever = HybridRetriever(self.index)
        return self._retriever

    def build_index(self, *, rebuild: bool = False, progress: Progress | None = None) -> SyncReport:
        """Bring the index in line with the corpus directory (only changed files are re-embedded)."""
        documents, self.skipped = load_corpus(self.settings.corpus)
        if not documents:
            raise CorpusError(
                f"nothing to index in {self.settings.corpus}: add .txt or .md files (UTF-8) "
                "or point --corpus / ASSISTANT_CORPUS elsewhere"
                + (f"; skipped {len(self.skipped)} unreadable file(s)" if self.skipped else "")
            )
        report = self.index.sync(documents, rebuild=rebuild, progress=progress)
        self._retriever = None  # the next search sees the new chunks
        return report

    def search(self, question: str, k: int = 5, history: list[str] | None = None) -> list[Hit]:
        """The `k` passages that best match `question` (earlier user turns in `history` help follow-ups)."""
        return self.retriever.search(question, k=k, history=history)

    def as_retriever(self, k: int = 5) -> LangChainRetriever:
        """A LangChain `BaseRetriever` over this assistant's index."""
        return LangChainRetriever(retriever=self.retriever, k=k)

    def info(self) -> dict[str, Any]:
        return {"corpus": str(self.settings.corpus), **self.index.info()}
