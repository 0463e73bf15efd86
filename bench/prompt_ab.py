"""The smaller prompt against the earlier whole-passage prompt, on calibration questions the prompts were
not written on: does answering from the sentences that matter cost accuracy?

The earlier prompt's drafts are the stored calibration drafts (`docs/calibration/drafts.jsonl`: DRCD,
CMRC with withheld passages, constraint-shifted questions; whole passages, up to 160 tokens). The same
questions, with the same retrieved passages, are drafted again with today's prompt (the sentences that
matter, within `extract.PROMPT_CHARS`; up to 96 tokens) into `docs/bench/prompt_drafts.jsonl`
(resumable; kept, so the comparison is re-scored without the model). Both sets of drafts are
judged by the same `VerifyPolicy` (today's defaults), and each prompt's size is counted with the
model's tokenizer. Records part `prompt` of bench/out/results.json.
Run: `.venv/bin/python bench/prompt_ab.py [--quick] [--limit N]` (about 4 s a question).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from common import markdown_table, part_parser, run_part, summary

from assistant.answering import prompts
from assistant.answering.extract import PROMPT_CHARS, prompt_passages
from assistant.checks.decide import VerifyPolicy
from assistant.interfaces.cli.tune import DOCS, _runner
from assistant.quality import collect, tune

DRAFTS = Path(__file__).resolve().parent.parent / "docs" / "bench" / "prompt_drafts.jsonl"
KEYS = ("answer_accuracy", "refusal_accuracy", "false_refusal_rate", "wrong_answer_rate", "draft_accuracy")


def pick(records: list[dict[str, Any]], n: int, full: int = 120) -> list[dict[str, Any]]:
    """`n` stored drafts, half answerable and half not, spread over the sets (seeded); a smaller `n` takes
    the start of the same sample, so a quick run reuses the stored new drafts."""
    rng = random.Random("prompt-ab")
    halves = [[r for r in records if r["answerable"] == a] for a in (True, False)]
    return [r for half in halves for r in rng.sample(half, min(full // 2, len(half)))[: n // 2]]


def redraft(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Today's draft for each record, with the record's own passages (stored in DRAFTS as it goes)."""
    done = {r["id"]: r for r in collect.read_jsonl(DRAFTS)}
    runners: dict[str, Any] = {}
    for n, record in enumerate(r for r in records if r["id"] not in done):
        if record["set"] not in runners:
            runners[record["set"]] = _runner(record["set"], None)[1]
        answerer = runners[record["set"]].answerer
        hits = [tune.hit_from_dict(h) for h in record["hits"]]
        new = {**record, "draft": answerer.draft(record["question"], record["query"], hits) if hits else ""}
        done[record["id"]] = new
        with DRAFTS.open("a", encoding="utf-8") as f:
            f.write(json.dumps(new, ensure_ascii=False) + "\n")
        print(f"[{n + 1}] {record['id']}: {new['draft'][:60]!r}", file=sys.stderr, flush=True)
    return [done[r["id"]] for r in records]


def prompt_tokens(records: list[dict[str, Any]], budget: int | None) -> list[int]:
    """The answering prompt's tokens (system, passages and question in the model's chat template)."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from assistant.models.model_file import packaged_model_path

    llama = llama_cpp.Llama(model_path=str(packaged_model_path()), vocab_only=True, verbose=False)
    chat = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"], eos_token="", bos_token="")
    runners: dict[str, Any] = {}
    counts = []
    for r in records:
        if r["set"] not in runners:
            runners[r["set"]] = _runner(r["set"], None)[1]
        chunks = [tune.hit_from_dict(h).chunk for h in r["hits"][:3]]
        passages = prompt_passages(chunks, r["query"], weight=runners[r["set"]].retriever.weight, budget=budget)
        user = prompts.ANSWER_USER.format(passages=passages, question=r["question"])
        text = chat(messages=[{"role": "system", "content": prompts.ANSWER_SYSTEM}, {"role": "user", "content": user}])
        counts.append(len(llama.tokenize(text.prompt.encode(), add_bos=False, special=True)))
    return counts


def measure(args: Any) -> dict[str, Any]:
    stored = [r for r in collect.read_jsonl(DOCS / "drafts.jsonl") if r.get("split") == "calibrate"]
    records = pick(stored, args.limit or (8 if args.quick else 120))
    today = redraft(records)
    policy = VerifyPolicy()
    result: dict[str, Any] = {"questions": len(records), "budget": PROMPT_CHARS, "systems": {}}
    for name, drafts, budget in (("before", records, None), ("now", today, PROMPT_CHARS)):
        metrics = tune.metrics(tune.prepare(drafts), policy)
        result["systems"][name] = {
            **{k: metrics.get(k) for k in KEYS},
            "prompt_tokens": summary(prompt_tokens(drafts, budget), digits=0),
        }
    return result


def table(part: dict[str, Any]) -> str:
    rows = [
        [name, *(s[k] for k in KEYS), f"{s['prompt_tokens']['p50']:.0f} / {s['prompt_tokens']['p95']:.0f}"]
        for name, s in part["systems"].items()
    ]
    note = f"\n\n{part['questions']} calibration questions, half unanswerable; passage budget {part['budget']} chars."
    return markdown_table(["prompt", *KEYS, "prompt tokens p50 / p95"], rows) + note


def main() -> int:
    parser = part_parser(__doc__)
    parser.add_argument("--limit", type=int, default=None, help="questions (default 120; --quick: 8)")
    return run_part("prompt", parser.parse_args(), measure, table)


if __name__ == "__main__":
    sys.exit(main())
