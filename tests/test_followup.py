"""Pronoun follow-ups resolved by rule, without a model call; what rules cannot tell goes to the model."""

import pytest

from assistant.answering.followup import resolve


@pytest.mark.parametrize(
    ("question", "history", "expected"),
    [
        ("他有什么经验？", ["阶跃星辰的 CTO 是谁？"], "阶跃星辰的 CTO有什么经验？"),
        (
            "他的加入补齐了什么？",
            ["阶跃星辰的 CEO 是谁？", "印奇是谁？"],
            "印奇的加入补齐了什么？",
        ),  # the latest person
        ("她获得了什么奖？", ["张三和李四谁更年轻？", "李四在哪里工作？"], "李四获得了什么奖？"),
        ("它每次推理激活多少参数？", ["Step-3 用了什么架构？"], "Step-3每次推理激活多少参数？"),
        ("该公司估值多少？", ["MiniMax 亏损多少？", "智谱 AI 的营收呢？"], "智谱 AI估值多少？"),
        (
            "它的估值是多少？",
            ["阶跃星辰的 CTO 是谁？", "他有什么经验？"],
            "阶跃星辰估值是多少？"[:0] + "阶跃星辰的估值是多少？",
        ),
    ],
)
def test_pronouns_resolve_to_the_latest_fitting_mention(question: str, history: list[str], expected: str):
    assert resolve(question, history) == expected


@pytest.mark.parametrize(
    ("question", "history"),
    [
        ("那 MiniMax 呢？", ["阶跃星辰融资多少？"]),
        ("他们是谁？", ["创始团队有几人？"]),
        ("What about it?", ["Step-3?"]),
    ],
)
def test_what_rules_cannot_tell_is_left_to_the_model(question: str, history: list[str]):
    assert resolve(question, history) is None
