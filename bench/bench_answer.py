"""Answer latency and quality: the assistant, the assistant with the refusal policy main had before issue 19
(`main`: no premise or answer-content checks), the assistant as it was before issue 12, and a naive RAG
baseline, same chat model, one run (`--systems` picks some of them).

`before` is the same code with the earlier settings: whole passages in the prompt, a translation call
for an English question and one per English claim, up to 160 generated tokens, generation on one core
fewer than the machine has (its own copy of the model, so the two do not share llama.cpp's cache).

The baseline is what everyone builds first: 500-character windows (50 overlap) of the cleaned article,
the same e5-small embeddings in an in-memory Chroma, dense top-4, a plain prompt, no refusal rule and
no verification. All three answer every eval item, interleaved per question (rotating which goes
first), so background load hits them alike. Per answer: model calls, prompt tokens (of the largest
call, and how many of them llama.cpp evaluated rather than kept from the last call), generated tokens,
and the time to the first cited content on screen (the supporting quote; the baseline shows none).
Per question, each stage is timed: embedding the query, retrieval,
condensing a follow-up, prompt evaluation (up to the first token), generation, verification; the
prompt's token count is read from the model's usage report. Records part `latency` of
bench/out/results.json (rows in bench/out/answer_rows.json) and prints the tables.
Run: `.venv/bin/python bench/bench_answer.py [--quick] [--llm fake] [--limit N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ARTICLE_CORPUS, ARTICLE_QA, OUT, dur, markdown_table, part_parser, run_part, summary
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from assistant.answering.answer import Answerer, AnswerSettings
from assistant.answering.extract import is_english
from assistant.core import Assistant
from assistant.corpus.ingest import load_corpus
from assistant.factory import build_assistant
from assistant.models.embeddings import make_embeddings, similarity
from assistant.models.llama import LlamaCppChat
from assistant.quality.evaluate import Item, answer_metrics, read_items
from assistant.settings import Settings
from assistant.types import Answer

WINDOW, OVERLAP, TOP_K = 500, 50, 4
STAGES = ("embed_query", "retrieve", "condense", "translate", "prompt_eval", "generate", "verify")
STAGES += ("evidence", "first_token", "total")
SYSTEMS = ("assistant", "main", "before", "baseline")
COUNTS = ("calls", "prompt_tokens", "evaluated_tokens", "generated_tokens")  # per answer, from the usage reports
QUALITY = ("answer_accuracy", "refusal_accuracy", "false_refusals", "citation_support")


class PromptTokens(BaseCallbackHandler):
    """Collects the usage report of every chat-model call: prompt, cached and generated tokens."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generation in (g for gens in response.generations for g in gens):
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            cached = (usage.get("input_token_details") or {}).get("cache_read", 0)
            prompt, out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)  # 0: no usage report
            self.calls.append({"prompt": int(prompt), "cached": int(cached), "out": int(out)})

    def take(self) -> dict[str, int | None]:
        """Since the last take: the number of calls, the largest prompt (the answering one) and how much of
        it was evaluated, all generated tokens; then start over."""
        calls, self.calls = self.calls, []
        largest = max((c for c in calls if c["prompt"]), key=lambda c: c["prompt"], default=None)
        return {
            "calls": len(calls),
            "prompt_tokens": largest["prompt"] if largest else None,
            "evaluated_tokens": largest["prompt"] - largest["cached"] if largest else None,
            "generated_tokens": sum(c["out"] for c in calls),
        }


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
        self.embeddings = make_embeddings("e5-small")
        self.store = Chroma(collection_name="baseline", embedding_function=self.embeddings, client=client)
        texts, metas = [], []
        for doc in load_corpus(corpus)[0]:
            body = "\n".join(doc.text[p.start : p.end] for p in doc.paragraphs)
            texts += fixed_size_split(body)
            metas += [{"source": doc.source}] * (len(texts) - len(metas))
        self.store.add_texts(texts, metadatas=metas)
        prompt = ChatPromptTemplate.from_messages(
            [("system", "根据下面的资料回答问题。\n\n{context}"), ("human", "{question}")]
        )
        # the same output cap as the assistant's answer chain, so total latency compares like with like
        self.llm = llm
        self.chain = prompt | llm.bind(max_tokens=AnswerSettings().max_tokens) | StrOutputParser()

    def run(self, question: str) -> dict[str, Any]:
        started = time.perf_counter()
        vector = self.embeddings.embed_query(question)
        embedded = time.perf_counter()
        docs = self.store.similarity_search_by_vector(vector, k=TOP_K)
        retrieved = time.perf_counter()
        context = "\n".join(f"[{n}] {d.page_content}" for n, d in enumerate(docs, start=1))
        tokens: list[str] = []
        first = None
        for token in self.chain.stream({"context": context, "question": question}):
            first = first or time.perf_counter()
            tokens.append(token)
        done = time.perf_counter()
        first = first or done
        stages = {"embed_query": embedded - started, "retrieve": retrieved - started, "prompt_eval": first - retrieved}
        stages |= {"generate": done - first, "first_token": first - started, "total": done - started}
        citations = [
            {"n": n, "text": d.page_content, "source": d.metadata["source"], "quote": d.page_content[:80]}
            for n, d in enumerate(docs, start=1)
        ]
        return {"question": question, "answer": "".join(tokens), "refused": False, "citations": citations, **_t(stages)}


