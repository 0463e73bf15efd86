"""Citation verification on the failure modes a small model shows: every one must be caught."""

import pytest
from verdicts import grounded, verify

from assistant.checks.claims import normalize_markers, split_claims
from assistant.checks.decide import NOT_COVERED, VerifyPolicy, after_model
from assistant.checks.numbers import numbers_supported
from assistant.types import Chunk

TITLE = "阶跃星辰凭什么拿最多的钱"


def chunk(text: str, n: int = 1) -> Chunk:
    return Chunk(f"c{n}", "a.txt", TITLE, "从技术创新到商业闭环", n, 0, len(text), text)


STEP3 = chunk(
    "Step-3 模型的 MoE(混合专家)架构设计,更是兼顾了性能与效率的平衡。该模型总参数量达 321B,"
    "但通过动态激活机制,每次推理仅激活 38B 参数,实现 8.4 倍的参数效率提升。",
    1,
)
MINIMAX = chunk("更残酷的是—— MiniMax 2025 年前三季度亏损达 5.12 亿美元,智谱 AI 同期净利润亏损 23.58 亿元。", 2)
REVENUE = chunk("若以 2025 年预计 10 亿元营收计算,其市销率(P/S)约为 25 倍。", 3)
GAP = chunk("斯坦福大学《2025 人工智能指数报告》显示,中美顶级大模型的性能差距已从 2023 年的 17.5% 骤缩至 0.3%。", 4)
PASSAGES = [STEP3, MINIMAX, REVENUE, GAP]


def kept(answer: str, english: bool = False) -> list[str]:
    return [c.text for c in verify(answer, PASSAGES, english=english).claims]


@pytest.mark.parametrize(
    "answer",
    [
        "阶跃星辰的总部位于北京 [1]。",  # a place no passage names
        "Step-3 的训练数据一共有 321B token [1]。",  # a real number reused for the wrong thing
        "阶跃星辰 2024 年营收预计为 10 亿元 [3]。",  # a 2025 figure moved to 2024
        "MiniMax 2025 年前三季度亏损 5.21 亿美元 [2]。",  # a wrong digit
        "中美差距骄缩至 3% [4]。",  # an altered character and number
    ],
)
def test_unsupported_claims_are_dropped(answer: str):
    verdict = verify(answer, PASSAGES)
    assert verdict.claims == [] and verdict.dropped


@pytest.mark.parametrize(
    ("answer", "passage"),
    [
        ("Step-3 每次推理仅激活 38B 参数 [1]。", 1),
        ("MiniMax 2025 年前三季度亏损达 5.12 亿美元 [2]。", 2),
        ("阶跃星辰 2025 年预计营收 10 亿元 [3]。", 3),
        ("性能差距已从 17.5% 骤缩至 0.3% [4]", 4),
        ("321B [1]", 1),
    ],
)
def test_supported_claims_keep_their_citation_and_get_a_quote(answer: str, passage: int):
    [claim] = verify(answer, PASSAGES).claims
    assert claim.passages == (passage,)
    assert claim.quotes[0] in PASSAGES[passage - 1].text


def test_a_wrong_marker_is_moved_to_the_passage_that_supports_the_sentence():
    [claim] = verify("MiniMax 2025 年前三季度亏损 5.12 亿美元 [1]。", PASSAGES).claims
    assert claim.passages == (2,)


def test_out_of_range_and_missing_markers():
    [claim] = verify("每次推理仅激活 38B 参数 [7]。", PASSAGES).claims
    assert claim.passages == (1,)
    [claim] = verify("每次推理仅激活 38B 参数。", PASSAGES).claims
    assert claim.passages == (1,)


def test_marker_variants_are_normalised():
    assert (
        normalize_markers("激活 38B [编号1]，亏损【2】，另见 [1, 3] 与 [资料4]")
        == "激活 38B [1]，亏损[2]，另见 [1][3] 与 [4]"
    )
    assert split_claims("321B。[1] 38B [2]。") == [("321B。", [1]), ("38B。", [2])]


def test_only_the_supported_sentence_survives():
    verdict = verify("Step-3 总参数量达 321B [1]。它的总部位于上海 [1]。", PASSAGES)
    assert [c.text for c in verdict.claims] == ["Step-3 总参数量达 321B。"]
    assert verdict.dropped == ["它的总部位于上海。"]


def test_numbers_compare_by_value_across_units():
    assert numbers_supported("5billion", "超50亿元人民币")
    assert numbers_supported("42million", "装机超4200万台")
    assert not numbers_supported("10%", "超10亿元")
    assert not numbers_supported("2024年", "2025年预计")
    assert numbers_supported("200-300亿元", "投后估值或达200-300亿元")


def test_english_answers_are_checked_by_numbers_and_codes():
    assert kept("Step-3 has 321B parameters in total and activates 38B per inference [1].", english=True)
    assert not kept("Step-3 has 320B parameters in total [1].", english=True)
    assert not kept("It needs an INT4 build [1].", english=True)


