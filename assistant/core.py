"""The front object: `Assistant` ties settings, corpus, index and retriever together.

Every interface (CLI, web, Slack, Python) receives an `Assistant`; none builds its own backends.
It is built by `factory.build_assistant`, the only code that names concrete backends. Models load
lazily, so `info` stays cheap and `search` pays for the keyword index once (and again only after
a re-index, from this or another process, switched in a new build).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from assistant.admission import AnswerQueue
from assistant.answering.answer import Answerer
from assistant.checks.inputs import check_history, check_question
from assistant.corpus import journal
from assistant.corpus.add import Added, Upload, changes, locked, plan, read_upload, write
from assistant.corpus.ingest import Skipped, load_corpus
from assistant.errors import (
    AssistantError,
    CorpusError,
    IndexBusyError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from assistant.feedback import FeedbackStore
from assistant.index.collection import Index
from assistant.index.retrieve import HybridRetriever, LangChainRetriever
from assistant.index.writing import Progress, SyncReport
from assistant.models.embeddings import similarity
from assistant.models.llm import UnavailableChatModel, explain_error
from assistant.settings import Settings
from assistant.types import Answer, Evidence, Hit

log = logging.getLogger(__name__)

ADD_WAIT_S = 120.0  # how long an add waits for another add, or another build of the index, to finish


class Assistant:
    def __init__(
        self, settings: Settings, index: Index, make_llm: Callable[[], BaseChatModel], models: dict[str, str]
    ) -> None:
        self.settings = settings
        self.index = index
        self.models = models
        self._make_llm = make_llm
        self._llm: BaseChatModel | None = None
        self._retriever: HybridRetriever | None = None
        self._generation = -1  # the index generation the retriever was built on
        self._building = threading.Lock()
        self._adding = threading.Lock()  # one `add` at a time in this process (others wait their turn)
        self._feedback: FeedbackStore | None = None
        self._answerer: Answerer | None = None
        self.skipped: list[Skipped] = []
        self.queue = AnswerQueue(settings.api_queue_size)  # one answer at a time, for every interface
        # what /readyz reports: "warming" while `warm` runs, then "warm"; "unready" when it found no index to load
        self.warmth = "cold"

    @property
    def retriever(self) -> HybridRetriever:
        """The hybrid retriever, rebuilt when another build of the index was switched in (e.g. by an
        `assistant index` in another process); requests already running finish on the old one."""
        generation = self.index.refresh()
        if self._retriever is None or generation != self._generation:
            with self._building:  # one build of the keyword index per version, whoever asks first
                if self._retriever is None or generation != self._generation:
                    self._retriever = HybridRetriever(self.index)
                    self._generation = generation
        return self._retriever

    @property
    def feedback(self) -> FeedbackStore:
        """Where the page, Slack and the API keep users' ratings of answers (`assistant feedback`)."""
        if self._feedback is None:
            path = Path(self.settings.feedback_db).expanduser() if self.settings.feedback_db else None
            self._feedback = FeedbackStore(path or self.settings.index_dir / "feedback.sqlite3", self._version())
        return self._feedback

    def _version(self) -> str:
        try:
            return str(self.index.storage.version())
        except Exception:  # a store that cannot say: the rating is kept all the same
            return ""

    def loaded(self) -> tuple[HybridRetriever | None, bool]:
        """The retriever already built (None before the first), and whether it is on the build serving now:
        one `stat` (or a cached pointer read), never a read of the index itself."""
        return self._retriever, self._retriever is not None and self.index.refresh() == self._generation

    @property
    def llm(self) -> BaseChatModel:
        """The chat model, made on first use; one that cannot be made (a missing model file or
        package) is replaced by a stand-in whose every call fails, so answers become quotes saying why."""
        if self._llm is None:
            try:
                self._llm = self._make_llm()
            except AssistantError as exc:
                log.warning("chat model unavailable (%s): answering with quotes", exc)
                self._llm = UnavailableChatModel(reason=str(exc))
        return self._llm

    @llm.setter
    def llm(self, llm: BaseChatModel) -> None:
        """Answer with another chat model from the next question on (a question running keeps its own)."""
        self._llm, self._answerer = llm, None

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None or self._answerer.retriever is not self.retriever:
            self._answerer = Answerer(
                self.retriever, self.llm, self.models, similarity=similarity(self.index.embeddings), locate=self.locate
            )
        return self._answerer

    def warm(self, model: bool = True) -> float:
        """Load what the first question needs (keyword index, embedding model and, with `model`, the chat
        model with its prompt's constant start evaluated), so it is answered as fast as any other; the
        seconds it took. A chat model that cannot load is not an error here: answers quote and say why."""
        started = time.perf_counter()
        self.warmth = "warming"
        warmth = "warm"
        try:
            self.retriever.search("warm up", k=1)
            if model:
                self.answerer.warm()
        except (IndexNotFoundError, StoreUnavailableError) as exc:  # no index yet: /readyz retries the warm-up
            log.warning("warm-up incomplete: %s", exc)
            warmth = "unready"
        except AssistantError as exc:  # e.g. no chat model: ready all the same, answers quote and say why
            log.warning("warm-up incomplete: %s", exc)
        except Exception as exc:  # a chat model's own failure: the answers will say so
            log.warning("the chat model did not warm up: %s", explain_error(exc) or exc)
        finally:
            self.warmth = warmth
        seconds = time.perf_counter() - started
        log.info("warmed up in %.1f s", seconds)
        return seconds

    def locate(self, source: str) -> str:
        """The absolute path of a corpus file named by its corpus-relative `source`, or "" when it resolves
        outside the corpus directory (`..`, an absolute name, a symlink out): a record planted in a shared
        Chroma server cannot make any interface read another file."""
        root = self.settings.corpus.resolve()
        path = (root / source).resolve()
        if not path.is_relative_to(root):
            log.warning("a citation names %r, outside the corpus %s: its file is not read", source, root)
            return ""
        return str(path)

    def ask(
        self, question: str, history: Sequence[str] = (), *, fast: bool = False, max_tokens: int | None = None
    ) -> Answer:
        """A verified, cited answer (or a refusal); `history` is the user's earlier turns, oldest first;
        `max_tokens` caps the model's answer below the settings' cap."""
        return self._issued(self.answerer.ask(question, history, fast=fast, max_tokens=max_tokens), history)

    def stream(
        self, question: str, history: Sequence[str] = (), *, fast: bool = False, max_tokens: int | None = None
    ) -> Iterator[str | Evidence | Answer]:
        """The best supporting quote (`Evidence`) once retrieval is done, answer tokens as they are
        generated, then the verified `Answer` as the last item."""
        events = self.answerer.stream(question, history, fast=fast, max_tokens=max_tokens)
        try:
            for event in events:
                yield self._issued(event, history) if isinstance(event, Answer) else event
        finally:  # a consumer that gives up early stops the model
            if close := getattr(events, "close", None):
                close()

    def _issued(self, answer: Answer, history: Sequence[str]) -> Answer:
        """`answer` with its `answer_id` (`answer_ids`): what makes a 👍 on it count as candidate gold."""
        return dataclasses.replace(answer, answer_id=self.feedback.ids.sign(answer.to_dict(), history))

    def build_index(
        self, *, rebuild: bool = False, progress: Progress | None = None, allow_empty: bool = False
    ) -> SyncReport:
        """Bring the index in line with the corpus directory (only changed files are re-embedded); an empty
        corpus is an error unless `allow_empty` (an add into an empty corpus was put back: the index empties)."""
        documents, self.skipped = load_corpus(self.settings.corpus)
        if not documents and not allow_empty:
            raise CorpusError(
                f"nothing to index in {self.settings.corpus}: add .txt or .md files (UTF-8) "
                "or point --corpus / ASSISTANT_CORPUS elsewhere"
                + (f"; skipped {len(self.skipped)} unreadable file(s)" if self.skipped else "")
            )
        report = self.index.sync(documents, rebuild=rebuild, progress=progress)
        self._retriever = None  # the next search sees the new chunks (the server's store is never switched)
        return report

    def add(
        self, files: Sequence[Path | Upload], *, replace: bool = False, progress: Progress | None = None
    ) -> tuple[list[Added], SyncReport]:
        """Add files (paths, or `Upload`s of bytes) to the corpus and the index: .txt/.md as they are, a PDF, Word
        file or web page with its extracted text saved beside it. Citable in the next answer (here, and in any
        process on the same index). A file that cannot be added is a `CorpusError` and nothing changes; if
        indexing fails, the corpus is put back as it was. `replace` lets a file replace a different one of
        the same name. Adds wait for one another, in this process and any other sharing the corpus. An add that
        a crash cut off is undone first (`recover`)."""
        corpus, limit = self.settings.corpus, self.settings.upload_max_bytes
        uploads = [f if isinstance(f, Upload) else read_upload(Path(f), corpus, limit) for f in files]
        with self._adding, locked(corpus, wait=ADD_WAIT_S):
            self._undo_cut_off(progress)
            planned = plan(corpus, uploads, replace=replace, max_bytes=limit)
            with journal.recorded(corpus, changes(planned)):  # put back on failure; a crash leaves the journal
                write(planned)
                report = self._index_now(progress)
        return [dataclasses.replace(p.added, chunks=report.chunked.get(p.added.source, 0)) for p in planned], report

    def recover(self) -> list[str]:
        """Undo an add that was cut off (a `kill -9` or a power cut between changing the corpus and finishing the
        index update: its journal is left) and bring the index in line with the corpus; the corpus files put
        back. `assistant serve` calls it at start, every add before its own. Skipped while another process is
        adding; a failure is logged, and the next add or start tries again."""
        if not journal.pending(self.settings.corpus):
            return []
        try:
            with self._adding, locked(self.settings.corpus, wait=0):
                return self._undo_cut_off(None)
        except IndexBusyError:  # another process is adding now: the journal is its own
            return []
        except AssistantError as exc:
            log.warning("an add cut off earlier is not undone yet (%s): the next add or start tries again", exc)
            return []

    def _undo_cut_off(self, progress: Progress | None) -> list[str]:
        """With the add lock held: put back the files of an add whose journal is left, update the index, and
        only then forget the journal (a crash in between does it again)."""
        corpus = self.settings.corpus
        if not journal.pending(corpus):
            return []
        try:
            restored = journal.put_back(corpus)
        except OSError as exc:
            raise CorpusError(
                f"cannot put back the files of an add that was cut off ({exc.strerror or exc}): check that the "
                f"corpus directory {corpus} is writable"
            ) from exc
        log.warning("an add was cut off before the index was updated: put back %s", ", ".join(restored) or "nothing")
        self._index_now(progress, allow_empty=True)
        journal.forget(corpus)
        return restored

    def _index_now(self, progress: Progress | None, *, allow_empty: bool = False) -> SyncReport:
        """`build_index`, retried while another build holds the index (an `assistant index` elsewhere: seconds)."""
        deadline = time.monotonic() + ADD_WAIT_S
        while True:
            try:
                return self.build_index(progress=progress, allow_empty=allow_empty)
            except IndexBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def search(self, question: str, k: int = 5, history: list[str] | None = None) -> list[Hit]:
        """The `k` passages that best match `question` (earlier user turns in `history` help follow-ups).
        A question or history that is not usable text, or a `k` that is not a positive integer, is an
        `InputError` saying so."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a whole number of passages, 1 or more, not {k!r}")
        return self.retriever.search(check_question(question), k=k, history=check_history(history))

    def as_retriever(self, k: int = 5) -> LangChainRetriever:
        """A LangChain `BaseRetriever` over this assistant's index."""
        return LangChainRetriever(retriever=self.retriever, k=k)

    def info(self) -> dict[str, Any]:
        self.index.refresh()
        return {"corpus": str(self.settings.corpus), **self.index.info()}

    def close(self) -> None:
        """Release the index's Chroma clients (the next call opens them again)."""
        self._retriever = None
        self.index.close()
