"""Parts: a question in several parts ("融资多少，投资方是谁？", "How much was raised, and from whom?") split into
questions that each stand alone, answered one by one and joined into one answer.

`split` cuts by rule where the grammar shows the parts: clauses that each ask something, joined by a comma,
a semicolon or a conjunction (，；和 以及 另外 / "and", ";"), and "A 和 B 分别是多少" (one predicate over a list).
A part the rule leaves without its own subject ("from whom", "and when?") is marked `elliptical`: `answer`
then asks the model once to write the parts out (`prompts.SPLIT_*`), and keeps its split only when it is
a short list of questions. `join` numbers the parts' citations in one sequence (a passage two parts cite
with the same quote keeps one number) and names each part the text does not answer ("文章没有提到“…”。"),
so nothing asked is silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from assistant.answering.compose import Citations, renumber
from assistant.answering.followup import topic
from assistant.checks.premise import names
from assistant.text import REFERS_BACK
from assistant.types import Answer

# 几 asks unless it is "a few" (这几年, 20几所, 几千年) or part of a word (几乎, 几何); nor do 多伦多大学, 许多高校.
ASKS_ZH = re.compile(
    r"什么|多少|多大(?!学)|多久|多长|多高(?!校)|多远|多快|哪|谁|(?<![这那近\d])几(?![乎何千百万十])|怎么|怎样|如何|为何|为什么"
    r"|何时|何地|何处|何种|何人|何年|是否|吗|呢"
)
# A clause that ends on a bare copula or naming verb asks for what would follow it ("辅助港为，…", "它又称为？").
# Not 认为/成为/作为/因为/以为/行为 (words of their own), nor 是 closing a connective or a topic ("但是，",
# "于是，", "问题是，", "特别的是，"); and only after a subject of a few characters.
CLOZE_ZH = re.compile(r"..(?:(?<![认成作因以行])为|(?<![的但于还就只或若要总正也可却题思键])是|叫|叫做|称作|指)[？?]?$")
# A clause opening on 并/而/且/即/又 goes on with the one before ("…运作，并每隔…", "几何光学，又称为什么").
GOES_ON_ZH = re.compile(r"^(?:并|而|且|即|又)")
ASKS_EN = re.compile(r"\b(what|who|whom|whose|which|when|where|why|how|is|are|was|were|did|does|do|can)\b", re.I)
WH_EN = re.compile(
    r"^\s*(?:(?:and|also|then)\s+)?(?:from|to|with|by|for|in|of|at)?\s*(what|who|whom|whose|which|when|where|why|how)\b",
    re.I,
)
PRONOUN_EN = re.compile(r"\b(he|she|it|they|him|her|his|its|their|them)\b", re.I)
CUT_ZH = re.compile(r"[，,；;]\s*|(?<=[？?])\s*|(?:另外|以及|并且|还有|同时|此外)")
AND_ZH = re.compile(r"(?<=[\u4e00-\u9fff\w])(?:和|与|及)(?=[\u4e00-\u9fff\w])")
CUT_EN = re.compile(
    r"\s*[;?]\s+|\s*,?\s+and\s+(?=(?:from|to|with|by|for|in|of|at)?\s*(?:what|who|whom|whose|which|when|where|why|how)\b)",
    re.I,
)
SEVERAL = re.compile(r"^(?P<head>.*?)(?P<items>[^，,。的]+?(?:[和与及、][^，,。的和与及、]+)+)分别(?P<rest>.+)$")
MOST_PARTS = 4


@dataclass(frozen=True)
class Split:
    parts: list[str]
    elliptical: bool = False  # some part lacks its own subject: worth one model call to write the parts out


def split(question: str) -> Split:
    """`question`'s parts by rule (one part when the grammar shows none)."""
    q = question.strip()
    english = not re.search(r"[\u4e00-\u9fff]", q) or bool(re.match(r"^[A-Za-z]", q)) and not ASKS_ZH.search(q)
    if not english and (m := SEVERAL.match(q.rstrip("？?"))):
        items = [i for i in re.split(r"[和与及、]", m["items"]) if i.strip()]
        inside_title = m["head"].count("《") != m["head"].count("》")
        if 2 <= len(items) <= MOST_PARTS and not inside_title and not ASKS_ZH.search(m["items"]):
            return Split([f"{m['head']}{i.strip()}{m['rest']}？" for i in items])
    if english:
        pieces = [p.strip(" ,") for p in CUT_EN.split(q) if p and p.strip(" ,?")]
        asks = [p for p in pieces if ASKS_EN.search(p)]
        if len(pieces) < 2 or len(asks) != len(pieces) or len(pieces) > MOST_PARTS:
            return Split([question])
        parts = [p if p.endswith("?") else p + "?" for p in pieces]
        parts = [parts[0][0].upper() + parts[0][1:], *parts[1:]]
        elliptical = any((WH_EN.match(p) and len(p.split()) <= 3) or PRONOUN_EN.search(p) for p in pieces[1:])
        return Split(parts, elliptical)
    pieces = [p.strip() for p in CUT_ZH.split(q) if p and p.strip("？? ")]
    pieces = _clauses([s for p in pieces for s in _at_and(p)])
    if len(pieces) < 2 or len(pieces) > MOST_PARTS:
        return Split([question])
    pieces = [pieces[0], *(GOES_ON_ZH.sub("", p) or p for p in pieces[1:])]  # "而估值是多少" asks "估值是多少"
    parts = [p if p.endswith(("？", "?")) else p + "？" for p in pieces]
    if (subject := topic(parts[0])) and names(subject):  # "Step-3 的参数量是多少，激活参数是多少？": later parts too
        parts = [parts[0], *(p if names(p) or REFERS_BACK.search(p) else _with_subject(subject, p) for p in parts[1:])]
    elliptical = any(len(ASKS_ZH.sub("", p).strip("？? ")) <= 1 for p in pieces[1:])
    return Split(parts, elliptical)


