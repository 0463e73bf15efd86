from pathlib import Path

import pytest

from assistant.corpus.ingest import load_corpus, parse_document, read_document
from assistant.errors import CorpusError

from conftest import ARTICLE, ARTICLE_DIR, make_assistant

CHROME = [
    "ZAKER",
    "17分钟前",
    "相关标签",
    "最新评论",
    "没有更多评论了",
    "扫码分享",
    "热门推荐",
    "查看更多内容",
    "泡泡战士",
]


def body(doc):
    return "\n".join(doc.text[p.start : p.end] for p in doc.paragraphs)


def test_article_chrome_is_stripped_and_metadata_recovered():
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    text = body(doc)
    for chrome in CHROME:
        assert chrome not in text, chrome
    assert doc.title == "阶跃星辰凭什么拿最多的钱"
    assert doc.meta["byline"].startswith("文 I 下海")
    assert doc.meta["outlet"].startswith("钛媒体")
    assert text.startswith("2026 年 1 月 26 日")
    assert text.endswith("正站在这个时代的风口之上。")


def test_article_sections_are_recovered_in_order():
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    sections = list(dict.fromkeys(p.section for p in doc.paragraphs))
    assert sections == ["", "赛道洗牌", "资本逻辑与估值密码", "从技术创新到商业闭环", "阶跃星辰的挑战", "结语"]
    assert all(doc.text[p.start : p.end] not in sections for p in doc.paragraphs)


def test_paragraph_offsets_point_into_the_unchanged_file():
    original = ARTICLE.read_text(encoding="utf-8")
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    assert doc.text == original
    assert [p.number for p in doc.paragraphs] == list(range(1, len(doc.paragraphs) + 1))
    for p in doc.paragraphs:
        assert original[p.start : p.end].strip() == original[p.start : p.end] != ""


def test_other_captured_pages_are_cleaned_by_the_same_rules():
    page = (
        "首页 | 新闻 | 登录\n3小时前\n\n某公司完成新一轮融资\n\n作者:张三\n\n"
        "某公司今日宣布完成 10 亿元融资。本轮由甲基金领投。\n\n公司背景\n\n"
        "该公司成立于 2020 年,专注于芯片设计。\n\n推荐阅读\n\n另一篇无关文章的标题\n\n无关正文。"
    )
    doc = parse_document(page, "other.txt", {})
    assert doc.title == "某公司完成新一轮融资"
    assert doc.meta["byline"] == "作者:张三"
    assert body(doc) == "某公司今日宣布完成 10 亿元融资。本轮由甲基金领投。\n该公司成立于 2020 年,专注于芯片设计。"
    assert [p.section for p in doc.paragraphs] == ["", "公司背景"]


def test_english_page_chrome_and_markdown_headings():
    page = (
        "Home  Log in\n# Chips are back\n\nIntro line one\nwraps here.\n\n## Money\n\n"
        "They raised $5 bn.\n\nRelated articles\n\nOther story"
    )
    doc = parse_document(page, "en.md", {})
    assert doc.title == "Chips are back"
    assert body(doc) == "Intro line one\nwraps here.\nThey raised $5 bn."
    assert [p.section for p in doc.paragraphs] == ["", "Money"]


def test_plain_passage_without_chrome_keeps_first_line_as_title():
    doc = parse_document("泡泡战士\n基于《跑跑卡丁车》开发的游戏。玩家以水枪泡封敌人。", "trial.txt", {})
    assert doc.title == "泡泡战士"
    assert body(doc) == "基于《跑跑卡丁车》开发的游戏。玩家以水枪泡封敌人。"


def test_bad_files_are_skipped_with_a_reason_and_the_rest_is_ingested(tmp_path: Path):
    (tmp_path / "good.txt").write_text("标题\n\n正文第一句。正文第二句。", encoding="utf-8")
    (tmp_path / "gbk.txt").write_bytes("标题\n正文。".encode("gb18030"))
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("a,b", encoding="utf-8")
    (tmp_path / "good.meta.json").write_text("{not json", encoding="utf-8")
    docs, skipped = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["good.txt"]
    reasons = {s.source: s.reason for s in skipped}
    assert set(reasons) == {"gbk.txt", "blob.txt", "empty.txt"}
    assert "UTF-8" in reasons["gbk.txt"] and "iconv" in reasons["gbk.txt"]
    assert "binary" in reasons["blob.txt"]


