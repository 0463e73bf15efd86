"""An add cut off by `kill -9` (`corpus.journal`, `Assistant.recover`): a real process adds a PDF replacing
another and is killed at the worst moments; at the next start corpus and index agree again, as before the add."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.corpus.add import Upload
from assistant.corpus.ingest import load_corpus
from assistant.corpus.journal import JOURNAL

from conftest import make_assistant
from documents import REPORT_TITLE, pdf_bytes

pytest.importorskip("reportlab", reason="pip install -e '.[dev]' (reportlab makes the test PDFs)")

NEWER = ("星河电池公司2025年的营业收入修正为九十一亿元。",)

# A process that adds report.pdf (replacing the one there) and is killed, by itself, while the index is being
# updated or right after the update was switched in, before the journal is forgotten.
ADD_AND_DIE = """
import os, signal, sys
from pathlib import Path
from assistant.corpus.add import Upload
from assistant.factory import build_assistant
from assistant.settings import Settings

corpus, index, moment = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
assistant = build_assistant(Settings.load(env={}, corpus=corpus, index_dir=index, embeddings="fake"))
sync = assistant.index.sync

def dying_sync(*args, **kwargs):
    if moment == "after the index update":
        sync(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

assistant.index.sync = dying_sync
assistant.add([Upload("report.pdf", Path(sys.argv[4]).read_bytes())], replace=True)
"""


def agree(corpus: Path, assistant) -> bool:
    """Whether the index holds exactly the corpus's documents, each as it is on disk."""
    documents, _ = load_corpus(corpus)
    indexed = assistant.index.documents()
    return {d.source: d.sha256 for d in documents} == {s: d["sha256"] for s, d in indexed.items()}


def kill_during_add(corpus: Path, index: Path, moment: str, tmp_path: Path) -> None:
    newer = tmp_path / "newer.pdf"
    newer.write_bytes(pdf_bytes(title="星河电池年报（修订）", paragraphs=NEWER))  # a new title: a new sidecar too
    root = Path(__file__).resolve().parents[1]
    died = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ADD_AND_DIE), str(corpus), str(index), moment, str(newer)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert died.returncode == -9, died.stderr


@pytest.fixture
def indexed(article_corpus: Path, tmp_path: Path):
    """The article and report.pdf, added and indexed."""
    assistant = make_assistant(article_corpus, tmp_path / "index")
    assistant.build_index()
    assistant.add([Upload("report.pdf", pdf_bytes())])
    return assistant


@pytest.mark.parametrize("moment", ["while indexing", "after the index update"])
def test_an_add_killed_midway_is_undone_at_the_next_start(indexed, article_corpus, tmp_path, moment):
    before = {p.name: p.read_bytes() for p in article_corpus.iterdir() if not p.name.startswith(".")}
    kill_during_add(article_corpus, tmp_path / "index", moment, tmp_path)
    assert (article_corpus / JOURNAL).is_file(), "the crash left the journal"
    assert (article_corpus / "report.pdf").read_bytes() != before["report.pdf"], "and the new file in the corpus"

    restarted = make_assistant(article_corpus, tmp_path / "index")  # as `assistant serve` starts
    if moment == "while indexing":
        assert not agree(article_corpus, restarted), "the corpus holds a file the index does not"
    else:  # the index was switched to the new file, but the client never heard that the add was done
        assert "九十一亿元" in restarted.search("星河电池营业收入", k=1)[0].chunk.text
    assert sorted(restarted.recover()) == ["report.pdf", "report.pdf.meta.json", "report.pdf.txt"]
    after = {p.name: p.read_bytes() for p in article_corpus.iterdir() if not p.name.startswith(".")}
    assert after == before, "the corpus is as it was before the add"
    assert sorted(p.name for p in article_corpus.iterdir() if p.name.startswith(".")) == [".add.lock"]
    assert agree(article_corpus, restarted), "and the index holds what the corpus holds"
    assert "九十一亿元" not in restarted.search("星河电池营业收入", k=1)[0].chunk.text
    assert json.loads((article_corpus / "report.pdf.meta.json").read_text())["title"] == REPORT_TITLE
    assert restarted.recover() == [], "once is enough"


def test_the_next_add_undoes_a_killed_one_first(article_corpus, tmp_path):
    """The first add into an empty corpus is killed while indexing; the next add puts it back, then adds."""
    for path in article_corpus.iterdir():
        path.unlink()
    kill_during_add(article_corpus, tmp_path / "index", "while indexing", tmp_path)
    assert (article_corpus / "report.pdf").is_file()

    restarted = make_assistant(article_corpus, tmp_path / "index")
    (added,), _ = restarted.add([Upload("minutes.txt", "会议决定由李雷负责华东区的渠道拓展。".encode())])
    assert added.chunks >= 1 and not (article_corpus / JOURNAL).exists()
    assert sorted(p.name for p in article_corpus.iterdir() if not p.name.startswith(".")) == ["minutes.txt"]
    assert agree(article_corpus, restarted)


def test_a_planted_journal_cannot_reach_outside_the_corpus_through_a_linked_folder(tmp_path: Path):
    """Whoever can write to the corpus could plant a journal naming `link/victim`, `link` leading outside: putting
    the add back must neither replace nor delete a file there."""
    from assistant.corpus.journal import put_back

    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir()
    outside.mkdir()
    (outside / "victim").write_text("kept", encoding="utf-8")
    (outside / "other").write_text("kept", encoding="utf-8")
    (corpus / "link").symlink_to(outside, target_is_directory=True)
    (corpus / ".add.undo.0").write_text("planted", encoding="utf-8")
    entries = [{"path": "link/victim", "undo": ".add.undo.0"}, {"path": "link/other", "undo": None}]
    (corpus / JOURNAL).write_text(json.dumps({"files": entries}), encoding="utf-8")
    assert put_back(corpus) == []
    assert (outside / "victim").read_text(encoding="utf-8") == "kept" and (outside / "other").exists()
