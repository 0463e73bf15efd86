"""Hybrid retrieval on the real packaged e5-small model and a real embedded Chroma."""

from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from assistant.core import Assistant
from assistant.errors import InputError
from assistant.index.retrieve import LangChainRetriever

from conftest import HIT_FIELDS


def top(assistant: Assistant, question: str, k: int = 3, **kw: Any) -> list[str]:
    return [h.chunk.text for h in assistant.search(question, k=k, **kw)]


def test_numeric_question_finds_the_passage_with_the_number_first(e5_article: Assistant):
    assert "每次推理仅激活 38B 参数" in top(e5_article, "Step-3 每次推理激活多少参数？")[0]


def test_entity_question_finds_the_person(e5_article: Assistant):
    assert "CTO 朱亦博" in top(e5_article, "阶跃星辰的 CTO 是谁？")[0]


def test_english_question_finds_the_chinese_passage(e5_article: Assistant):
    texts = top(e5_article, "What is the total parameter count of the Step-3 model?")
    assert any("总参数量达 321B" in t for t in texts)
    texts = top(e5_article, "How much did StepFun raise in its B+ round?")
    assert any("超 50 亿元人民币 B+ 轮融资" in t for t in texts)


def test_mixed_language_question(e5_article: Assistant):
    texts = top(e5_article, "Step-3 的 INT8 version 需要多少 GPU memory？")
    assert any("INT8 量化版本仅需 5GB 显存" in t for t in texts)


def test_follow_up_uses_the_conversation(e5_article: Assistant):
    alone = top(e5_article, "他有什么特别的经验？", k=1)[0]
    with_history = top(e5_article, "他有什么特别的经验？", k=1, history=["阶跃星辰的 CTO 是谁？"])[0]
    assert "万卡集群建设经验" in with_history
    assert alone != with_history or "万卡集群" in alone


def test_hits_carry_both_scores_and_the_fused_rank(e5_article: Assistant):
    hits = e5_article.search("阶跃星辰 B+ 轮融资金额", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    both = [h for h in hits if h.dense_rank is not None and h.keyword_rank is not None]
    assert both, "the best hits are found by both retrievers"
    for h in both:
        assert 0.0 < h.dense_score <= 1.0 and h.keyword_score > 0  # type: ignore[operator]
    d = hits[0].to_dict()
    assert set(d) >= HIT_FIELDS


def test_blank_query_returns_nothing_from_the_retriever_and_is_an_input_error_to_the_assistant(e5_article: Assistant):
    assert e5_article.retriever.search("   ") == []
    with pytest.raises(InputError, match="empty"):
        e5_article.search("   ")


def test_retriever_in_a_langchain_chain(e5_article: Assistant):
    from langchain_core.runnables import RunnableLambda

    chain = e5_article.as_retriever(k=2) | RunnableLambda(lambda docs: [d.metadata["paragraph"] for d in docs])
    paragraphs = chain.invoke("首席科学家是谁")
    assert len(paragraphs) == 2 and all(isinstance(p, int) for p in paragraphs)


@pytest.fixture(scope="class")
def _article_for_standard_tests(request: pytest.FixtureRequest, e5_article: Assistant) -> None:
    request.cls.assistant = e5_article


@pytest.mark.usefixtures("_article_for_standard_tests")
class TestStandardRetriever(RetrieversIntegrationTests):
    """LangChain's own standard retriever tests, run against the hybrid retriever."""

    assistant: Assistant

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return LangChainRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self.assistant.retriever}

    @property
    def retriever_query_example(self) -> str:
        return "阶跃星辰融资"


def test_retrieval_metrics_count_a_question_the_assistant_rejects_as_a_miss():
    from assistant.quality.evaluate import Item, retrieval_metrics

    def search(question: str, k: int, history: list[str]) -> list:
        raise InputError("the question is empty")

    metrics = retrieval_metrics(search, [Item("blank", ["  "], ["证据"], True, "cmrc", None, ["证据"])])
    assert metrics["questions"] == 1 and metrics["hit@5"] == 0.0 and metrics["not_first"][0]["id"] == "blank"
