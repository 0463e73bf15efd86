"""Text helpers every stage shares: the normal form texts are compared in, word lists, script tests.

`squash` and `bigrams` are how any two texts are compared (NFKC, lower-cased, no whitespace).
The word lists say which words carry no topic (`STOPWORDS`), which only occur in questions
(`QUESTION_WORDS`), which make a question Chinese (`CHINESE_GRAMMAR`) or lean on the conversation
(`REFERS_BACK`), and which are too common to count as evidence (`GENERIC_WORDS`, `FUNCTION_CHARS`).
The script tests answer two different questions, each in one place: is a text *written in* Chinese
(`is_chinese`: a passage, a corpus sample, a query), and which language should an *answer* be in
(`is_english`, for questions; `mostly_latin`, for a sentence that keeps a Chinese name).
Tokenising for search is `keyword`'s.
"""

from __future__ import annotations

import re
import unicodedata

# Function words, question words and words about the text itself ("文章中…", "the article says…"):
# they carry no topic, and questions are full of them.
STOPWORDS = frozenset(
    """
    的 了 是 在 和 与 及 或 也 都 而 就 被 把 对 从 为 以 于 之 其 这 那 这个 那个 一个 有 吗 呢 吧 啊
    什么 多少 哪 哪个 哪些 哪家 哪里 哪年 哪一 几 谁 是谁 怎么 怎样 如何 为什么 为何 何 是否
    the a an of to in on for and or is are was were be by with as at it its this that what which
    who whom when where why how much many does do did
    文章 文中 本文 文章中 资料 提到 article passage passages text mention mentioned say says
    """.split()
)
# Question words and marks, and words about the text itself: in a question, never in its answer.
QUESTION_WORDS = re.compile(
    r"什么|多少|哪些|哪个|哪家|哪里|哪一|哪|是谁|谁|怎么|如何|为什么|几|吗|呢|[？?]|文章中|文章说|文章|文中|本文"
)
# Words that make a question Chinese even when most of its letters are Latin ("Step-3 的参数？").
CHINESE_GRAMMAR = re.compile(r"什么|多少|哪|谁|吗|呢|是否|如何|怎么|为什么|几|的|了|是")
# Pronouns and demonstratives: a question holding one may lean on the conversation before it.
REFERS_BACK = re.compile(
    r"他|她|它|其|该|这|那|此|上述|前者|后者|\b(he|she|it|its|his|her|they|their|them|this|that|these|those)\b", re.I
)
# Nouns too general to show that a passage supports a sentence.
GENERIC_WORDS = frozenset("文章 资料 公司 问题 信息 内容 方面 情况 时候 数据显示 article passage".split())
# Single characters that are grammar, not content: a bigram holding one says nothing about support.
FUNCTION_CHARS = frozenset("的了是在为于和与及或也都而就被把对从以之其这那有个着过将")


def squash(text: str) -> str:
    """NFKC, lower-cased, whitespace removed: the form in which texts are compared everywhere."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def bigrams(text: str) -> set[str]:
    """Character bigrams of the squashed text (robust to jieba's word boundaries)."""
    t = squash(text)
    return {t[i : i + 2] for i in range(len(t) - 1)}


def is_han(char: str) -> bool:
    """A CJK unified ideograph (the Chinese characters a corpus is written in)."""
    return "\u4e00" <= char <= "\u9fff"


def is_chinese(text: str) -> bool:
    """Written in Chinese: at least 2 Chinese characters and a fifth of the non-space characters."""
    han = sum(map(is_han, text))
    return han >= max(2, len(re.sub(r"\s", "", text)) * 0.2)


def is_english(question: str) -> bool:
    """A question to answer in English: Latin script, without Chinese grammar ("Step-3 的参数？" is Chinese)."""
    letters = [c for c in question if c.isalpha()]
    han = sum(map(is_han, letters))
    return bool(letters) and han < 0.3 * len(letters) and not CHINESE_GRAMMAR.search(question)


def mostly_latin(sentence: str) -> bool:
    """Written in English, even with a name kept in Chinese ("The CTO is 朱亦博")."""
    letters = [c for c in sentence if c.isalpha()]
    return sum(c.isascii() for c in letters) > 0.5 * len(letters)
