"""Follow-up: a Chinese question that leans on a pronoun, made standalone by rule, without a model call.

他/她 becomes the most recent person the user named in an earlier turn, or, when that turn asked 谁
about a role ("这家公司的 CTO 是谁？"), the role itself; 它/该公司/这家公司/该模型 becomes the most
recent topic the user asked about (the noun phrase a turn opens with: "智谱 AI", "Step-3").
Recency decides between several candidates, as readers do. What rules cannot resolve (那…呢, an
ellipsis, English) is left to `answer`'s condense model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.text import QUESTION_WORDS

PERSON = re.compile(r"(?<![其])(他|她)(?!们)")
THING = re.compile(r"它(?!们)|该公司|这家公司|此公司|该企业|这家企业|该模型|这个模型|这款模型|该产品")
_PERSON_TAGS = {"nr", "nrfg", "nrt"}
_ROLE = re.compile(r"^(.{2,30}?)(?:是|叫|为)?(?:谁|哪位|什么人)")


def resolve(question: str, history: Sequence[str]) -> str | None:
    """`question` with its pronoun replaced by what it refers to, or None when rules cannot tell."""
    if m := PERSON.search(question):
        target = _last(history, _person)
    elif m := THING.search(question):
        target = _last(history, topic)
    else:
        return None
    if not target or target in question:
        return None
    return question[: m.start()] + target + question[m.end() :]


def _last(history: Sequence[str], find: object) -> str | None:
    for turn in reversed(history):
        if found := find(turn):  # type: ignore[operator]
            return str(found)
    return None


def _person(turn: str) -> str | None:
    """The last person named in `turn`, or the role a 谁-question asks about."""
    names = [w for w, flag in _tagged(turn) if flag in _PERSON_TAGS and len(w) >= 2]
    if names:
        return names[-1]
    if m := _ROLE.search(turn.strip()):
        return m.group(1).strip(" ，,的")
    return None


def topic(turn: str) -> str | None:
    """The turn's topic: the noun phrase it opens with ("智谱 AI", "Step-3", "阶跃星辰"), as written."""
    phrase: list[str] = []
    for word, flag in _tagged(turn.strip()):
        if flag[0] in "n" or flag == "eng" or (phrase and flag == "x" and re.fullmatch(r"[\w .-]+", word)):
            phrase.append(word)
        else:
            break
    found = "".join(phrase).strip(" -.")
    return found if len(found) >= 2 and not QUESTION_WORDS.fullmatch(found) else None


def _tagged(text: str) -> list[tuple[str, str]]:
    import jieba.posseg as pseg  # its tables cost ~0.4 s to import: only when a follow-up needs them

    return [(p.word, p.flag) for p in pseg.cut(text)]
