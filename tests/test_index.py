"""Index bookkeeping on a real embedded Chroma: incremental sync, model check, missing or damaged index,
the layout of builds (and of an index from before them)."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.core import Assistant
from assistant.errors import CorpusError, IndexCorruptError, IndexMismatchError, IndexNotFoundError
from assistant.factory import build_assistant
from assistant.index.builds import BuildDir
from assistant.settings import Settings

from conftest import CountingEmbeddings, make_assistant

CTO = "CTO 是谁"  # the article answers: 朱亦博


def current(index_dir: Path) -> Path:
    path = BuildDir(index_dir).current()
    assert path is not None
    return path


def counting_assistant(corpus: Path, index_dir: Path) -> tuple[Assistant, CountingEmbeddings]:
    assistant = make_assistant(corpus, index_dir)
    counter = CountingEmbeddings()
    assistant.index.embeddings = counter
    return assistant, counter


def write(corpus: Path, name: str, body: str) -> None:
    (corpus / name).write_text(f"{name} 标题\n\n{body}", encoding="utf-8")


def test_reindexing_an_unchanged_corpus_embeds_nothing(article_corpus: Path, tmp_path: Path):
    assistant, counter = counting_assistant(article_corpus, tmp_path / "idx")
    first = assistant.build_index()
    assert first.added == ["stepfun-b-plus-round.txt"] and first.embedded == first.chunks == counter.embedded > 15
    pointer = (tmp_path / "idx" / "CURRENT").read_text()
    again, counter2 = counting_assistant(article_corpus, tmp_path / "idx")  # a new process, same index
    report = again.build_index()
    assert counter2.embedded == 0 and report.embedded == 0
    assert (report.added, report.changed, report.removed) == ([], [], [])
    assert report.chunks == first.chunks
    assert (tmp_path / "idx" / "CURRENT").read_text() == pointer, "nothing changed, so no new build"
    assert len(list((tmp_path / "idx" / "builds").iterdir())) == 1


def test_a_changed_file_re_embeds_only_its_new_chunks(article_corpus: Path, tmp_path: Path):
    write(article_corpus, "other.txt", "另一家公司完成了 3 亿元 A 轮融资。投资方包括甲基金。")
    assistant, counter = counting_assistant(article_corpus, tmp_path / "idx")
    assistant.build_index()
    article = article_corpus / "stepfun-b-plus-round.txt"
    article.write_text(
        article.read_text(encoding="utf-8").replace("结语\n", "结语\n\n编者按:本段为新增内容。\n", 1), encoding="utf-8"
    )
    counter.embedded = 0
    report = assistant.build_index()
    assert report.changed == ["stepfun-b-plus-round.txt"] and report.added == report.removed == []
    assert 1 <= counter.embedded <= 3  # the new paragraph's chunk(s), not the whole article
    assert any("编者按" in c.text for c in assistant.retriever.chunks)
    texts = [c.text for c in assistant.retriever.chunks]
    assert len(texts) == len(set(texts)), "no stale copies of old chunks"
    original = article.read_text(encoding="utf-8")
    assert all(original[c.start : c.end] == c.text for c in assistant.retriever.chunks if c.source == article.name)


def test_a_removed_file_loses_its_chunks(article_corpus: Path, tmp_path: Path):
    write(article_corpus, "other.txt", "另一家公司完成了 3 亿元 A 轮融资。")
    assistant, _ = counting_assistant(article_corpus, tmp_path / "idx")
    assistant.build_index()
    (article_corpus / "other.txt").unlink()
    report = assistant.build_index()
    assert report.removed == ["other.txt"]
    assert {c.source for c in assistant.retriever.chunks} == {"stepfun-b-plus-round.txt"}


def test_querying_with_another_embedding_model_is_refused(article_corpus: Path, tmp_path: Path):
    make_assistant(article_corpus, tmp_path / "idx").build_index()
    other = make_assistant(article_corpus, tmp_path / "idx", embeddings="use")
    with pytest.raises(IndexMismatchError, match=r"built with embeddings 'fake'.*assistant index --rebuild"):
        other.search("融资")
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        other.build_index()


def test_rebuild_switches_the_model(article_corpus: Path, tmp_path: Path):
    make_assistant(article_corpus, tmp_path / "idx").build_index()
    other = make_assistant(article_corpus, tmp_path / "idx", embeddings="st:all-MiniLM-L6-v2")
    report = other.build_index(rebuild=True)
    assert report.embedded == report.chunks
    assert other.info()["embeddings"] == "st:all-MiniLM-L6-v2"
    assert other.search("Step-3 MoE 321B", k=1)


def test_searching_before_indexing_says_to_run_index(article_corpus: Path, tmp_path: Path):
    assistant = make_assistant(article_corpus, tmp_path / "never-built")
    with pytest.raises(IndexNotFoundError, match="run `assistant index`"):
        assistant.search("融资")
    assert assistant.info()["exists"] is False


def test_an_empty_corpus_is_a_clear_error_and_keeps_the_old_index(article_corpus: Path, tmp_path: Path):
    assistant = make_assistant(article_corpus, tmp_path / "idx")
    assistant.build_index()
    empty = tmp_path / "empty"
    empty.mkdir()
    emptied = make_assistant(empty, tmp_path / "idx")
    emptied.index.collection_name = assistant.index.collection_name
    with pytest.raises(CorpusError, match="nothing to index"):
        emptied.build_index()
    assert assistant.info()["chunks"] > 15


def test_corpora_get_separate_default_indexes(tmp_path: Path):
    a = Settings.load(env={}, corpus=tmp_path / "a")
    b = Settings.load(env={}, corpus=tmp_path / "b")
    assert a.index_dir != b.index_dir and a.collection != b.collection


def test_settings_come_from_the_environment_and_flags_override(tmp_path: Path):
    env = {
        "ASSISTANT_CORPUS": str(tmp_path),
        "ASSISTANT_EMBEDDINGS": "use",
        "ASSISTANT_INDEX_DIR": str(tmp_path / "i"),
        "ASSISTANT_CHROMA_URL": "http://127.0.0.1:9",
    }
    s = Settings.load(env=env, embeddings="fake")
    assert (s.corpus, s.index_dir, s.embeddings, s.chroma_url) == (
        tmp_path,
        tmp_path / "i",
        "fake",
        "http://127.0.0.1:9",
    )


def test_info_reports_model_documents_and_location(article_corpus: Path, tmp_path: Path):
    assistant = build_assistant(
        Settings.load(env={}, corpus=article_corpus, index_dir=tmp_path / "i", embeddings="fake")
    )
    assistant.build_index()
    info = assistant.info()
    assert info["embeddings"] == "fake" and info["documents"] == 1
    assert str(tmp_path / "i") in info["location"]
    assert info["sources"]["stepfun-b-plus-round.txt"]["title"] == "阶跃星辰凭什么拿最多的钱"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda index: shutil.rmtree(current(index).parent), "missing or incomplete"),
        (lambda index: (index / "CURRENT").write_bytes(b"\xff\xfe/etc\n"), "CURRENT"),
    ],
    ids=["missing-build", "garbage-pointer"],
)
def test_a_damaged_pointer_says_to_rebuild(
    article_corpus: Path, tmp_path: Path, damage: Callable[[Path], object], message: str
):
    make_assistant(article_corpus, tmp_path / "index").build_index()
    damage(tmp_path / "index")
    damaged = make_assistant(article_corpus, tmp_path / "index")
    with pytest.raises(IndexCorruptError, match=rf"{message}.*run `assistant index --rebuild`"):
        damaged.search(CTO)
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        damaged.build_index()
    assert damaged.build_index(rebuild=True).added == ["stepfun-b-plus-round.txt"]
    assert "朱亦博" in damaged.search(CTO, k=1)[0].chunk.text


def test_an_index_from_before_builds_is_read_then_migrated(article_corpus: Path, tmp_path: Path):
    index_dir = tmp_path / "index"
    make_assistant(article_corpus, index_dir).build_index()
    shutil.move(current(index_dir), index_dir / "chroma")  # the old layout: index_dir/chroma, no pointer
    shutil.rmtree(index_dir / "builds")
    (index_dir / "CURRENT").unlink()
    old = make_assistant(article_corpus, index_dir)
    assert "朱亦博" in old.search(CTO, k=1)[0].chunk.text
    assert old.build_index().embedded == 0 and not (index_dir / "builds").exists(), "no change, no copy"
    (article_corpus / "other.txt").write_text("其他\n\n另一篇文章。", encoding="utf-8")
    assert old.build_index().added == ["other.txt"]
    assert (index_dir / "CURRENT").exists() and (index_dir / "chroma").exists(), "kept as the previous build"
    (article_corpus / "other.txt").unlink()
    assert old.build_index().removed == ["other.txt"]
    assert not (index_dir / "chroma").exists() and "朱亦博" in old.search(CTO, k=1)[0].chunk.text


def test_a_build_reaches_the_disk_before_the_pointer_names_it(
    article_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every file and directory of a new build is fsynced before CURRENT is replaced: a power cut after the
    switch cannot leave the pointer naming a build whose data never reached the disk."""
    import os

    from assistant.index import builds

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync " + os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append(f"replace {dst}")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(builds.os, "fsync", fsync)
    monkeypatch.setattr(builds.os, "replace", replace)
    make_assistant(article_corpus, tmp_path / "index").build_index()
    switched = events.index(f"replace {tmp_path / 'index' / 'CURRENT'}")
    build = current(tmp_path / "index")
    synced = {e.removeprefix("fsync ") for e in events[:switched] if e.startswith("fsync ")}
    files = {str(p) for p in build.rglob("*") if p.is_file()}
    assert files and files <= synced, f"not fsynced before the switch: {sorted(files - synced)}"
    assert {str(build), str(build.parent), str(build.parent.parent)} <= synced
