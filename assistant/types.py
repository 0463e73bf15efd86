"""The values that flow between pipeline stages, defined in one place.

Each stage takes and returns these small frozen dataclasses; LangChain documents and Chroma
dicts never leave the modules that talk to those libraries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Paragraph:
    """A body paragraph of a document: `text == document.text[start:end]`."""

    number: int  # 1-based, counting body paragraphs only (headings excluded)
    start: int
    end: int
    section: str  # the heading this paragraph sits under ("" before the first heading)


@dataclass(frozen=True)
class Document:
    """One corpus file after cleaning: the original text plus where its body paragraphs are."""

    source: str  # path relative to the corpus directory, e.g. "stepfun-b-plus-round.txt"
    text: str  # the file's text exactly as read (offsets point into it)
    sha256: str  # of the file's bytes: decides whether re-indexing is needed
    title: str
    paragraphs: tuple[Paragraph, ...]
    meta: dict[str, str] = field(default_factory=dict)  # outlet, byline, date, ... (sidecar)
    header: tuple[int, int] | None = None  # offsets of the title and byline lines, when the text has them


@dataclass(frozen=True)
class Chunk:
    """A window of whole sentences: `text == document.text[start:end]`."""

    chunk_id: str
    source: str
    title: str
    section: str
    paragraph: int
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with the evidence for its rank (scores are None where a retriever missed)."""

    chunk: Chunk
    rank: int  # 1-based fused rank
    score: float  # final score: normalised RRF of dense and keyword ranks + sentence overlap (higher is better)
    dense_score: float | None = None  # cosine similarity
    dense_rank: int | None = None
    keyword_score: float | None = None  # BM25
    keyword_rank: int | None = None
    overlap: float | None = None  # share of the question's bigrams found in the chunk's best sentence

    def to_dict(self) -> dict[str, Any]:
        d = self.chunk.to_dict()
        d.update(
            rank=self.rank,
            score=round(self.score, 6),
            dense_score=None if self.dense_score is None else round(self.dense_score, 6),
            dense_rank=self.dense_rank,
            keyword_score=None if self.keyword_score is None else round(self.keyword_score, 6),
            keyword_rank=self.keyword_rank,
            overlap=None if self.overlap is None else round(self.overlap, 4),
        )
        return d


@dataclass(frozen=True)
class Citation:
    """A passage an answer cites: `source_text[start:end] == text`; `quote` is the supporting sentence.
    `source` names the file relative to the corpus directory (the same wherever the process runs);
    `path` says where to open it (absolute)."""

    n: int
    chunk_id: str
    source: str
    title: str
    paragraph: int
    start: int
    end: int
    text: str
    quote: str
    section: str = ""
    path: str = ""

    @classmethod
    def of(cls, n: int, chunk: Chunk, quote: str, path: str = "") -> Citation:
        return cls(
            n,
            chunk.chunk_id,
            chunk.source,
            chunk.title,
            chunk.paragraph,
            chunk.start,
            chunk.end,
            chunk.text,
            quote,
            chunk.section,
            path,
        )

    def to_dict(self, path: bool = True) -> dict[str, Any]:
        """As JSON; `path=False` (over HTTP) leaves the server's file path out (empty): only `source` names it."""
        d = asdict(self)
        if not path:
            d["path"] = ""
        return d


@dataclass(frozen=True)
class Evidence:
    """The best supporting sentence, known as soon as retrieval is done and shown while the model writes:
    a verbatim quote labelled as one (`text`, with its `[1]` marker), replaced by the verified `Answer`."""

    text: str
    citation: Citation

    def to_dict(self, paths: bool = True) -> dict[str, Any]:
        return {"text": self.text, "citations": [self.citation.to_dict(paths)]}


@dataclass(frozen=True)
class Answer:
    """What every interface renders: the answer contract (README, "The answer contract")."""

    question: str
    answer: str
    refused: bool
    citations: tuple[Citation, ...]
    timings: dict[str, float]
    models: dict[str, str]
    related: tuple[Citation, ...] = ()  # the closest passages when refused: shown, never cited
    refusal_reason: str | None = None  # when refused: which evidence was missing (a key of decide.REASONS)
    # "false_premise": the answer text corrects the question ("文章说的是 A，不是 B：“…” [1]") and cites its passage
    refusal_detail: str = ""  # the check behind it, e.g. "constraint 2019" (the cited passage lacks the year asked)
    verification: tuple[dict[str, Any], ...] = ()  # per draft sentence: kept, passage, the check that failed, scores
    usage: dict[str, int] = field(default_factory=dict)  # tokens the model calls took: prompt, completion, total, calls
    answer_id: str = ""  # the server's signature over what was asked and answered: a 👍 on it counts (answer_ids)

    @classmethod
    def answered(
        cls,
        question: str,
        text: str,
        citations: Sequence[Citation],
        *,
        timings: dict[str, float],
        models: dict[str, str],
        verification: Sequence[dict[str, Any]] = (),
    ) -> Answer:
        """An answer: `text` with its `[n]` markers and the citations they name."""
        return cls(question, text, False, tuple(citations), timings, models, verification=tuple(verification))

    @classmethod
    def refusal(
        cls,
        question: str,
        text: str,
        *,
        reason: str | None,
        detail: str = "",
        timings: dict[str, float],
        models: dict[str, str],
        related: Sequence[Citation] = (),
        citations: Sequence[Citation] = (),
        verification: Sequence[dict[str, Any]] = (),
    ) -> Answer:
        """A refusal and its reason (a key of `decide.REASONS`); a premise correction also cites the passage
        that states the fact the question got wrong (`citations`)."""
        return cls(
            question, text, True, tuple(citations), timings, models, tuple(related), reason, detail,
            tuple(verification),
        )  # fmt: skip

    @property
    def sources(self) -> tuple[Citation, ...]:
        """What to show under the answer: its citations, or for a refusal the related passages."""
        return self.related if self.uncited else self.citations

    @property
    def uncited(self) -> bool:
        """A refusal that cites nothing. A premise correction (`refusal_reason` "false_premise") is a refusal
        that cites the passage stating the fact the question got wrong, and is shown like an answer."""
        return self.refused and not self.citations

    def to_dict(self, paths: bool = True) -> dict[str, Any]:
        """The contract as JSON; `paths=False` (every HTTP route) leaves the citations' server paths empty."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [c.to_dict(paths) for c in self.citations],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "models": dict(self.models),
            "related": [c.to_dict(paths) for c in self.related],
            "refusal_reason": self.refusal_reason,
            "refusal_detail": self.refusal_detail,
            "verification": list(self.verification),
            "usage": dict(self.usage),
            "answer_id": self.answer_id,
        }
