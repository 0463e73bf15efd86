"""Document: questions about a document as a whole, answered from the document itself.

Retrieval ranks passages for a fact; a question about the whole ("这篇文章主要讲了什么？", "Summarize the
article", "结语说了什么？", "Who wrote it?") matches no passage best, so it is recognised first (`classify`) and
answered from the document's `Outline`: its card, its sections in order, and each section's sentences
(deduplicated across overlapping chunks, each with the chunk to cite). `select` picks what answers the kind asked:

- `main_point`: the lede (the body's first sentence: news puts its point first) and the conclusion's topic
  sentence, or without a conclusion the sentence most central to the whole text;
- `summary`: the lede, then each section's topic sentence (its first that stands on its own), in order;
- `structure`: each section's heading with its first sentence;
- `section` (by name, or the conclusion: a heading such as 结语, else the last section): its first sentence and
  its most central one;
- `author`, `outlet`, `date`, `title`: the card's metadata item.

A sentence's centrality is the cosine between its character bigrams and its section's (or the document's):
the sentence sharing most with the whole says what the whole is about (the classic centroid summariser,
with no model). Every sentence chosen is a verbatim span of a passage, so `answer` verifies and cites it like
any claim. The outline is read from the chunks the index stores (`HybridRetriever.chunks`), so it is rebuilt
whenever the document is re-indexed and costs a few milliseconds per document.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.index.outline import Outline, Section, Sentence
from assistant.text import squash

# What each kind of question about the whole document says (Chinese and English).
KINDS = {
    "author": r"作者|谁写|撰写|撰文|署名|记者|author|who wrote|written by|writer|byline",
    "outlet": r"哪家媒体|什么媒体|哪个媒体|媒体|刊登|刊发|刊载|出处|来源|outlet|publication|publisher|source|"
    r"which (site|website|newspaper|media)|where (was|is) (it|this|the)\b.*publish",
    "date": r"发表|发布|刊出|写于|published|written|come out|came out|appear(ed)?|publication date|dated",
    "title": r"(?<!小)标题|题目|题为|headline|title|called",
    "conclusion": r"结语|结论|结尾|收尾|最后(一|1)?(部分|节|段)|conclu\w*|ending|final (section|part|paragraph)|"
    r"closing",
    "structure": r"结构|分(为|成)|几(个)?部分|哪(些|几)(个)?部分|小标题|章节|框架|脉络|structure\w*|sections?|parts|"
    r"organi[sz]ed|headings|outline",
    "summary": r"总结|概括|概述|摘要|综述|简介|归纳|梳理|复述|summar\w*|overview|recap|tl;? ?dr|brief\w*",
    "main_point": r"主要(讲|说|写|谈|论|内容|观点|意思|论点|信息)\w{0,2}|(讲|说|写|谈|报道)(了|的是)?(些)?什么|"
    r"主旨|要点|重点|核心(观点|内容|意思|论点)?|中心(思想|意思)|大意|主题|观点|"
    r"main (point|idea|argument|message|takeaway|claim|thesis)s?|key (point|takeaway|message)s?|gist|"
    r"central (idea|claim|argument)|thesis|about",
}
KIND_WORDS = {kind: re.compile(pattern, re.I) for kind, pattern in KINDS.items()}
DOCUMENT = re.compile(
    r"这篇|本篇|该篇|那篇|文章|本文|全文|原文|该文|此文|这则|报道|稿件|稿子|"
    r"\b(the|this|that)\s+(article|text|piece|story|report|document|essay|post)\b|\barticle\b",
    re.I,
)
# What may stand around the kind words in a question about the whole (anything more is a question about a fact).
FILLER = re.compile(
    r"[一二三四五两几\d]+\s*(句话?|段话?|点|条|个要点)|简要|简单|简短|扼要|一下|请|帮我|给我|用|能|可以|怎样|怎么样|"
    r"什么时候|何时|哪天|哪一天|哪里|哪儿|什么|哪些|哪|谁|是|的|了|吗|呢|吧|个|有|中|里|在|于|上|说|讲|写|这|那|该|本|此|"
    r"部分|一节|节|段|内容|最后|最终|得出|得到|给出|"
    r"\b(what|what's|whats|who|whom|when|where|which|how|is|was|are|were|the|a|an|of|this|that|it|its|it's|in|on|"
    r"me|please|can|could|would|you|give|tell|say|says|said|does|do|did|by|for|and|or|to|briefly|short|few|some|"
    r"sentences?|words?|lines?|paragraphs?|one|two|three|four|five|main|points?)\b|\d+",
    re.I,
)
PUNCTUATION = re.compile(r"[\W_]+")
LEANS_BACK = re.compile(r"[他她它其]|\b(he|she|they|him|his|her|their|them)\b", re.I)
WHEN = re.compile(r"什么时候|何时|哪天|哪一天|哪年|几月|几号|日期|时间|\b(when|date|day|year)\b", re.I)
MEDIA = re.compile(r"媒体|刊登|刊发|刊载|哪个网站|outlet|publication|publisher|newspaper|website", re.I)
METADATA = {"author": "byline", "outlet": "outlet", "title": "title", "date": "date"}  # kind: card item
CONCLUSION_HEADINGS = re.compile(r"结语|结论|结尾|尾声|总结|conclusion|closing", re.I)
# a sentence that leans on the one before it ("同时,他…", "但…") or asks something does not stand for the whole
LEANS = re.compile(
    r"^(同时|但|而|并|且|此外|另外|因此|所以|然而|不过|对此|其中|这|那|该|其|此|他|她|它|also|but|and|however|this|these|it)|.*[？?]$",
    re.I,
)
SUMMARY_SENTENCES = 6  # the lede and the topic sentences of up to five sections


@dataclass(frozen=True)
class Asked:
    """A question about the whole document: its kind (a key of KINDS, or "section") and, for a section, its
    heading ("" for the conclusion when no heading names it)."""

    kind: str
    section: str = ""
    source: str = ""  # the document the question names ("": the conversation's, or the best-matching one)


def classify(question: str, documents: Sequence[Outline] = ()) -> Asked | None:
    """The kind of whole-document question `question` is, or None for a question about a fact.

    A kind's words must be all the question says beyond filler and words naming the document ("这篇文章主要
    讲了什么？", "Who wrote this article?"), so "文章中融资的日期是？" and "What does the article say about
    Step-3?" stay questions about a fact. What else it says may name one of `documents` by its title
    ("阶跃星辰那篇文章讲了什么"), or a section by its heading ("赛道洗牌这部分讲了什么"): `Asked.source` is then set."""
    q = question.strip()
    if LEANS_BACK.search(q) and not DOCUMENT.search(
        q
    ):  # "它发布了什么？", "他的观点是什么？": a follow-up about a fact
        return None
    for outline in documents:
        for heading in sorted((h for h in outline.headings if len(h) >= 2 and h in q), key=len, reverse=True):
            rest = _residue(q.replace(heading, " "), "main_point", "summary", "conclusion")
            if rest is not None and (not rest or _names(rest, outline)):
                return Asked("section", heading, outline.source)
    # metadata: "发表在哪家媒体" holds the words of two kinds; the place, the person or the title is what is asked
    if _residue(q, *METADATA) == "":
        kind = next(kind for kind in METADATA if KIND_WORDS[kind].search(q))
        # "谁发布的？" asks who, not when; "来源是什么？" may be a fact's source: these need the words that say so
        if (kind == "date" and WHEN.search(q)) or (kind == "outlet" and (MEDIA.search(q) or DOCUMENT.search(q))):
            return Asked(kind)
        if kind in ("author", "title"):
            return Asked(kind)
        return None
    for kind in ("conclusion", "structure", "summary", "main_point"):
        rest = _residue(q, kind)
        if rest == "":
            return Asked(kind)
        if rest and DOCUMENT.search(q) and (named := [o for o in documents if _names(rest, o)]):
            return Asked(kind, "", named[0].source)
    return None


def _names(rest: str, outline: Outline) -> bool:
    """`rest` (what a question says beyond its kind) is words of the document's title ("阶跃星辰")."""
    title = PUNCTUATION.sub("", squash(outline.title))  # as the question's rest is read: "阿尔·戈尔" is 阿尔戈尔
    return len(rest) >= 2 and all(b in title for b in _bigrams(rest))