def test_the_qa_rule_refuses_a_bare_number_that_answers_another_question():
    # the mechanism (qa_*), at the cut-offs before calibration: on the calibration sets it prevented no wrong
    # answer that the other checks let through, so the defaults leave it off (docs/calibration.md)
    strict = VerifyPolicy(min_qa_nouns=0.5, min_qa_content=0.3)
    asked_other = verify("321B [1]", PASSAGES, question="Step-3 的训练语料有多少条？", policy=strict)
    assert asked_other.claims == []
    asked_this = verify("321B [1]", PASSAGES, question="Step-3 的总参数量是多少？", policy=strict)
    assert [c.passages for c in asked_this.claims] == [(1,)]


def test_questions_about_things_the_passages_never_mention_are_not_grounded():
    strict = VerifyPolicy(min_grounding_nouns=0.5, min_grounding_content=0.3)  # the mechanism, at stricter cut-offs
    assert grounded("Step-3 模型的总参数量是多少？", PASSAGES, strict)
    assert grounded("MiniMax 前三季度亏损多少？", PASSAGES, strict)
    assert not grounded("阶跃星辰的办公楼位于哪座城市？", PASSAGES, strict)
    assert not grounded("Step-3 的推理延迟有多长？", PASSAGES, strict)


def test_the_right_number_under_the_wrong_label_does_not_answer_the_question():
    answer = "MiniMax 2025 年的营收为 5.12 亿美元 [2]。"  # the passage gives a loss, not revenue
    decision = after_model(answer, verify(answer, PASSAGES, question="MiniMax 2025 年营收多少？"))
    assert decision.refused and decision.reason == NOT_COVERED


def test_a_name_from_nowhere_is_never_supported():
    verdict = verify("Step-3 每次推理仅激活 38B 参数，由 OpenAI 训练 [1]。", PASSAGES)
    assert not verdict.claims and verdict.report[0]["failed"] == "name OpenAI"


# -- the prompt's passages and the checks before the model -------------------------------------------

PROMPT_SOURCE = [
    "阶跃星辰成立于 2023 年。公司总部在上海。创始人兼 CEO 姜大昕曾任微软全球副总裁。他负责公司战略。团队超过 400 人。",
    "Step-3 的总参数量达 321B。每次推理仅激活 38B 参数。",
    "印奇是旷视科技创始人。",
]


def test_the_prompt_carries_the_best_sentence_its_neighbours_and_keeps_the_passage_numbers():
    from assistant.answering.extract import prompt_passages

    chunks = [chunk(text, n) for n, text in enumerate(PROMPT_SOURCE, start=1)]
    prompt = prompt_passages(chunks, "姜大昕曾任什么职务？", weight=lambda t: 1.0, budget=60)
    assert prompt.startswith("[1] 公司总部在上海。创始人兼 CEO 姜大昕曾任微软全球副总裁。他负责公司战略。"), prompt
    assert "成立于" not in prompt and "团队" not in prompt, "sentences without a keyword stay out"
    assert "[3]" not in prompt and "印奇" not in prompt, "a passage with nothing chosen is left out, numbers kept"
    whole = prompt_passages(chunks, "姜大昕曾任什么职务？", weight=lambda t: 1.0, budget=None)
    assert whole.startswith(f"[1] {PROMPT_SOURCE[0]}") and len(whole) > 2 * len(prompt), (
        "the earlier whole-passage prompt"
    )
    gap = prompt_passages(chunks, "成立于 团队", weight=lambda t: 1.0, budget=200)
    assert gap == "[1] 阶跃星辰成立于 2023 年。公司总部在上海。…团队超过 400 人。", "… marks left-out sentences"


def test_an_english_question_over_chinese_passages_is_not_refused_for_sharing_no_keyword():
    from verdicts import before_model

    from assistant.checks.decide import VerifyPolicy
    from assistant.types import Hit

    hits = [Hit(chunk(text, n), n, 1.0, dense_score=0.8, dense_rank=n) for n, text in enumerate(PROMPT_SOURCE, start=1)]
    assert not before_model("Who is the CEO of StepFun?", hits, VerifyPolicy(), english=True).refused
    assert before_model("阶跃星辰的 CEO 是谁？", hits, VerifyPolicy(), english=False).reason == "no_match", (
        "the same passages found only by the embedding, for a question in their own language: no keyword, no answer"
    )


def test_an_english_claim_keeping_a_chinese_name_must_find_it_in_the_passage():
    from assistant.checks.verify import score_claims

    passage = [chunk("CTO 朱亦博则是国内少有的具备万卡集群建设经验的专家。")]
    right, wrong = (score_claims(f"The CTO is {name} [1].", passage, english=True)[0] for name in ("朱亦博", "姜大昕"))
    assert right.checks[0].cross and "codes" not in right.checks[0].failed
    assert "codes" in wrong.checks[0].failed, (
        "a name the passage does not hold is never supported, whatever the similarity"
    )


def test_the_prompt_holds_a_sentence_for_each_keyword_the_best_one_lacks_whatever_the_budget():
    from assistant.answering.extract import prompt_passages

    chunks = [chunk(text, n) for n, text in enumerate(PROMPT_SOURCE, start=1)]
    prompt = prompt_passages(chunks, "姜大昕 38B", weight=lambda t: 1.0, budget=10)
    assert "[1] 创始人兼 CEO 姜大昕曾任微软全球副总裁。" in prompt and "[2] 每次推理仅激活 38B 参数。" in prompt, prompt
    assert "公司总部" not in prompt and "321B" not in prompt, "neighbours and the rest only within the budget"
