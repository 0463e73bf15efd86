"""How often the multi-part rule (`assistant.answering.parts.split`) splits: every DRCD-dev question alone (it should
stay one part), and pairs of questions of one article joined by "，" (they should split into two).

No model, no index: a second or two. Run: .venv/bin/python bench/bench_split.py [--seed 1] [--show 10]"""

from __future__ import annotations

import argparse
import json
import random

from assistant.answering.parts import split
from assistant.settings import default_eval_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=10, help="print this many misses of each kind")
    args = parser.parse_args()
    qa = default_eval_root() / "drcd-dev" / "qa.jsonl"
    items = [json.loads(line) for line in qa.read_text(encoding="utf-8").splitlines()]
    questions = [i["turns"][-1] for i in items]
    split_alone = [q for q in questions if len(split(q).parts) > 1]
    rng = random.Random(args.seed)
    by_article: dict[str, list[str]] = {}
    for item, question in zip(items, questions, strict=True):
        article = (item.get("source") or item.get("withheld") or item["id"]).rsplit("-", 1)[0]
        by_article.setdefault(article, []).append(question)
    pairs = [a.rstrip("？?") + "，" + b for qs in by_article.values() if len(qs) >= 2 for a, b in [rng.sample(qs, 2)]]
    unsplit = [p for p in pairs if len(split(p).parts) != 2]
    print(f"single questions split: {len(split_alone)} of {len(questions)}")
    print(f"joined pairs split into their two parts: {len(pairs) - len(unsplit)} of {len(pairs)}")
    for q in split_alone[: args.show]:
        print("  split alone:", q, split(q).parts)
    for p in unsplit[: args.show]:
        print("  not split:  ", p)


if __name__ == "__main__":
    main()