def _residue(question: str, *kinds: str) -> str | None:
    """What `question` says beyond the words of `kinds`, the words naming the document and filler
    (None when it holds none of the kinds' words); "" (one character left counts as none) means it asks only that."""
    if not any(KIND_WORDS[k].search(question) for k in kinds):
        return None
    rest = question
    for kind in kinds:
        rest = KIND_WORDS[kind].sub(" ", rest)
    rest = FILLER.sub(" ", DOCUMENT.sub(" ", rest))
    rest = PUNCTUATION.sub("", rest)
    return "" if len(rest) <= 1 else rest


def select(outline: Outline, asked: Asked) -> list[Sentence]:
    """The sentences that answer `asked` from `outline`, in document order (empty when it has none)."""
    sections = outline.sections
    if not sections:
        return []
    lede = sections[0].sentences[0]
    if asked.kind == "main_point":  # the lede and what the conclusion (or, without one, the whole) comes to
        ending = _section(outline, Asked("conclusion"))
        closing = _topic(ending) if ending is not None and CONCLUSION_HEADINGS.search(ending.heading) else None
        everything = [s for section in sections for s in section.sentences]
        return _in_order([lede, *([closing] if closing else _central(everything, 1, exclude=lede))])
    if asked.kind == "summary":  # the lede and each section's topic sentence (the most central ones if many)
        topics = [t for section in sections[1:] if (t := _topic(section))]
        if len(topics) >= SUMMARY_SENTENCES:
            topics = _central(topics, SUMMARY_SENTENCES - 1)
        return _in_order([lede, *topics] if topics else [lede, *_central(list(sections[0].sentences), 2, lede)])
    if asked.kind == "structure":
        return [section.sentences[0] for section in sections]
    if asked.kind in ("section", "conclusion"):
        section = _section(outline, asked)
        if section is None:
            return []
        first = section.sentences[0]
        return _in_order([first, *_central(list(section.sentences), 1, exclude=first)])
    return []


