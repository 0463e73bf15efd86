"""An answer must answer the question asked: a passage that states the fact for something else than
the question names gets a premise correction (cited), and a sentence that restates the question
without an answer is not an answer. Scripted models over the real article (fake embeddings)."""

from pathlib import Path

import pytest
from verdicts import verify

from assistant.checks.decide import FALSE_PREMISE, NOT_COVERED, VerifyPolicy, after_model
from assistant.checks.premise import instead, names, unbound
from assistant.text import squash
from assistant.types import Chunk

from conftest import make_assistant, scripted, with_llm

RACE = Chunk(
    "c1",
    "race.txt",
    "城市马拉松",
    "",
    1,
    0,
    40,
    "2019 年第七届城市马拉松由耐克赞助。男子组冠军是张三，成绩 2 小时 10 分。",
)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from conftest import ARTICLE_DIR

    index_dir = tmp_path_factory.mktemp("premise-index")
    make_assistant(ARTICLE_DIR, index_dir).build_index()
    return ARTICLE_DIR, index_dir


def test_a_question_names_people_organisations_and_versions():
    found = names("阶跃星辰与比亚迪合作的 Step-3 模型在 OPPO 手机上装机多少台？")
    assert {"比亚迪", "Step-3", "OPPO"} <= set(found)
    assert "Step" not in found, "a name inside a longer one is checked by the longer one"
    assert unbound(found, squash("阶跃星辰 Step-3 已在 OPPO 装机")) == ("比亚迪",)


def test_what_the_passage_names_instead_is_found_only_when_there_is_one():
    quote = "与吉利合作的银河 M9 车型上市 3 个月销量近 4 万辆"
    assert instead("比亚迪", quote, "与比亚迪合作的银河 M9 车型销量多少？") == "吉利"
    assert instead("2021", "2019 年第七届城市马拉松", "2021 年马拉松冠军是谁？") == "2019"
    assert instead("第八届", "2019 年第七届城市马拉松", "第八届马拉松冠军是谁？") == "第七届"
    assert instead("比亚迪", "吉利和长城都有合作车型", "比亚迪的车型？") == "", "two candidates: no guess"


def test_a_supported_sentence_about_another_sponsor_is_a_false_premise_not_an_answer():
    verdict = verify("男子组冠军是张三 [1]。", [RACE], question="阿迪达斯赞助的马拉松男子组冠军是谁？")
    decision = after_model("男子组冠军是张三 [1]。", verdict)
    assert decision.refused and decision.reason == FALSE_PREMISE and "阿迪达斯" in decision.detail
    assert verdict.premise is not None and verdict.premise.missing == ("阿迪达斯",)
    ok = verify("男子组冠军是张三 [1]。", [RACE], question="耐克赞助的马拉松男子组冠军是谁？")
    assert not after_model("男子组冠军是张三 [1]。", ok).refused, "the true premise is answered"


def test_a_sentence_that_restates_the_question_answers_nothing():
    question = "第七届城市马拉松男子组冠军的成绩是多少？"
    empty = verify("第七届城市马拉松男子组冠军的成绩是。[1]", [RACE], question=question)
    restated = after_model("第七届城市马拉松男子组冠军的成绩是。[1]", empty)
    assert restated.refused and restated.reason == NOT_COVERED, "supported, but it answers nothing"
    assert empty.report[0]["failed"] == "answer_content"
    right = verify("成绩是 2 小时 10 分 [1]。", [RACE], question=question)
    assert not after_model("成绩是 2 小时 10 分 [1]。", right).refused
    from assistant.checks.verify import answer_content

    assert answer_content("22 笔融资。", "2025 年完成了多少笔融资？") == 1.0, "a number counts whole, not by its digits"
    lenient = VerifyPolicy(min_answer_content=0.0)
    assert not after_model(
        "", verify("第七届城市马拉松男子组冠军的成绩是。[1]", [RACE], question=question, policy=lenient)
    ).refused


def test_the_assistant_corrects_a_partner_the_article_does_not_name_and_cites_the_passage(indexed):
    """The article names 吉利 as the partner for the M9; asked about another maker, the answer says so."""
    model = scripted("与比亚迪合作的银河 M9 车型上市 3 个月销量近 4 万辆 [1]。")
    answer = with_llm(make_assistant(*indexed), model).ask("阶跃星辰与比亚迪合作的银河 M9 车型上市 3 个月卖了多少辆？")
    assert answer.refused and answer.refusal_reason == FALSE_PREMISE
    assert answer.answer.startswith("文章说的是“吉利”，不是“比亚迪”") and answer.answer.endswith("[1]")
    [c] = answer.citations
    assert "吉利" in c.quote and c.quote in c.text and answer.sources == answer.citations
    d = answer.to_dict()
    assert d["refusal_reason"] == "false_premise" and d["citations"][0]["quote"] == c.quote


def test_the_true_premise_is_still_answered(indexed):
    model = scripted("与吉利合作的银河 M9 车型上市 3 个月销量近 4 万辆 [1]。")
    answer = with_llm(make_assistant(*indexed), model).ask("阶跃星辰与吉利合作的银河 M9 车型上市 3 个月卖了多少辆？")
    assert not answer.refused and "4 万辆" in answer.answer


def test_the_quick_answer_corrects_the_premise_too_without_a_model(indexed):
    answer = make_assistant(*indexed).ask("阶跃星辰与比亚迪合作的银河 M9 车型上市 3 个月卖了多少辆？", fast=True)
    assert answer.refused and answer.refusal_reason == FALSE_PREMISE and "吉利" in answer.citations[0].quote
    assert "比亚迪" in answer.answer and answer.answer.endswith("[1]")


def test_a_name_stated_just_before_the_cited_window_still_binds_the_fact(indexed):
    """ "Step-3 模型的 MoE 架构… 其 INT8 量化版本仅需 5GB 显存": the window holding the figure says only 其; the
    window before it names Step-3, so the premise holds and the question is answered."""
    a = with_llm(make_assistant(*indexed), scripted("Step-3 的 INT8 量化版本仅需 5GB 显存 [1]。"))
    answer = a.ask("INT8 量化后的 Step-3 需要几 GB 显存？")
    assert not answer.refused, answer.refusal_detail
    assert "5GB" in answer.answer and "5GB 显存" in answer.citations[0].quote
    assert "step-3" not in squash(answer.citations[0].text) and "step-3" in squash(
        a.retriever.lead_in(next(c for c in a.retriever.chunks if c.chunk_id == answer.citations[0].chunk_id))
    )