def run_assistant(assistant: Assistant, answerer: Answerer, item: Item) -> dict[str, Any]:
    """One streamed answer and its stages; first token = the first text event (a refusal's total if none)."""
    embed_query = _embed_seconds(assistant, item.turns[-1])
    started = time.perf_counter()
    first, answer = None, None
    for event in answerer.stream(item.turns[-1], history=item.turns[:-1]):
        if isinstance(event, str):
            first = first or time.perf_counter() - started
        elif isinstance(event, Answer):
            answer = event
    total = time.perf_counter() - started
    assert answer is not None, "Assistant.stream ended without an Answer"
    record = answer.to_dict()
    reported = {k.removesuffix("_s"): v for k, v in record.pop("timings").items()}
    stages = {"embed_query": embed_query, **reported, "first_token": first or total, "total": total}
    if "first_token" in reported:  # the model was asked: what came before its first token is not prompt eval
        before = sum(reported.get(k, 0.0) for k in ("condense", "translate", "retrieve"))
        stages["prompt_eval"] = reported["first_token"] - before
    return {**record, **_t(stages)}


def _without_evidence(record: dict[str, Any]) -> dict[str, Any]:
    """Before issue 12 nothing cited was shown until the answer: its quote event is not counted."""
    record["timings"].pop("evidence_s", None)
    return record


def _embed_seconds(assistant: Assistant, text: str) -> float | None:
    """Embedding `text` alone, timed (the retrieve stage includes it); None if the index hides its model."""
    embeddings = getattr(assistant.index, "embeddings", None)
    if embeddings is None:
        return None
    started = time.perf_counter()
    embeddings.embed_query(text)
    return time.perf_counter() - started


def _t(stages: dict[str, float | None]) -> dict[str, Any]:
    """The answer contract's `timings` and `latency_s` from stage seconds."""
    timings = {f"{k}_s": round(v, 3) for k, v in stages.items() if v is not None}
    return {"timings": timings, "latency_s": timings["total_s"]}


def before(assistant: Assistant, llm_name: str) -> Answerer:
    """The assistant with the settings it had before issue 12, on its own copy of the chat model."""
    llm = assistant.llm
    if llm_name == "llama-cpp":
        llm = LlamaCppChat(
            n_threads=max(1, (os.cpu_count() or 1) - 1), timeout=assistant.settings.llm_timeout, instance=3
        )
    earlier = AnswerSettings(prompt_chars=None, max_tokens=160, translate_questions=True, translate_claims=True)
    embeddings = similarity(assistant.index.embeddings)
    return Answerer(
        assistant.retriever,
        llm,
        assistant.models,
        similarity=embeddings,
        settings=earlier,
        locate=assistant.locate,
        helper=llm,
    )


def main_policy(assistant: Assistant, llm_name: str) -> Answerer:
    """The assistant with the refusal policy main had before issue 19, on its own copy of the chat model."""
    from dataclasses import replace

    from assistant.checks.decide import VerifyPolicy
    from assistant.interfaces.cli.tune import PREVIOUS

    llm = LlamaCppChat(timeout=assistant.settings.llm_timeout, instance=4) if llm_name == "llama-cpp" else assistant.llm
    then = replace(assistant.answerer.settings, policy=VerifyPolicy(**PREVIOUS))  # type: ignore[arg-type]
    embeddings = similarity(assistant.index.embeddings)
    return Answerer(
        assistant.retriever, llm, assistant.models, similarity=embeddings, settings=then, locate=assistant.locate
    )


def answer_all(
    assistant: Assistant,
    others: dict[str, Answerer],
    baseline: Baseline | None,
    items: list[Item],
    names: tuple[str, ...],
) -> dict[str, list[dict[str, Any]]]:
    """Every system on every item, interleaved, rotating which goes first; model usage noted."""
    counter = PromptTokens()
    models = [assistant.llm, assistant.answerer.side_calls.model, *(a.llm for a in others.values())]
    models += [baseline.llm] if baseline else []
    for llm in {id(m): m for m in models}.values():
        llm.callbacks = [counter]
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    systems = {
        "assistant": lambda i: run_assistant(assistant, assistant.answerer, i),
        **{name: (lambda i, a=a: _without_evidence(run_assistant(assistant, a, i))) for name, a in others.items()},
        "baseline": lambda i: baseline.run(i.turns[-1]) if baseline else {},
    }
    for n, item in enumerate(items, start=1):
        order = names[n % len(names) :] + names[: n % len(names)]
        for name in order:
            counter.take()
            record = systems[name](item)
            rows[name].append({"id": item.id, "english": is_english(item.turns[-1]), **record, **counter.take()})
        took = ", ".join(f"{name} {rows[name][-1]['timings']['total_s']:.1f} s" for name in names)
        print(f"[{n}/{len(items)}] {item.id}: {took}", file=sys.stderr, flush=True)
    return rows


