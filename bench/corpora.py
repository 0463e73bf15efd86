"""Corpora of growing size for the benchmarks, and the questions asked of each.

The article (`corpus/`), the first N passages of the CMRC 2018 trial set copied into a directory,
and a synthetic corpus made deterministically (seeded) by recombining the CMRC passages' sentences
into new passages of 150-300 characters, many per file, each its own paragraph, so that one passage
is one chunk. Indexing them is left to the parts that time it.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from common import ARTICLE_CORPUS, ARTICLE_QA, CMRC_CORPUS, CMRC_QA

from assistant.quality.evaluate import Item, read_items

SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?]+")
PASSAGE_CHARS = (150, 300)
PASSAGES_PER_FILE = 100


@dataclass(frozen=True)
class Corpus:
    """A corpus directory, its label, and questions to time (and score, when `scored`)."""

    name: str
    path: Path
    questions: list[Item]
    scored: bool = True  # the questions' evidence and sources refer to this corpus


def questions(path: Path) -> list[Item]:
    """The eval items of `path` that ask something (CMRC's trial set holds two blank questions)."""
    return [item for item in read_items(path) if item.turns[-1].strip()]


def article() -> Corpus:
    return Corpus("article", ARTICLE_CORPUS, questions(ARTICLE_QA))


def cmrc() -> Corpus:
    """All 256 CMRC trial passages, in place, with all their questions."""
    return Corpus("cmrc-trial", CMRC_CORPUS, questions(CMRC_QA))


def cmrc_subset(n: int, dest: Path, max_questions: int = 50) -> Corpus:
    """The first `n` CMRC trial passages copied into `dest`, with up to `max_questions` of their questions."""
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(CMRC_CORPUS.glob("*.txt"))[:n]
    for f in files:
        shutil.copy2(f, dest / f.name)
    names = {f.name for f in files}
    items = [item for item in questions(CMRC_QA) if item.source in names]
    return Corpus(f"cmrc-{n}", dest, spread(items, max_questions))


def synthetic(passages: int, dest: Path, seed: int = 0, max_questions: int = 50) -> Corpus:
    """`passages` new passages made of CMRC sentences, `PASSAGES_PER_FILE` to a file, in `dest`.

    The questions are CMRC questions: realistic queries over the same topics, timed but not scored
    (their evidence sentences are scattered across many synthetic passages).
    """
    rng = random.Random(seed)
    sentences = cmrc_sentences()
    dest.mkdir(parents=True, exist_ok=True)
    made = [make_passage(rng, sentences) for _ in range(passages)]
    for number, start in enumerate(range(0, passages, PASSAGES_PER_FILE), start=1):
        body = "\n\n".join(made[start : start + PASSAGES_PER_FILE])
        (dest / f"synthetic-{number:04d}.txt").write_text(f"合成语料第{number}篇\n\n{body}\n", encoding="utf-8")
    return Corpus(f"synthetic-{passages}", dest, spread(questions(CMRC_QA), max_questions), scored=False)


def cmrc_sentences() -> list[str]:
    """Every whole sentence of the CMRC trial passages' bodies (titles left out), in file order."""
    found = []
    for f in sorted(CMRC_CORPUS.glob("*.txt")):
        body = f.read_text(encoding="utf-8").split("\n", 1)[-1]
        found += [s.strip() for s in SENTENCE.findall(body) if len(s.strip()) < PASSAGE_CHARS[0]]
    return found


def make_passage(rng: random.Random, sentences: list[str]) -> str:
    """Random sentences joined until the passage is within PASSAGE_CHARS."""
    low, high = PASSAGE_CHARS
    target = rng.randint(low, high - 40)
    passage = ""
    while len(passage) < target:
        sentence = rng.choice(sentences)
        if len(passage) + len(sentence) <= high:
            passage += sentence
    return passage


def spread(items: list[Item], n: int) -> list[Item]:
    """Up to `n` items spread evenly through the list (so every file is asked about)."""
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]
