"""Adding documents (issue 23): how long `Assistant.add` takes for a PDF, a Word file and a web page, and
whether answers from the converted text are as good as from the same text given as plain text.

A "report" is made of DRCD-dev paragraphs (Chinese Wikipedia, CC BY-SA; `--articles` of its articles, each a
section under its title) in four forms: .txt (the baseline), .pdf (reportlab, A4, wrapped as a typesetter
wraps), .docx and .html. Each is added, in a fresh copy of one index holding the packaged article (real
e5-small embeddings), and DRCD's answerable questions about those articles are asked of it with the real
local model; the same questions for every form, in the same run. Reported: seconds to add, chunks,
embedding rate, answer accuracy, p50 time, prompt/generated tokens and tokens/s.

Run: .venv/bin/python bench/bench_add.py [--articles 10] [--questions 30]   (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.corpus.add import Upload
from assistant.factory import build_assistant
from assistant.quality.evaluate import answer_is_right, read_items
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DRCD = ROOT / "data" / "eval" / "drcd-dev"
OUT = ROOT / "bench" / "out"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=10, help="DRCD articles in the report")
    parser.add_argument("--questions", type=int, default=30, help="questions asked of each form")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sections, files = _report(args.articles, random.Random(args.seed))
    items = [i for i in read_items(DRCD / "qa.jsonl") if i.answerable and i.source in files]
    items = random.Random(args.seed).sample(items, min(args.questions, len(items)))
    forms = {"txt": _txt(sections), "pdf": _pdf(sections), "docx": _docx(sections), "html": _html(sections)}
    with tempfile.TemporaryDirectory(prefix="bench-add-") as tmp:
        base = Path(tmp) / "base"
        shutil.copytree(ROOT / "corpus", base / "corpus")
        build_assistant(_settings(base)).build_index()
        rows = [_measure(Path(tmp) / name, base, f"report.{name}", data, items) for name, data in forms.items()]
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"articles": args.articles, "questions": len(items), "seed": args.seed, "rows": rows}
    (OUT / "add.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(_table(result))
    return 0


def _report(n: int, rng: random.Random) -> tuple[list[tuple[str, list[str]]], set[str]]:
    """`n` DRCD articles (all their paragraph files), each a section: (title, paragraphs)."""
    by_article: dict[str, list[Path]] = {}
    for path in sorted((DRCD / "corpus").glob("*.txt")):
        by_article.setdefault(path.stem.rsplit("-", 1)[0], []).append(path)
    chosen = rng.sample(sorted(by_article), n)
    sections, files = [], set()
    for article in chosen:
        title, paragraphs = "", []
        for path in by_article[article]:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            title, paragraphs = lines[0], [*paragraphs, *lines[1:]]
            files.add(path.name)
        sections.append((title, paragraphs))
    return sections, files


def _txt(sections: list[tuple[str, list[str]]]) -> bytes:
    return "\n\n".join(f"{t}\n\n" + "\n\n".join(ps) for t, ps in sections).encode("utf-8")


def _pdf(sections: list[tuple[str, list[str]]]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    body = ParagraphStyle("b", fontName="STSong-Light", fontSize=11, leading=17, wordWrap="CJK", spaceAfter=8)
    head = ParagraphStyle("h", fontName="STSong-Light", fontSize=15, leading=22, spaceAfter=8)
    buffer = io.BytesIO()
    story = [p for t, ps in sections for p in (Paragraph(t, head), *(Paragraph(x, body) for x in ps))]
    SimpleDocTemplate(buffer, pagesize=A4, title="DRCD 条目汇编", invariant=1).build(story)
    return buffer.getvalue()


def _docx(sections: list[tuple[str, list[str]]]) -> bytes:
    import docx

    document = docx.Document()
    for title, paragraphs in sections:
        document.add_heading(title, 1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _html(sections: list[tuple[str, list[str]]]) -> bytes:
    body = "".join(f"<h2>{t}</h2>" + "".join(f"<p>{p}</p>" for p in ps) for t, ps in sections)
    head = "<!DOCTYPE html><html><head><title>DRCD 条目汇编</title></head>"
    return f"{head}<body><article>{body}</article></body></html>".encode()


def _settings(root: Path) -> Settings:
    corpus, index = root / "corpus", root / "index"
    return Settings.load(env={}, corpus=corpus, index_dir=index, embeddings="e5-small", collection="bench-add")


def _measure(root: Path, base: Path, name: str, data: bytes, items: list[Any]) -> dict[str, Any]:
    shutil.copytree(base, root)
    assistant = build_assistant(_settings(root))
    assistant.answerer.warm()
    started = time.perf_counter()
    (added,), report = assistant.add([Upload(name, data)])
    seconds = time.perf_counter() - started
    answers = [assistant.ask(i.turns[-1]).to_dict() for i in items]
    right = [answer_is_right(a, i) for a, i in zip(answers, items, strict=True)]
    from_it = [bool(a["citations"]) and a["citations"][0]["source"] == added.source for a in answers]
    usage = [a["usage"] for a in answers if a["usage"].get("calls")]
    generate = [a["timings"].get("generate_s", 0) for a in answers if a["usage"].get("calls")]
    row = {
        "form": name,
        "bytes": len(data),
        "text_chars": len((root / "corpus" / added.source).read_text(encoding="utf-8")),
        "chunks": added.chunks,
        "embedded": report.embedded,
        "add_s": round(seconds, 2),
        "chunks_per_s": round(report.embedded / seconds, 2),
        "accuracy": round(sum(right) / len(items), 3),
        "cited_from_it": round(sum(from_it) / len(items), 3),
        "refused": sum(a["refused"] for a in answers),
        "total_p50_s": round(statistics.median(a["timings"]["total_s"] for a in answers), 2),
        "prompt_tokens_p50": statistics.median(u["prompt_tokens"] for u in usage) if usage else 0,
        "completion_tokens_p50": statistics.median(u["completion_tokens"] for u in usage) if usage else 0,
        "generated_tokens_per_s": round(sum(u["completion_tokens"] for u in usage) / max(sum(generate), 1e-9), 1),
    }
    print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
    assistant.close()
    return row


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['articles']} DRCD articles as one report; {result['questions']} of their questions asked of each",
        "| form | bytes | chunks | add (s) | chunks/s | accuracy | cited from it | refused | total p50 (s) |"
        " prompt / generated tokens p50 | generated tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['form']} | {r['bytes']:,} | {r['chunks']} | {r['add_s']} | {r['chunks_per_s']} | {r['accuracy']} | "
            f"{r['cited_from_it']} | {r['refused']} | {r['total_p50_s']} | {r['prompt_tokens_p50']} / "
            f"{r['completion_tokens_p50']} | {r['generated_tokens_per_s']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
