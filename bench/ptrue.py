"""P(True) of the stored calibration drafts: the chat model asked, after its own draft on the answer prompt,
whether the draft is the passages' answer to this question about this subject (`ANSWER_CHECK`), and
the log-probabilities of 是 and 否 read from its logits (`LlamaCppChat.choose`). One line per draft in
`--out` (resumable: drafts already there are skipped), for the answer decision to be fitted on (issue 30).

    python bench/ptrue.py [--limit N] [--out docs/calibration/ptrue.jsonl]

The answer prompt is rebuilt as serving builds it: the draft's three passages cut to the sentences that
matter (`extract.prompt_passages`, keyword weights from its set's corpus as the index computes them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answering import prompts  # noqa: E402
from assistant.answering.extract import prompt_passages  # noqa: E402
from assistant.corpus.chunk import chunk_document  # noqa: E402
from assistant.corpus.ingest import read_document  # noqa: E402
from assistant.index.keyword import BM25, tokenize  # noqa: E402
from assistant.models.llama import LlamaCppChat  # noqa: E402
from assistant.quality import calibration, tune  # noqa: E402
from assistant.quality.gate import default_index_root  # noqa: E402

DRAFTS = ROOT / "docs" / "calibration" / "drafts.jsonl"
# The yes/no check asked after the draft on the same context. Measured, not adopted: its P(True) adds nothing
# to the lexical scores (docs/calibration.md, "Signals of meaning"), so serving never asks it.
ANSWER_CHECK = "上面的回答是否正是资料对这个问题的回答，而且说的是问题问的那个对象？只回答“是”或“否”。"
ANSWER_CHECK_OPTIONS = ("是", "否")


def weights(corpus: Path) -> BM25:
    """The keyword weights the index would have for `corpus` (its chunks' title, section and text tokens)."""
    docs = []
    for path in sorted(corpus.rglob("*.txt")):
        for chunk in chunk_document(read_document(path, str(path.relative_to(corpus)))):
            docs.append(tokenize(" ".join((chunk.title, chunk.section, chunk.text))))
    return BM25(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "calibration" / "ptrue.jsonl"))
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    done = {json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()} if out.exists() else set()
    records = [json.loads(line) for line in DRAFTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    todo = [r for r in records if r["id"] not in done][: args.limit or None]
    root = default_index_root().parent / "calibration"
    bm25 = {name: weights(calibration.build(name, root).corpus) for name in calibration.SETS}
    model = LlamaCppChat(timeout=None)
    print(f"{len(todo)} drafts to check ({len(done)} done)", file=sys.stderr)
    with out.open("a", encoding="utf-8") as f:
        for i, r in enumerate(todo, start=1):
            chunks = [tune.hit_from_dict(h).chunk for h in r["hits"][:3]]
            passages = prompt_passages(chunks, r["query"], weight=bm25[r.get("of", r["set"])].idf)
            messages = [
                SystemMessage(prompts.ANSWER_SYSTEM),
                HumanMessage(prompts.ANSWER_USER.format(passages=passages, question=r["question"])),
                AIMessage(r["draft"]),
                HumanMessage(ANSWER_CHECK),
            ]
            started = time.perf_counter()
            logprobs = model.choose(messages, list(ANSWER_CHECK_OPTIONS))
            seconds = time.perf_counter() - started
            yes, no = (logprobs[o] for o in ANSWER_CHECK_OPTIONS)
            row = {"id": r["id"], "yes": round(yes, 4), "no": round(no, 4), "margin": round(yes - no, 4),
                   "seconds": round(seconds, 2)}  # fmt: skip
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            print(f"[{i}/{len(todo)}] {r['id']} margin {yes - no:+.2f} ({seconds:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