def test_a_link_is_never_followed_and_is_listed_with_the_reason(tmp_path: Path):
    """`ln -s /etc/passwd corpus/x.txt; assistant index` must not put that file in the index: a link out of the
    corpus is never read, a link inside it is not followed either (its file is indexed where it lies), and each
    is listed as skipped with the reason, as `assistant index` shows skipped files."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir(), outside.mkdir()
    (outside / "secret.txt").write_text("内部文件\n\n服务器的口令是 hunter2，请勿外传。", encoding="utf-8")
    (outside / "title.json").write_text('{"title": "口令 hunter2"}', encoding="utf-8")
    (corpus / "good.txt").write_text("标题\n\n正文第一句。正文第二句。", encoding="utf-8")
    (corpus / "x.txt").symlink_to(outside / "secret.txt")
    (corpus / "again.txt").symlink_to(corpus / "good.txt")
    (corpus / "folder").symlink_to(outside, target_is_directory=True)
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")
    (corpus / "good.meta.json").symlink_to(outside / "title.json")
    docs, skipped = load_corpus(corpus)
    assert [d.source for d in docs] == ["good.txt"] and docs[0].title == "标题", "the linked sidecar is not read"
    reasons = {s.source: s.reason for s in skipped}
    assert reasons["x.txt"].startswith("a link to a file outside the corpus: never read")
    assert reasons["folder"].startswith("a link to a file outside the corpus: never read")
    assert reasons["again.txt"] == "a link: never followed (the file it points to is indexed where it lies)"
    assert reasons["loop.txt"].startswith("a link that cannot be resolved")

    assistant = make_assistant(corpus, tmp_path / "index")
    assistant.build_index()
    assert "x.txt" in {s.source for s in assistant.skipped}
    assert list(assistant.index.documents()) == ["good.txt"]
    assert all("hunter2" not in h.chunk.text for h in assistant.search("服务器的口令是什么？", k=5))


def test_missing_corpus_directory_says_what_to_do(tmp_path: Path):
    with pytest.raises(CorpusError, match="ASSISTANT_CORPUS"):
        load_corpus(tmp_path / "nope")


def test_sidecar_metadata_overrides_and_subdirectories_are_ingested(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("Some page\n\nText here. More text.", encoding="utf-8")
    (tmp_path / "sub" / "a.meta.json").write_text(
        '{"title": "Some page", "date": "2026-01-01", "x": 1}', encoding="utf-8"
    )
    docs, _ = load_corpus(tmp_path)
    assert docs[0].source == "sub/a.txt"
    assert docs[0].meta == {"title": "Some page", "date": "2026-01-01"}


def test_shipped_corpus_has_only_the_article():
    docs, skipped = load_corpus(ARTICLE_DIR)
    assert [d.source for d in docs] == ["stepfun-b-plus-round.txt"] and not skipped


# -- malformed files and sidecars ----------------------------------------------------------------


def test_sidecar_fields_of_the_wrong_type_are_ignored_and_the_rest_kept(tmp_path: Path, caplog):
    (tmp_path / "a.txt").write_text("正文第一句。正文第二句。", encoding="utf-8")
    (tmp_path / "a.meta.json").write_text(
        '{"title": ["not", "text"], "outlet": {"x": 1}, "byline": true, "date": 2026, "url": "https://x.example/a\\n"}',
        encoding="utf-8",
    )
    [doc], _ = load_corpus(tmp_path)
    assert doc.meta == {"date": "2026", "url": "https://x.example/a"} and doc.title == "a"
    assert "ignoring title in sidecar a.meta.json: expected text, got list" in caplog.text


@pytest.mark.parametrize("sidecar", [b"{not json", b"[1, 2]", b"\xff\xfe{}", b"null", b""])
def test_a_malformed_sidecar_is_ignored_with_a_warning(tmp_path: Path, caplog, sidecar: bytes):
    (tmp_path / "a.txt").write_text("标题\n\n正文。", encoding="utf-8")
    (tmp_path / "a.meta.json").write_bytes(sidecar)
    [doc], skipped = load_corpus(tmp_path)
    assert doc.title == "标题" and not skipped
    assert "ignoring sidecar a.meta.json" in caplog.text


def test_binary_files_are_skipped_wherever_their_nul_bytes_are(tmp_path: Path):
    (tmp_path / "late-nul.txt").write_bytes(("正文。" * 5000).encode() + b"\x00tail")
    (tmp_path / "no-nul.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 10)
    (tmp_path / "ok.txt").write_text("标题\n\n正文。", encoding="utf-8")
    docs, skipped = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["ok.txt"]
    assert {s.source: s.reason for s in skipped} == {
        "late-nul.txt": "looks like a binary file; only UTF-8 .txt/.md text is ingested",
        "no-nul.txt": "looks like a binary file; only UTF-8 .txt/.md text is ingested",
    }


def test_a_byte_order_mark_is_not_part_of_the_title(tmp_path: Path):
    (tmp_path / "bom.txt").write_bytes("\ufeff某公司完成融资\n\n某公司今日宣布完成 10 亿元融资。".encode())
    [doc], _ = load_corpus(tmp_path)
    assert doc.title == "某公司完成融资" and doc.text.startswith("\ufeff")
    assert doc.text[doc.paragraphs[0].start : doc.paragraphs[0].end] == "某公司今日宣布完成 10 亿元融资。"


def test_unreadable_and_oversized_files_are_skipped_with_what_to_do(tmp_path: Path, monkeypatch):
    for name in ("locked.txt", "big.txt", "ok.txt"):
        (tmp_path / name).write_text("标题\n\n正文。" * (200 if name == "big.txt" else 1), encoding="utf-8")
    real = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr("assistant.corpus.ingest.MAX_FILE_BYTES", 1000)
    docs, skipped = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["ok.txt"]
    reasons = {s.source: s.reason for s in skipped}
    assert reasons["locked.txt"] == "cannot be read (Permission denied): check that it exists and its permissions"
    assert reasons["big.txt"].startswith("too large (") and "split it" in reasons["big.txt"]


def test_an_empty_corpus_directory_yields_nothing_and_indexing_it_says_what_to_add(tmp_path: Path):
    assert load_corpus(tmp_path) == ([], [])
    with pytest.raises(CorpusError, match=r"nothing to index in .*: add \.txt or \.md files"):
        make_assistant(tmp_path, tmp_path / "index").build_index()
