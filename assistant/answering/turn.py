"""Turn: one question on its way through the answer flow, as one record.

What was asked and how (its language, fast or not, the caller's token cap), when it started, what each stage
took, and what has been found so far (the question made standalone, the search query, the hits). Every stage
of `answer` and `whole` takes the turn and fills in its part, instead of passing the same five values along.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

from assistant.text import is_english
from assistant.types import Hit


@dataclass
class Turn:
    question: str  # as asked (without orders riding on it), or one part of it
    history: list[str] = field(default_factory=list)  # the conversation so far, oldest first
    fast: bool = False  # quotes only: no model call
    limit: int | None = None  # the caller's cap on generated tokens (below the settings' own)
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage ("retrieve_s", …)
    standalone: str = ""  # the question made standalone (a follow-up rewritten); "" until then
    query: str = ""  # what was searched: the standalone question, translated where the corpus needs it
    hits: list[Hit] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)  # what the top hits cover (`decide.evidence`)

    @cached_property
    def english(self) -> bool:
        """The answer is to be in English."""
        return is_english(self.question)

    def since_start(self, key: str) -> float:
        """Record the seconds since the turn started under `key` (e.g. "total_s"), and return them."""
        self.timings[key] = time.perf_counter() - self.started
        return self.timings[key]
