"""Question: what a question asks, read from its words: the constraints an answer's passage must meet
and the kind of answer it wants.

Constraints are the parts that pick one fact out of its neighbours: numbers and years ("2024 年"),
ordinals ("第七届"), distinguishing qualifiers ("女子", "首日", "下半年") and names. The answer kind
comes from the question word: 多少/几 + a measure word ("多少人次") wants a quantity in that unit,
哪一年/哪天 a date, 谁 a person or organisation. `verify` checks both; this module only reads questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.text import squash

# Words that tell two neighbouring facts apart: when a question has one, its passage must have it too.
QUALIFIERS = (
    "男子", "女子", "男性", "女性", "男单", "女单", "男双", "女双", "混双", "上半年", "下半年", "首日", "首周", "首届",
    "次日", "上游", "下游", "东部", "西部", "南部", "北部", "最大", "最小", "最高", "最低", "最早", "最晚", "最长",
    "最短", "最多", "最少", "最快", "最慢", "最后", "前者", "后者", "季度", "年底", "年初",
)  # fmt: skip
_CN_NUMERAL = "零〇一二两三四五六七八九十百千"
ORDINAL = re.compile(rf"第\s*([{_CN_NUMERAL}]{{1,4}}|\d{{1,4}})\s*([^\W\d{_CN_NUMERAL}])")
# 多少/几 followed by a measure word or unit ("多少人次", "几台", "多少亿元", "百分之多少").
QUANTITY = re.compile(
    r"(多少|几(?!乎|何|率|内亚))(?:个)?\s*(人次|人|台|家|款|座|辆|架|名|位|所|种|次|年|天|个月|月|小时|分钟|亿元|万元|亿|万|元|美元|米|公里|平方公里|公顷|吨|倍|%)?"
)
PERCENT = re.compile(r"百分之多少|百分比|占比|比例是多少|比重")
DATE_ASKED = re.compile(r"哪一?年|哪一?天|几月|几号|哪个月|哪一个月|什么日期|何年|哪日|何日|什么时间")
WHO_ASKED = re.compile(r"谁|哪位|哪一位|哪个人|哪家|哪一家|什么人|哪个(公司|机构|组织|团队|国家)")
DATE_WORDS = re.compile(
    r"\d{4}\s*[-/.]\s*\d{1,2}|\d{1,4}\s*(年|月|日|号)|[一二三四五六七八九十〇零]+\s*(年|月|日)|世纪|年代|朝|时期|初|末|间"
)
# Units of the same kind a question's unit may be answered in (亿元 asked, 50 亿元 or 5 billion yuan given).
UNIT_FAMILY = {
    "亿元": ("亿", "元"),
    "万元": ("万", "元"),
    "亿": ("亿",),
    "万": ("万",),
    "元": ("元",),
    "%": ("%", "百分"),
}


@dataclass(frozen=True)
class Asked:
    """What the question asks, in the passages' language."""

    numbers: tuple[str, ...]  # digits the answer's passage must hold ("2024", "7")
    ordinals: tuple[str, ...]  # "第七届" as written; its number may be in digits in the passage
    qualifiers: tuple[str, ...]
    kind: str  # "quantity", "date", "who", or "" (anything)
    unit: str  # the measure word of a quantity ("人次"), "" when none is named


def read(question: str) -> Asked:
    q = squash(question)
    quantity = QUANTITY.search(q)
    kind = "quantity" if quantity or PERCENT.search(q) else ""
    kind = kind or ("date" if DATE_ASKED.search(q) else "who" if WHO_ASKED.search(q) else "")
    unit = "%" if PERCENT.search(q) else (quantity.group(2) or "") if quantity else ""
    ordinals = tuple(m.group() for m in ORDINAL.finditer(q))
    plain = ORDINAL.sub(" ", q)
    return Asked(
        numbers=tuple(re.findall(r"\d+(?:\.\d+)?", plain)),
        ordinals=ordinals,
        qualifiers=tuple(w for w in QUALIFIERS if w in q),
        kind=kind,
        unit=unit,
    )


def unmet_constraints(asked: Asked, context: str) -> list[str]:
    """The question's constraints that the (squashed) passage context does not hold."""
    missing = [n for n in asked.numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", context)]
    missing += [o for o in asked.ordinals if not _ordinal_in(o, context)]
    missing += [w for w in asked.qualifiers if w not in context]
    return missing


def answer_kind_ok(asked: Asked, claim: str, question: str) -> bool:
    """The claim gives the kind of answer asked: a quantity (in the unit asked), a date, a name."""
    text = squash(claim)
    if asked.kind == "quantity":
        if not re.search(rf"\d|[{_CN_NUMERAL}]|半|几|数", text):
            return False
        return not asked.unit or any(u in text for u in UNIT_FAMILY.get(asked.unit, (asked.unit,)))
    if asked.kind == "date":
        return bool(DATE_WORDS.search(text))
    if asked.kind == "who":  # something the question did not already say
        new = set(text) - set(squash(question)) - set("的了是在为和与及也都而就被把对从以之其这那有个着过将。，,.")
        return len(new) >= 2
    return True


def _ordinal_in(ordinal: str, context: str) -> bool:
    """ "第七届" in the context, or the same ordinal in digits ("第7届")."""
    if ordinal in context:
        return True
    m = ORDINAL.fullmatch(ordinal)
    if not m:
        return False
    value = chinese_to_int(m.group(1))
    return value is not None and re.search(rf"第\s*{value}\s*{re.escape(m.group(2))}", context) is not None


def chinese_to_int(text: str) -> int | None:
    """ "7", "七", "十七", "二十一", "一百零五" -> int; None for what is not a plain numeral."""
    if text.isdigit():
        return int(text)
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
    total, current = 0, 0
    for c in text:
        if c in digits:
            current = digits[c]
        elif c in "十百千":
            total += (current or 1) * {"十": 10, "百": 100, "千": 1000}[c]
            current = 0
        else:
            return None
    return total + current
