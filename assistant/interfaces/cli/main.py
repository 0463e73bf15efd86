"""The `assistant` command: index, search, ask (once or as a chat), evaluate, show the index, run the Slack bot.

Parses flags (which override `ASSISTANT_*` settings), builds one `Assistant`, and renders its
values for a terminal or as JSON: `search`, `ask` and `chat` are here; the measuring commands, `eval`,
`eval-retrieval` and `gate`, are in `evaluate`, `index`, `add`, `info` and `feedback` in `manage`, `serve`
and `slack` in `serve`. `AssistantError`s become a one-line message and an exit code; nothing else here
decides anything about retrieval.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from assistant.checks.inputs import check_question
from assistant.errors import AssistantError, InputError
from assistant.interfaces.cli.evaluate import cmd_eval, cmd_eval_retrieval, cmd_gate
from assistant.interfaces.cli.manage import cmd_add, cmd_feedback, cmd_index, cmd_info
from assistant.interfaces.cli.serve import cmd_serve, cmd_slack
from assistant.interfaces.cli.terminal import ask_streaming, print_hits, render_answer
from assistant.interfaces.cli.tune import cmd_calibrate
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.core import Assistant

# Commands that embed a query: their embedding model loads while the rest imports (not `index`: an
# unchanged corpus embeds nothing).
PRELOAD = {"search", "ask", "chat", "serve", "slack", "eval", "eval-retrieval"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # the 1.1 GB model's assembly shows its progress
    logging.getLogger("assistant.models.model_file").setLevel(logging.INFO)
    try:
        settings = Settings.load(
            corpus=args.corpus,
            index_dir=args.index_dir,
            chroma_url=args.chroma_url,
            embeddings=args.embeddings,
            llm=args.llm,
        )
        from assistant.factory import build_assistant  # imported here so a preload can start first

        result: int = args.run(build_assistant(settings, preload=args.command in PRELOAD), args)
        return result
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", help="corpus directory (env ASSISTANT_CORPUS; default ./corpus)")
    common.add_argument("--index-dir", help="index directory (env ASSISTANT_INDEX_DIR)")
    common.add_argument(
        "--chroma-url", help="use a Chroma server, e.g. http://127.0.0.1:8000 (env ASSISTANT_CHROMA_URL)"
    )
    common.add_argument("--embeddings", help="e5-small (default), use, st:<name-or-path> (env ASSISTANT_EMBEDDINGS)")
    common.add_argument(
        "--llm", help="llama-cpp (default), llama-cpp:<file.gguf>, openai:<model>, fake (env ASSISTANT_LLM)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log stage timings to stderr")

    parser = argparse.ArgumentParser(prog="assistant", description="Grounded, cited answers over a corpus.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common], help="index the corpus (only changed files are re-embedded)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and embed everything again")
    p.set_defaults(run=cmd_index)

    p = sub.add_parser(
        "add", parents=[common], help="add files to the corpus and the index (.txt, .md, .pdf, .docx, .html)"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="the files (a PDF, Word file or web page is converted)")
    p.add_argument("--replace", action="store_true", help="replace a different file of the same name")
    p.add_argument("--json", action="store_true", help="print what was added as JSON")
    p.set_defaults(run=cmd_add)

    p = sub.add_parser("search", parents=[common], help="show the passages that best match a question")
    p.add_argument("question", help="the question, or - to read one question a line from stdin")
    p.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON (one line per question with -)")
    p.set_defaults(run=cmd_search)

    p = sub.add_parser("ask", parents=[common], help="a short answer with verified citations")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer contract as JSON")
    p.add_argument("--fast", action="store_true", help="quote the best supporting sentence; no generation")
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("chat", parents=[common], help="a conversation in the terminal (follow-ups work)")
    p.add_argument("--fast", action="store_true", help="quote instead of generating")
    p.set_defaults(run=cmd_chat)

    p = sub.add_parser("serve", parents=[common], help="the web chat and the HTTP API (and Slack) in one server")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--no-key",
        action="store_true",
        help="listen on a non-loopback --host without ASSISTANT_API_KEY (anyone who reaches it may ask and read)",
    )
    p.add_argument(
        "--proxy",
        metavar="ADDR",
        help="the reverse proxy's address (or addresses, networks: comma-separated) whose X-Forwarded-For names the "
        "client, for the rate limits (env ASSISTANT_TRUSTED_PROXY; default: no proxy, the header is ignored)",
    )
    p.add_argument(
        "--slack",
        action="store_true",
        help="the Slack bot too, on the same model and queue: Socket Mode with SLACK_APP_TOKEN, "
        "else Slack's HTTP events at /slack/events with SLACK_SIGNING_SECRET (and SLACK_BOT_TOKEN either way)",
    )
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("eval", parents=[common], help="answer every item of an eval set; print the metrics")
    p.add_argument("file", help="eval set (JSON Lines), e.g. data/eval/article_qa_dev.jsonl")
    p.add_argument("--out", help="write one JSON answer per line here")
    p.add_argument("--sample", type=int, help="a fixed random sample of N items (seed 0)")
    p.add_argument("--fast", action="store_true", help="evaluate the extractive answers")
    p.add_argument("--index", action="store_true", help="bring the index up to date with --corpus first")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("gate", parents=[common], help="the quality gate: eval suites against recorded thresholds")
    p.add_argument(
        "--config", default="quality_gate.toml", help="the suites and thresholds (default ./quality_gate.toml)"
    )
    p.add_argument("--suite", action="append", help="run only this suite (repeatable)")
    p.add_argument(
        "--seed", type=int, help="sample other items than the file's seed (to set thresholds on a different sample)"
    )
    p.add_argument("--out", help="write every suite's metrics and failures here (JSON)")
    p.set_defaults(run=cmd_gate)

    p = sub.add_parser("calibrate", parents=[common], help="choose the refusal cut-offs on the calibration sets")
    p.add_argument(
        "--collect",
        type=int,
        metavar="N",
        help="first draft N more answerable and N unanswerable questions per set (real model, resumable)",
    )
    p.add_argument(
        "--evidence", action="store_true", help="first score the checks before the model over every question (no model)"
    )
    p.add_argument(
        "--set", action="append", help="with --collect/--evidence: only this set (drcd, cmrc-withheld, shifted)"
    )
    p.add_argument("--split", default="calibrate", help="calibrate (default) or holdout")
    p.add_argument("--out", help="where drafts, sweep.json and curve.png go (default docs/calibration)")
    p.set_defaults(run=cmd_calibrate)

    p = sub.add_parser("eval-retrieval", parents=[common], help="retrieval hit@1/3/5 on an eval set (JSON Lines)")
    p.add_argument("file", help="eval set, e.g. data/eval/article_qa_dev.jsonl")
    p.add_argument("--index", action="store_true", help="bring the index up to date with --corpus first")
    p.add_argument("--misses", action="store_true", help="also list questions whose first passage missed")
    p.set_defaults(run=cmd_eval_retrieval)

    p = sub.add_parser("slack", parents=[common], help="run the Slack bot (Socket Mode, or --http for the Events API)")
    p.add_argument("--http", action="store_true", help="serve the HTTP Events API (needs SLACK_SIGNING_SECRET)")
    p.add_argument("--host", default="0.0.0.0", help="with --http: address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=3000, help="with --http: port (default 3000; path /slack/events)")
    p.add_argument("--fast", action="store_true", help="answer with cited quotes; no generation")
    p.set_defaults(run=cmd_slack)

    p = sub.add_parser("info", parents=[common], help="what is indexed, with which model, where")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("feedback", parents=[common], help="users' 👍/👎 on answers: a report, or eval items")
    p.add_argument(
        "action", choices=["report", "export"], help="report: counts, worst questions, trend; export: eval items"
    )
    p.add_argument("--out", help="export: write the eval items (JSON Lines) here")
    p.add_argument("--json", action="store_true", help="report: as JSON")
    p.set_defaults(run=cmd_feedback)
    return parser


def cmd_search(assistant: Assistant, args: argparse.Namespace) -> int:
    if args.k < 1:
        print("error: -k must be at least 1", file=sys.stderr)
        return 2
    questions: Iterable[str] = (line.rstrip("\n") for line in sys.stdin) if args.question == "-" else [args.question]
    for question in questions:
        if args.question == "-" and not question.strip():
            continue
        try:
            question = check_question(question)
        except InputError as exc:  # one question: exit 2 with the message; from stdin: report it, go on
            if args.question != "-":
                raise
            print(f"error: {exc}", file=sys.stderr)
            continue
        started = time.perf_counter()
        hits = assistant.search(question, k=args.k)
        if args.json and args.question == "-":
            print(
                json.dumps(
                    {
                        "question": question,
                        "hits": [h.to_dict() for h in hits],
                        "seconds": round(time.perf_counter() - started, 4),
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
        elif args.json:
            print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        else:
            print_hits(question, hits)
    return 0


def cmd_ask(assistant: Assistant, args: argparse.Namespace) -> int:
    answer = ask_streaming(assistant, args.question, [], fast=args.fast, show_draft=not args.json)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_answer(answer))
    return 0


def cmd_chat(assistant: Assistant, args: argparse.Namespace) -> int:
    print("Loading…", end="", file=sys.stderr, flush=True)
    assistant.warm(model=not args.fast)
    print("\rAsk about the corpus; an empty line or Ctrl-D ends the chat.", file=sys.stderr)
    history: list[str] = []
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            return 0
        if question in ("", "exit", "quit"):
            return 0
        try:
            answer = ask_streaming(assistant, question, history, fast=args.fast, show_draft=True)
        except AssistantError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(render_answer(answer))
        history.append(question)


if __name__ == "__main__":
    sys.exit(main())
