"""English questions over a Chinese corpus: search them as they are, or translate them first (one model call)?

The questions are CMRC 2018 trial questions translated into English once by the packaged chat model
(`bench/data/cmrc_en.jsonl`, made on the first run, resumable; machine translations, kept as made).
Over the whole CMRC trial corpus, hit@1/3/5 four ways: the English question as it is, by the hybrid
search and by the multilingual embedding alone (no model call); the English question translated back
into Chinese first by the assistant's own translation call (what it does: one more model call); and the
original Chinese question (the ceiling). Records part `crosslingual` of bench/out/results.json.
Run: `.venv/bin/python bench/crosslingual.py [--quick] [--limit N]` (about 15 minutes for 150 questions).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from common import CMRC_CORPUS, CMRC_QA, markdown_table, part_parser, run_part, summary
from corpora import questions, spread
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from assistant.answering.side_calls import one_line
from assistant.core import Assistant
from assistant.factory import build_assistant
from assistant.quality.collect import read_jsonl
from assistant.quality.evaluate import Item, is_hit
from assistant.settings import Settings
from assistant.types import Hit

ENGLISH = Path(__file__).parent / "data" / "cmrc_en.jsonl"
INDEX = Path.home() / ".cache" / "assistant" / "bench" / "cmrc-trial"
TO_ENGLISH = "Translate the user's question into English. Output only the translated question."
WAYS = ("english", "english_dense", "translated", "chinese")
KS = (1, 3, 5)


def english_questions(assistant: Assistant, items: list[Item]) -> dict[str, str]:
    """id -> English question, translating (and appending to the file) only those not done yet."""
    done = {r["id"]: r["en"] for r in read_jsonl(ENGLISH)}
    chain = _chain(assistant, TO_ENGLISH)
    ENGLISH.parent.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(i for i in items if i.id not in done):
        english = one_line(chain.invoke({"question": item.turns[-1]}))
        done[item.id] = english
        with ENGLISH.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"id": item.id, "zh": item.turns[-1], "en": english}, ensure_ascii=False) + "\n")
        print(f"translated {n + 1}: {english}", file=sys.stderr, flush=True)
    return {i.id: done[i.id] for i in items}


def measure(args: Any) -> dict[str, Any]:
    settings = Settings.load(env={}, corpus=CMRC_CORPUS, index_dir=INDEX, embeddings="e5-small")
    assistant = build_assistant(settings)
    assistant.build_index()
    items = spread([i for i in questions(CMRC_QA) if i.answerable], 150)[: args.limit or (10 if args.quick else 150)]
    english = english_questions(assistant, items)
    side_calls = assistant.answerer.side_calls  # the assistant's own translation call, on its helper context
    hits = {way: dict.fromkeys(KS, 0) for way in WAYS}
    seconds = []
    for item in items:
        started = time.perf_counter()
        translated = side_calls.translate(english[item.id]) or english[item.id]
        seconds.append(time.perf_counter() - started)
        queries = (english[item.id], english[item.id], translated, item.turns[-1])
        for way, query in zip(WAYS, queries, strict=True):
            found = _dense(assistant, query) if way == "english_dense" else assistant.search(query, k=max(KS))
            for k in KS:
                hits[way][k] += any(is_hit(h, item) for h in found[:k])
    n = len(items)
    return {
        "questions": n,
        "hit": {way: {f"hit@{k}": round(c / n, 3) for k, c in counts.items()} for way, counts in hits.items()},
        "translate_s": summary(seconds, digits=2),
        "models": assistant.models,
    }


def table(part: dict[str, Any]) -> str:
    labels = {
        "english": "English as asked, hybrid search (no model call)",
        "english_dense": "English as asked, the embedding alone",
        "translated": "English, translated by the model first (+1 call: what the assistant does)",
        "chinese": "the original Chinese question (ceiling)",
    }
    rows = [[labels[way], *(part["hit"][way][f"hit@{k}"] for k in KS)] for way in WAYS]
    note = f"\n\n{part['questions']} CMRC questions; the translation call took {part['translate_s']['p50']} s p50."
    return markdown_table(["search with", *(f"hit@{k}" for k in KS)], rows) + note


def _dense(assistant: Assistant, query: str) -> list[Hit]:
    """The embedding's nearest chunks alone (no keyword side, no re-ranking)."""
    by_id = {c.chunk_id: c for c in assistant.retriever.chunks}
    nearest = assistant.index.dense_search(query, max(KS))
    return [Hit(by_id[cid], rank, score) for rank, (cid, score) in enumerate(nearest, start=1) if cid in by_id]


def _chain(assistant: Assistant, system: str) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", system), ("human", "{question}")])
    return prompt | assistant.llm.bind(max_tokens=80) | StrOutputParser()


def main() -> int:
    parser = part_parser(__doc__)
    parser.add_argument("--limit", type=int, default=None, help="questions (default 150; --quick: 10)")
    return run_part("crosslingual", parser.parse_args(), measure, table)


if __name__ == "__main__":
    sys.exit(main())