def _clauses(pieces: list[str]) -> list[str]:
    """The pieces grouped into clauses that each ask: a piece that asks nothing ("在台风侵袭后") is context for
    the question after it (or, last, for the one before), not a part of its own; a piece that goes on with the
    clause before it (`GOES_ON_ZH`) stays in that clause."""
    clauses: list[str] = []
    context = ""
    for piece in pieces:
        if clauses and not context and GOES_ON_ZH.match(piece) and not _asks(piece):
            clauses[-1] = clauses[-1].rstrip("？?") + "，" + piece
        elif _asks(piece):
            clauses.append(context + piece)
            context = ""
        else:
            context += piece + "，"
    if context and clauses:
        clauses[-1] = clauses[-1].rstrip("？?") + "，" + context.rstrip("，")
    return clauses


def _with_subject(subject: str, part: str) -> str:
    """ "Step-3" + "激活参数是多少？" -> "Step-3的激活参数是多少？"; + "在哪里运行？" -> "Step-3在哪里运行？"."""
    verb_first = re.match(r"(?:在|于|是|有|从|被|由|能|会|可以|要|将|已|曾|还)", part)
    return f"{subject}{'' if verb_first else '的'}{part}"


def _asks(piece: str) -> bool:
    return bool(ASKS_ZH.search(piece) or CLOZE_ZH.search(piece))


def asks(question: str) -> bool:
    """The text asks something: a question word (Chinese or English) or a question mark."""
    return bool(ASKS_ZH.search(question) or ASKS_EN.search(question) or re.search(r"[？?]", question))


def _at_and(piece: str) -> list[str]:
    """ "融资额是多少和投资方是谁" -> both clauses; "百度和阿里的估值是多少" stays whole (one clause asks)."""
    halves = AND_ZH.split(piece, maxsplit=1)
    if len(halves) == 2 and all(ASKS_ZH.search(h) for h in halves):
        return halves
    return [piece]


def parse_split(text: str, original: Sequence[str]) -> list[str]:
    """The model's parts (one question a line), or `original` when its reply is not a short list of questions."""
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)、])\s*", "", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    asks = [line for line in lines if ASKS_ZH.search(line) or ASKS_EN.search(line) or line.endswith(("?", "？"))]
    if len(original) <= len(lines) == len(asks) <= MOST_PARTS:
        return lines
    return list(original)


def join(question: str, parts: Sequence[str], answers: Sequence[Answer], *, english: bool, total_s: float) -> Answer:
    """One answer from the parts' answers: their texts in order with the citations numbered in one sequence,
    and each part without a cited answer named as not in the text."""
    cited = [(p, a) for p, a in zip(parts, answers, strict=True) if a.citations]
    if not cited:  # nothing any part can cite: one refusal, the first part's reason and related passages
        first = answers[0]
        detail = "; ".join(f"{p} ({a.refusal_reason})" for p, a in zip(parts, answers, strict=True))
        return replace(first, question=question, refusal_detail=detail, timings={"total_s": total_s})
    texts: list[str] = []
    citations = Citations()
    for part, answer in zip(parts, answers, strict=True):
        if not answer.citations:
            missing = part.rstrip("？?")
            texts.append(f"The article does not say: {missing}?" if english else f"文章没有提到“{missing}”。")
            continue
        # this part's marker -> the joined answer's: a passage an earlier part cites keeps its number
        texts.append(renumber(answer.answer, {c.n: citations.carry(c) for c in answer.citations}))
    answered = [a for _, a in cited if not a.refused]
    timings = {"total_s": total_s}
    for a in answers:
        for key, value in a.timings.items():
            if key != "total_s":
                timings[key] = timings.get(key, 0.0) + value
    verification = tuple(row for a in answers for row in a.verification)
    text, models = "\n".join(texts), answers[0].models
    if answered:
        return Answer.answered(question, text, citations.all, timings=timings, models=models, verification=verification)
    # only corrections: the question's premise is wrong
    detail = "; ".join(f"{p}: {a.refusal_reason}" for p, a in zip(parts, answers, strict=True))
    return Answer.refusal(
        question, text, reason=cited[0][1].refusal_reason, detail=detail, citations=citations.all, timings=timings,
        models=models, verification=verification,
    )  # fmt: skip
