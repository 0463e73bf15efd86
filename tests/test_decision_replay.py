"""One decision: the stored calibration drafts replayed through the serving path (`Answerer.stream`, with the
draft's own passages and the draft as the model's reply) and through calibration (`tune.prepare`, `tune.outcome`)
get the same decisions. Calibration chooses the cut-offs on exactly what serving does (issue 30)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel

from assistant.answering.answer import Answerer
from assistant.answering.parts import split
from assistant.checks.decide import VerifyPolicy
from assistant.index.outline import Outline
from assistant.quality import calibration, tune
from assistant.types import Answer, Chunk, Hit

ROOT = Path(__file__).resolve().parent.parent
DRAFTS = ROOT / "docs" / "calibration" / "drafts.jsonl"
SAMPLE = 240  # of the ~700 stored drafts: every set and both halves, in about a minute


class StoredHits:
    """What the answer flow asks of its retriever, answered from one stored draft: its hits (retrieval was
    done when the draft was collected), the lead-ins calibration uses, and no outlines (no whole-document
    question is among the drafts)."""

    corpus_is_cjk = True
    outlines: dict[str, Outline] = {}

    def __init__(self, hits: list[Hit], lead_in: Any, set_name: str) -> None:
        self.hits, self._lead_in, self.set_name = hits, lead_in, set_name
        self.chunks = [h.chunk for h in hits]

    def search(self, query: str, k: int = 5, history: list[str] | None = None) -> list[Hit]:
        return self.hits[:k]

    def lead_in(self, chunk: Chunk) -> str:
        return self._lead_in(self.set_name, chunk)

    def weight(self, token: str) -> float:
        return 1.0


@pytest.fixture(scope="module")
def leads(tmp_path_factory: pytest.TempPathFactory) -> tune.LeadIns:
    root = tmp_path_factory.mktemp("calibration")
    return tune.LeadIns({name: calibration.build(name, root).corpus for name in calibration.SETS})


def _sample() -> list[dict[str, Any]]:
    records = [json.loads(line) for line in DRAFTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    # one question each (a question in parts is answered part by part, each with its own draft)
    whole = [r for r in records if len(split(r["question"]).parts) == 1 and r["query"] == r["question"]]
    return random.Random(7).sample(whole, min(SAMPLE, len(whole)))


def _served(record: dict[str, Any], leads: tune.LeadIns, policy: VerifyPolicy) -> Answer:
    hits = [tune.hit_from_dict(h) for h in record["hits"]]
    retriever = StoredHits(hits, leads, record.get("of", record["set"]))
    llm = FakeListChatModel(responses=[record["draft"]])
    answerer = Answerer(retriever, llm, {"llm": "stored draft"}, helper=llm)  # type: ignore[arg-type]
    answerer.settings = type(answerer.settings)(policy=policy, translate_questions=False, translate_claims=False)
    answerer.replies.policy = policy
    return answerer.ask(record["question"])


@pytest.mark.slow
@pytest.mark.parametrize("policy", [VerifyPolicy(), VerifyPolicy(min_nouns=0.3, min_question_nouns=0.7)])
def test_serving_and_calibration_decide_every_stored_draft_alike(leads: tune.LeadIns, policy: VerifyPolicy):
    records = _sample()
    assert len(records) >= 200
    prepared = tune.prepare(records, leads=leads)
    differ = []
    for record, p in zip(records, prepared, strict=True):
        decision, text = tune.outcome(p, policy)
        answer = _served(record, leads, policy)
        if (answer.refused, answer.refusal_reason) != (decision.refused, decision.reason):
            differ.append((record["id"], (answer.refused, answer.refusal_reason), (decision.refused, decision.reason)))
    assert not differ, differ[:10]
    reasons = {tune.outcome(p, policy)[0].reason for p in prepared}
    assert len(reasons) >= 4, reasons  # answers and several kinds of refusal were replayed, not one path