def _section(outline: Outline, asked: Asked) -> Section | None:
    if asked.section:
        return next((s for s in outline.sections if s.heading == asked.section), None)
    named = [s for s in outline.sections if CONCLUSION_HEADINGS.search(s.heading)]
    return named[-1] if named else (outline.sections[-1] if len(outline.sections) > 1 else None)


def _topic(section: Section) -> Sentence | None:
    """The section's topic sentence: its first that stands on its own, else its most central one."""
    first = section.sentences[0]
    if len(first.text) >= 10 and not LEANS.match(first.text):
        return first
    return next(iter(_central(list(section.sentences), 1)), None)


def section_of(outline: Outline, sentence: Sentence) -> str:
    """The heading `sentence` sits under ("" in the lead)."""
    return next((s.heading for s in outline.sections if sentence in s.sentences), "")


def _central(sentences: list[Sentence], most: int, exclude: Sentence | None = None) -> list[Sentence]:
    """The `most` sentences sharing most character bigrams with all of `sentences` (cosine); statements of
    some length that stand on their own only: a question, a fragment or a "但…" says little about the whole."""
    whole = Counter(b for s in sentences for b in _bigrams(s.text))
    fit = [s for s in sentences if s != exclude and 15 <= len(s.text) <= 240 and not LEANS.match(s.text)]
    ranked = sorted(fit, key=lambda s: (-_cosine(Counter(_bigrams(s.text)), whole), s.start))
    return ranked[:most]


def _in_order(sentences: list[Sentence]) -> list[Sentence]:
    return sorted(dict.fromkeys(sentences), key=lambda s: s.start)


def _bigrams(text: str) -> list[str]:
    t = squash(text)
    return [t[i : i + 2] for i in range(len(t) - 1)]


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(n * b[k] for k, n in a.items())
    norm = math.sqrt(sum(n * n for n in a.values())) * math.sqrt(sum(n * n for n in b.values()))
    return dot / norm if norm else 0.0