def stage_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """p50/p95 of each stage over the items where it ran, plus prompt size and prompt-eval speed."""
    table = {}
    for stage in STAGES:
        values = [r["timings"][f"{stage}_s"] for r in rows if f"{stage}_s" in r["timings"]]
        if values:
            table[stage] = summary(values, digits=3)
    for count in COUNTS:
        table[count] = summary([r[count] for r in rows if r.get(count) is not None], digits=0)
    evaluated = [r for r in rows if r.get("evaluated_tokens") and r["timings"].get("prompt_eval_s", 0) > 0]
    table["prompt_tokens_per_s"] = summary(
        [r["evaluated_tokens"] / r["timings"]["prompt_eval_s"] for r in evaluated], 1
    )
    generated = [r for r in rows if r.get("generated_tokens") and r["timings"].get("generate_s", 0) > 0]
    table["generated_tokens_per_s"] = summary(
        [r["generated_tokens"] / r["timings"]["generate_s"] for r in generated], 1
    )
    return table


def measure(args: argparse.Namespace) -> dict[str, Any]:
    limit = args.limit or (4 if args.quick else None)
    items = read_items(Path(args.set))[:limit]
    with tempfile.TemporaryDirectory(prefix="bench-answer-") as tmp:
        settings = Settings.load(env={}, corpus=args.corpus, index_dir=tmp, embeddings="e5-small", llm=args.llm)
        assistant = build_assistant(settings)
        report = assistant.build_index()
        names = tuple(s for s in SYSTEMS if s in args.systems.split(","))
        baseline = None
        if "baseline" in names:
            own = LlamaCppChat(timeout=settings.llm_timeout, instance=2) if args.llm == "llama-cpp" else assistant.llm
            baseline = Baseline(settings.corpus, own)  # its own model copy: its prompts do not evict the assistant's
        builders = {"before": before, "main": main_policy}
        others = {name: builders[name](assistant, args.llm) for name in names if name in builders}
        for answerer in (assistant.answerer, *others.values()):
            answerer.warm()  # every system starts with its model loaded, as `serve` does
        rows = answer_all(assistant, others, baseline, items, names)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "answer_rows.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return {
        "set": Path(args.set).name,
        "items": len(items),
        "models": assistant.models,
        "chunks": {"assistant": report.chunks, "baseline": len(baseline.store.get()["ids"]) if baseline else None},
        "quality": {name: _quality(items, r) for name, r in rows.items()},
        "stages": {name: stage_table(r) for name, r in rows.items()},
        "english": {name: stage_table([x for x in r if x["english"]]) for name, r in rows.items()},
    }


def _quality(items: list[Item], rows: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = answer_metrics(list(zip(items, rows, strict=True)))
    return {key: metrics[key] for key in QUALITY}


def table(part: dict[str, Any]) -> str:
    """Quality of each system, then each stage's p50 / p95 side by side (all questions, then English ones)."""
    quality = markdown_table(
        ["system", *QUALITY], ([name, *(q[k] for k in QUALITY)] for name, q in part["quality"].items())
    )
    tables = [quality]
    for title, stages in (("all questions", part["stages"]), ("English questions", part.get("english", {}))):
        if not stages:
            continue
        rows = []
        for stage in [*STAGES, *COUNTS, "prompt_tokens_per_s", "generated_tokens_per_s"]:
            rows.append([stage.replace("_", " "), *(_cell(stages[name].get(stage), stage) for name in stages)])
        tables.append(markdown_table([f"{title}: p50 / p95 (n)", *stages], rows))
    return "\n\n".join(tables)


def _cell(stat: dict[str, Any] | None, stage: str) -> str:
    if not stat or not stat["n"]:
        return "–"
    if stage in COUNTS or stage.endswith("_per_s"):
        return f"{stat['p50']:.0f} / {stat['p95']:.0f}"
    return f"{dur(stat['p50'])} / {dur(stat['p95'])} ({stat['n']})"


def main() -> int:
    parser = part_parser(__doc__)
    parser.add_argument("--set", default=str(ARTICLE_QA))
    parser.add_argument("--corpus", default=str(ARTICLE_CORPUS))
    parser.add_argument("--llm", default="llama-cpp")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items (--quick: 4)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    args = parser.parse_args()
    return run_part("latency", args, measure, table)


if __name__ == "__main__":
    sys.exit(main())
