"""Answer benchmark: the assistant against a naive RAG baseline, same machine, same chat model, one run.

The baseline is what everyone builds first: 500-character windows (50 overlap) of the cleaned article,
the same e5-small embeddings in an in-memory Chroma, dense top-4, a plain prompt, no refusal rule and
no verification. Both answer every eval item, interleaved per question, and are scored by
`assistant.evaluate.answer_metrics`. Writes bench/out/answer.json and prints two tables.
Run: `.venv/bin/python bench/bench_answer.py [--llm fake] [--limit N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

from assistant.answer import AnswerSettings  # noqa: E402
from assistant.core import Assistant  # noqa: E402
from assistant.embeddings import make_embeddings  # noqa: E402
from assistant.evaluate import Item, answer_metrics, read_items  # noqa: E402
from assistant.factory import build_assistant  # noqa: E402
from assistant.ingest import load_corpus  # noqa: E402
from assistant.settings import Settings  # noqa: E402

WINDOW, OVERLAP, TOP_K = 500, 50, 4
STAGES = ("condense_s", "translate_s", "retrieve_s", "first_token_s", "generate_s", "verify_s", "total_s")
COLUMNS = ("answer_accuracy", "refusal_accuracy", "false_refusals", "citation_support")
COLUMNS += ("first_token_p50_s", "first_token_p95_s", "total_p50_s", "total_p95_s")


def fixed_size_split(text: str, size: int = WINDOW, overlap: int = OVERLAP) -> list[str]:
    """Windows of `size` characters, each starting `size - overlap` after the previous one."""
    step = size - overlap
    return [text[i : i + size] for i in range(0, max(len(text) - overlap, 1), step)]


class Baseline:
    """Naive RAG: fixed-size chunks, dense-only top-4, a plain prompt, the raw model text as the answer."""

    def __init__(self, corpus: Path, llm: BaseChatModel) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma

        client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
        self.store = Chroma(collection_name="baseline", embedding_function=make_embeddings("e5-small"), client=client)
        texts, metas = [], []
        for doc in load_corpus(corpus)[0]:
            body = "\n".join(doc.text[p.start : p.end] for p in doc.paragraphs)
            for chunk in fixed_size_split(body):
                texts.append(chunk)
                metas.append({"source": doc.source})
        self.store.add_texts(texts, metadatas=metas)
        prompt = ChatPromptTemplate.from_messages(
            [("system", "根据下面的资料回答问题。\n\n{context}"), ("human", "{question}")]
        )
        # the same output cap as the assistant's answer chain, so total latency compares like with like
        self.chain = prompt | llm.bind(max_tokens=AnswerSettings().max_tokens) | StrOutputParser()

    def run(self, question: str) -> dict[str, Any]:
        started = time.perf_counter()
        docs = self.store.similarity_search(question, k=TOP_K)
        context = "\n".join(f"[{n}] {d.page_content}" for n, d in enumerate(docs, start=1))
        tokens: list[str] = []
        first = None
        for token in self.chain.stream({"context": context, "question": question}):
            first = first if first is not None else time.perf_counter() - started
            tokens.append(token)
        total = time.perf_counter() - started
        citations = [
            {"n": n, "text": d.page_content, "source": d.metadata["source"], "quote": d.page_content[:80]}
            for n, d in enumerate(docs, start=1)
        ]
        timings = {"first_token_s": round(first if first is not None else total, 3), "total_s": round(total, 3)}
        return {
            "question": question,
            "answer": "".join(tokens),
            "refused": False,
            "citations": citations,
            "timings": timings,
            "latency_s": round(total, 3),
        }


def run_assistant(assistant: Assistant, item: Item) -> dict[str, Any]:
    """One streamed answer; first token = the first text event (a refusal has none: its total stands in)."""
    started = time.perf_counter()
    first, answer = None, None
    for event in assistant.stream(item.turns[-1], history=item.turns[:-1]):
        if isinstance(event, str):
            first = first if first is not None else time.perf_counter() - started
        else:
            answer = event
    total = time.perf_counter() - started
    assert answer is not None, "Assistant.stream ended without an Answer"
    record = answer.to_dict()
    record["stage_timings"] = record.pop("timings")
    record["timings"] = {"first_token_s": round(first if first is not None else total, 3), "total_s": round(total, 3)}
    record["latency_s"] = round(total, 3)
    return record


def percentiles(values: list[float]) -> tuple[float | None, float | None]:
    values = sorted(values)
    if not values:
        return None, None
    return tuple(round(values[min(len(values) - 1, int(len(values) * q))], 3) for q in (0.5, 0.95))  # type: ignore[return-value]


def stage_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """p50/p95 of each stage timing the assistant reported, over the items where that stage ran."""
    table = {}
    for stage in STAGES:
        values = [r["stage_timings"][stage] for r in rows if stage in r["stage_timings"]]
        p50, p95 = percentiles(values)
        table[stage] = {"n": len(values), "p50_s": p50, "p95_s": p95}
    return table


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    items = read_items(Path(args.set))[: args.limit]
    settings = Settings.load(env={}, corpus=args.corpus, index_dir=workdir, embeddings="e5-small", llm=args.llm)
    assistant = build_assistant(settings)
    report = assistant.build_index()
    baseline = Baseline(settings.corpus, assistant.llm)
    rows: dict[str, list[dict[str, Any]]] = {"assistant": [], "baseline": []}
    for n, item in enumerate(items, start=1):
        rows["assistant"].append({"id": item.id, **run_assistant(assistant, item)})
        rows["baseline"].append({"id": item.id, **baseline.run(item.turns[-1])})
        print(f"[{n}/{len(items)}] {item.id}", file=sys.stderr, flush=True)
    summary = {name: answer_metrics(list(zip(items, r, strict=True))) for name, r in rows.items()}
    return {
        "machine": {"machine": platform.machine(), "cpu_count": os.cpu_count()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "set": str(args.set),
        "models": assistant.models,
        "index": {"chunks": report.chunks, "seconds": round(report.seconds, 2)},
        "baseline_chunks": len(baseline.store.get()["ids"]),
        "summary": summary,
        "assistant_stages": stage_table(rows["assistant"]),
        "rows": rows,
    }


def print_tables(result: dict[str, Any]) -> None:
    print("| system | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, metrics in result["summary"].items():
        print(f"| {name} | " + " | ".join(str(metrics[c]) for c in COLUMNS) + " |")
    print("\n| assistant stage | n | p50_s | p95_s |\n|---|---|---|---|")
    for stage, t in result["assistant_stages"].items():
        print(f"| {stage} | {t['n']} | {t['p50_s']} | {t['p95_s']} |")
    m = result["machine"]
    print(f"\nmachine: {m['machine']}, {m['cpu_count']} cores; models: {result['models']}")
    print(f"command: {result['command']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default=str(ROOT.parent / "shared" / "eval" / "article_qa_dev.jsonl"))
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--llm", default="llama-cpp")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "answer.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
