"""Documents added by users: real PDF, Word and HTML files made here, converted, saved beside their
text, indexed incrementally and cited (`corpus.convert`, `corpus.add`, `Assistant.add`, `assistant add`,
`POST /api/documents`). The page's upload is in test_web.py, the server-mode store in test_server.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from assistant.corpus.add import Upload
from assistant.corpus.convert import convert, reflow, sniff
from assistant.errors import CorpusError, IndexNotWritableError

from conftest import CountingEmbeddings, make_assistant, run_cli, running, scripted, with_llm
from documents import (
    LAUNCH,
    LAUNCH_TITLE,
    MINUTES,
    MINUTES_TITLE,
    REPORT,
    REPORT_TITLE,
    docx_bytes,
    html_bytes,
    image_only_pdf,
    pdf_bytes,
    word_with_body,
    write,
)

pytest.importorskip("reportlab", reason="pip install -e '.[dev]' (reportlab makes the test PDFs)")


def files_in(corpus: Path) -> list[str]:
    """The corpus's files as a user sees them (not the hidden `.add.lock`)."""
    return sorted(p.name for p in corpus.iterdir() if not p.name.startswith("."))


# -- conversion: the kind by content, the text kept whole ------------------------------------------


def test_a_pdf_word_file_and_web_page_become_their_text_with_title():
    pdf = convert("report.pdf", pdf_bytes())
    assert pdf.kind == "pdf" and pdf.meta["title"] == REPORT_TITLE and pdf.meta["byline"] == "记者 王敏"
    assert [p for p in pdf.text.split("\n\n")] == [REPORT_TITLE, *REPORT], "wrapped lines joined back, one a paragraph"

    word = convert("minutes.docx", docx_bytes())
    assert word.kind == "docx" and word.meta == {"title": MINUTES_TITLE}
    assert word.text.split("\n\n") == [MINUTES_TITLE, MINUTES[0], "地区 | 负责人", "华南 | 韩梅梅", *MINUTES[1:]]

    page = convert("launch.html", html_bytes())
    assert page.kind == "html" and page.meta["title"] == LAUNCH_TITLE
    assert all(p in page.text.split("\n\n") for p in LAUNCH) and "版权所有" not in page.text


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("report.pdf", html_bytes(), "named .pdf but its content is a web page (HTML): rename it to end in .html"),
        ("notes.txt", pdf_bytes(), "named .txt but its content is a PDF: rename it to end in .pdf"),
        ("minutes.docx", b"PK\x03\x04 not really a zip", "named .docx but its content is not a Word document"),
        ("minutes.docx", b"PK\x03\x04" + b"\x00" * 40, "named .docx but its content is not a Word document"),
        ("tool.exe", b"MZ\x90\x00", "only .txt, .md, .pdf, .docx, .html, .htm files can be added"),
        ("notes.txt", "中文".encode("gbk") * 10, "not valid UTF-8"),
        ("report.pdf", b"%PDF-1.7\n1 0 obj << >>\n", "cannot be read as a PDF"),
        ("scan.pdf", image_only_pdf(), "holds no text (a scanned PDF holds pictures of text: run OCR on it first)"),
        ("locked.pdf", pdf_bytes(password="s3cret"), "password-protected"),
        ("empty.md", b"  \n", "is empty"),
    ],
)
def test_a_file_that_cannot_be_added_says_why(name, data, says):
    with pytest.raises(CorpusError, match=None) as caught:
        convert(name, data)
    assert says in str(caught.value) and name in str(caught.value)


def test_a_word_file_that_would_unpack_to_gigabytes_is_refused_before_it_is_opened():
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", "<w:document/>")
        with archive.open("word/media/padding.bin", "w", force_zip64=True) as padding:  # deflates to ~200 kB
            for _ in range(210):
                padding.write(b"\0" * 1_000_000)
    assert len(buffer.getvalue()) < 1_000_000
    with pytest.raises(CorpusError, match="unpacks to 210,0"):
        convert("big.docx", buffer.getvalue())


def test_a_small_word_file_of_millions_of_empty_paragraphs_is_refused_in_seconds_not_parsed():
    """89 kB that unzip to 6 million `<w:p/>`: python-docx took 75 s and 750 MB of the server for it."""
    import time

    bomb = word_with_body(b"<w:p/>" * 6_000_000)
    assert len(bomb) < 100_000 and sniff(bomb) == "docx", "small, and a Word file by its content"
    started = time.monotonic()
    with pytest.raises(CorpusError, match=r"bomb.docx: the Word file holds over 200,000 paragraphs \(the limit"):
        convert("bomb.docx", bomb)
    assert time.monotonic() - started < 10, "refused while counting, before python-docx built its tree"


def test_a_word_file_whose_body_part_is_renamed_is_counted_all_the_same():
    """python-docx finds the body by its relationship, not its name: a `word/document.bin` (a decoy
    document.xml beside it, so the file still sniffs as Word) is counted like any part."""
    import zipfile

    bomb = zipfile.ZipFile(io.BytesIO(word_with_body(b"<w:p/>" * 300_000)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in bomb.infolist():
            content = bomb.read(info.filename).replace(b"word/document.xml", b"word/document.bin")
            archive.writestr(info.filename.replace("word/document.xml", "word/document.bin"), content)
        archive.writestr("word/document.xml", b"<decoy/>")
    renamed = buffer.getvalue()
    assert sniff(renamed) == "docx"
    says = r"over 200,000 paragraphs \(the limit; counting stopped in word/document\.bin"
    with pytest.raises(CorpusError, match=says):
        convert("renamed.docx", renamed)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"<w:p>" + b"<w:r/>" * 400_001 + b"</w:p>", "over 400,000 runs"),
        (b"<w:p><w:r>" + b"<w:tab/>" * 2_000_001 + b"</w:r></w:p>", "over 2,000,000 elements"),
    ],
)
def test_a_word_file_past_its_run_or_element_limit_is_refused(body, says):
    with pytest.raises(CorpusError, match=says):
        convert("many.docx", word_with_body(body))


def test_a_word_file_that_would_keep_python_docx_busy_is_stopped_at_the_cpu_limit(monkeypatch):
    """Inside every count, a cell claiming to span two billion columns makes python-docx loop two billion times:
    the child process reading it is stopped at its CPU limit (2 s here), and the file refused saying so."""
    import time

    from assistant.corpus import isolated

    monkeypatch.setitem(isolated.CPU_SECONDS, "docx", 2)
    cell = b'<w:tc><w:tcPr><w:gridSpan w:val="2000000000"/></w:tcPr><w:p><w:r><w:t>x</w:t></w:r></w:p></w:tc>'
    spans = word_with_body(b"<w:p><w:r><w:t>text</w:t></w:r></w:p><w:tbl><w:tr>" + cell + b"</w:tr></w:tbl>")
    started = time.monotonic()
    with pytest.raises(CorpusError, match=r"span.docx: reading it took over 2 s of CPU time \(the limit for a Word"):
        convert("span.docx", spans)
    assert time.monotonic() - started < 30


def test_a_pdf_past_its_page_limit_is_refused():
    import io

    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pages = canvas.Canvas(buffer, invariant=1)
    for n in range(2_001):
        pages.drawString(100, 700, f"page {n}")
        pages.showPage()
    pages.save()
    with pytest.raises(CorpusError, match="long.pdf: the PDF has 2,001 pages; the limit is 2,000: split it"):
        convert("long.pdf", buffer.getvalue())


def test_kinds_are_told_by_content():
    assert sniff(pdf_bytes()) == "pdf" and sniff(docx_bytes()) == "docx" and sniff(html_bytes()) == "html"
    assert sniff("纯文本，没有标记。".encode()) == "text" and sniff(b"\x00\x01\x02") == ""
    assert sniff(b"<!-- saved --> <!DOCTYPE html><html><body>x</body></html>") == "html"
    assert convert("part.html", "<p>一段</p><p>两段</p><div>三段文字</div>".encode()).kind == "html", "a saved fragment"


def test_text_that_mentions_markup_or_a_pdf_header_stays_text():
    readme = (
        "# 说明\n\n<div align=center><a href='x'><img src='logo.png'></a></div>\n\n这是一段说明文字，足够长。".encode()
    )
    assert convert("README.md", readme).kind == "text"
    assert convert("note.txt", "PDF 文件以 %PDF-1.7 开头，以 %%EOF 结尾，这是一条笔记。".encode()).kind == "text"


def test_leading_comments_cannot_make_the_kind_check_hang():
    import threading

    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(sniff(b"<!---->" * 60 + b"x")), daemon=True)
    worker.start()
    worker.join(5)
    assert done == ["text"], "the check backtracked (2^60 steps with a nested regex)"


def test_reflow_joins_wrapped_lines_and_keeps_paragraphs_and_headings():
    page = (
        "Results\n"
        "The battery line reached full output in the sec-\n"
        "ond quarter, and margins rose with it across the\n"
        "whole year.\n"
        "Outlook\n"
        "新工厂预计在明年投产，产能将达到二十吉瓦时，\n"
        "主要供应储能市场。\n"
    )
    assert reflow(page).split("\n\n") == [
        "Results",
        "The battery line reached full output in the second quarter, and margins rose with it across the whole year.",
        "Outlook",
        "新工厂预计在明年投产，产能将达到二十吉瓦时，主要供应储能市场。",
    ]


# -- adding: saved beside the original, indexed incrementally, cited at exact offsets ---------------


@pytest.fixture
def assistant(article_corpus: Path, tmp_path: Path):
    assistant = make_assistant(article_corpus, tmp_path / "index")
    assistant.build_index()
    return assistant


def test_an_added_pdf_is_saved_beside_its_text_and_cited_at_exact_offsets(assistant, article_corpus, tmp_path):
    before = assistant.index.info()["chunks"]
    added, report = assistant.add([write(tmp_path, "report.pdf", pdf_bytes())])
    (a,) = added
    assert (a.original, a.source, a.kind, a.title) == ("report.pdf", "report.pdf.txt", "pdf", REPORT_TITLE)
    assert a.chunks >= 1 and report.added == ["report.pdf.txt"] and report.chunks == before + a.chunks
    assert report.embedded == a.chunks, "only the new document's chunks are embedded"
    assert (article_corpus / "report.pdf").read_bytes() == pdf_bytes()
    assert json.loads((article_corpus / "report.pdf.meta.json").read_text())["title"] == REPORT_TITLE

    hits = assistant.search("星河电池2025年的营业收入是多少？", k=3)
    chunk = next(h.chunk for h in hits if h.chunk.source == "report.pdf.txt")
    text = (article_corpus / "report.pdf.txt").read_text(encoding="utf-8")
    assert text[chunk.start : chunk.end] == chunk.text and "八十七亿元" in chunk.text

    with_llm(assistant, scripted("星河电池2025年的营业收入为八十七亿元 [1]。"))
    answer = assistant.ask("星河电池2025年营业收入多少？")
    assert not answer.refused and answer.citations[0].source == "report.pdf.txt", answer.to_dict()
    assert "八十七亿元" in answer.answer and "八十七亿元" in answer.citations[0].quote, "the fact, from the PDF"
    assert answer.citations[0].path == str(article_corpus / "report.pdf.txt")


def test_word_files_and_web_pages_are_added_together_and_adding_again_changes_nothing(assistant, tmp_path):
    files = [write(tmp_path, "minutes.docx", docx_bytes()), write(tmp_path, "launch.html", html_bytes())]
    added, _ = assistant.add(files)
    assert [(a.source, a.title) for a in added] == [
        ("minutes.docx.txt", MINUTES_TITLE),
        ("launch.html.txt", LAUNCH_TITLE),
    ]
    assert assistant.search("华东区渠道拓展由谁负责？", k=1)[0].chunk.source == "minutes.docx.txt"
    assert assistant.search("仓储机器人单台售价", k=1)[0].chunk.source == "launch.html.txt"
    again, report = assistant.add(files)
    assert all(a.unchanged for a in again) and report.embedded == 0


def test_a_bad_file_among_good_ones_adds_none_of_them(assistant, article_corpus, tmp_path):
    before, listing = assistant.index.info(), files_in(article_corpus)
    files = [write(tmp_path, "report.pdf", pdf_bytes()), write(tmp_path, "fake.pdf", html_bytes())]
    with pytest.raises(CorpusError, match="fake.pdf is named .pdf but its content is a web page"):
        assistant.add(files)
    assert files_in(article_corpus) == listing and assistant.index.info() == before


def test_a_different_file_of_the_same_name_is_replaced_only_when_asked(assistant, article_corpus, tmp_path):
    assistant.add([Upload("report.pdf", pdf_bytes())])
    newer = pdf_bytes(paragraphs=("星河电池公司2025年的营业收入修正为九十一亿元。",))
    with pytest.raises(CorpusError, match="a different report.pdf is already in the corpus: replace it"):
        assistant.add([Upload("report.pdf", newer)])
    assert (article_corpus / "report.pdf").read_bytes() == pdf_bytes()
    _, report = assistant.add([Upload("report.pdf", newer)], replace=True)
    assert report.changed == ["report.pdf.txt"]
    assert "九十一亿元" in assistant.search("星河电池营业收入", k=1)[0].chunk.text


def test_files_an_add_would_write_never_clash_silently(assistant, article_corpus):
    with pytest.raises(CorpusError, match=r"report.pdf.txt and report.pdf would both be saved as report.pdf.txt"):
        assistant.add(
            [Upload("report.pdf", pdf_bytes()), Upload("report.pdf.txt", "一段手写的文字，足够长。".encode())]
        )
    (article_corpus / "notes.pdf.txt").write_text("我自己写的笔记，不能被覆盖。", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"a different notes.pdf.txt is already in the corpus \(notes.pdf would"):
        assistant.add([Upload("notes.pdf", pdf_bytes())])
    assert (article_corpus / "notes.pdf.txt").read_text(encoding="utf-8") == "我自己写的笔记，不能被覆盖。"
    assistant.add([Upload("Report.pdf", pdf_bytes())])
    with pytest.raises(CorpusError, match="a different Report.pdf is already in the corpus"):
        assistant.add([Upload("report.pdf", pdf_bytes())])


def test_a_replaced_file_takes_its_old_title_with_it_and_an_undone_replace_restores_it(assistant, article_corpus):
    from langchain_core.embeddings import FakeEmbeddings

    assistant.add([Upload("report.pdf", pdf_bytes())])
    untitled = docx_bytes(title="", paragraphs=("星河电池公司2025年的营业收入修正为九十一亿元。", "其余不变。"))
    old_index = assistant.index.documents()
    broken = FakeEmbeddings(size=3)  # the wrong size: the write fails after the corpus was changed

    real, assistant.index.embeddings = assistant.index.embeddings, broken
    try:
        with pytest.raises(Exception) as caught:  # noqa: B017 - whatever the store says, the corpus must come back
            assistant.add(
                [Upload("report.docx", untitled), Upload("report.pdf", pdf_bytes(title="新标题"))], replace=True
            )
    finally:
        assistant.index.embeddings = real
    assert not isinstance(caught.value, CorpusError), "it failed while indexing, after the files were written"
    assert (article_corpus / "report.pdf").read_bytes() == pdf_bytes() and not (article_corpus / "report.docx").exists()
    assert json.loads((article_corpus / "report.pdf.meta.json").read_text())["title"] == REPORT_TITLE
    assert assistant.index.documents() == old_index, "the index is as before"

    (article_corpus / "old.docx.meta.json").write_text('{"title": "旧标题"}', encoding="utf-8")
    assistant.add([Upload("old.docx", untitled)], replace=True)
    assert not (article_corpus / "old.docx.meta.json").exists(), "a stale sidecar does not outlive its file"


def test_names_that_look_the_same_are_one_name(assistant, article_corpus):
    """`café.txt` composed (NFC) and decomposed (NFD, as a Mac writes it) are one name: saved composed, and
    clashing under the same rules as names that differ only in case."""
    import re
    import unicodedata

    composed, decomposed = unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt")
    assert composed != decomposed
    one, other = "咖啡馆的菜单上有拿铁和美式两种咖啡。".encode(), "咖啡馆下个月起改为晚上十点关门。".encode()
    with pytest.raises(CorpusError, match=re.escape(f"{composed} and {composed} would both be saved as {composed}")):
        assistant.add([Upload(composed, one), Upload(decomposed, other)])
    (added,), _ = assistant.add([Upload(decomposed, one)])
    assert (
        added.original == composed
        and composed in files_in(article_corpus)
        and decomposed not in files_in(article_corpus)
    )
    with pytest.raises(CorpusError, match=re.escape(f"a different {composed} is already in the corpus")):
        assistant.add([Upload(decomposed, other)])
    assert (article_corpus / composed).read_bytes() == one

    mac = unicodedata.normalize("NFD", "résumé.txt")  # copied in by hand, decomposed
    (article_corpus / mac).write_bytes(one)
    (again,), _ = assistant.add([Upload(unicodedata.normalize("NFC", mac), one)])
    assert again.unchanged and again.original == mac, "the same file, as it is spelled on disk"
    with pytest.raises(CorpusError, match="is already in the corpus"):
        assistant.add([Upload(unicodedata.normalize("NFC", mac), other)])


@pytest.mark.parametrize(
    ("name", "char"),
    [
        ("invoice\u202efdp.txt", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),  # shows as "invoicetxt.pdf"
        ("report\u2066.txt", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
        ("re\u200fport.txt", "U+200F (RIGHT-TO-LEFT MARK)"),
        ("note\u061c.txt", "U+061C (ARABIC LETTER MARK)"),
        ("report\u200b.txt", "U+200B (ZERO WIDTH SPACE)"),  # shows as "report.txt" beside it
        ("\ufeffreport.txt", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
        ("two\nlines.txt", "U+000A (a control character)"),
        ("bell\x07.txt", "U+0007 (a control character)"),
        ("next\x85line.txt", "U+0085 (a control character)"),
    ],
)
def test_names_with_direction_marks_or_control_characters_are_refused(assistant, article_corpus, name, char):
    import re

    listing = files_in(article_corpus)
    with pytest.raises(CorpusError, match=re.escape(f"is not a usable file name: it holds {char}")):
        assistant.add([Upload(name, "一段足够长的文字，说明这个文件确实有内容可以被索引。".encode())])
    assert files_in(article_corpus) == listing


def test_a_long_chinese_name_is_refused_before_the_disk_refuses_it(assistant):
    with pytest.raises(CorpusError, match="the name is over 200 bytes; shorten it"):
        assistant.add([Upload("星河电池" * 20 + ".pdf", pdf_bytes())])


def test_adds_in_two_processes_wait_for_each_other(assistant, article_corpus, monkeypatch):
    import fcntl
    import os

    import assistant.core as core
    from assistant.errors import IndexBusyError

    monkeypatch.setattr(core, "ADD_WAIT_S", 0.3)
    fd = os.open(article_corpus / ".add.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process's add would hold it (flock is per open file)
        with pytest.raises(IndexBusyError, match="another process has been adding files"):
            assistant.add([Upload("report.pdf", pdf_bytes())])
    finally:
        os.close(fd)
    assert not (article_corpus / "report.pdf").exists()
    assert assistant.add([Upload("report.pdf", pdf_bytes())])[0][0].chunks >= 1, "once released, the add goes on"


def test_a_failed_index_update_puts_the_corpus_back(assistant, article_corpus, monkeypatch):
    listing = files_in(article_corpus)

    def full_disk(*args, **kwargs):
        raise IndexNotWritableError("cannot write the index (No space left on device): free disk space")

    monkeypatch.setattr(assistant.index, "sync", full_disk)
    with pytest.raises(IndexNotWritableError):
        assistant.add([Upload("report.pdf", pdf_bytes())])
    assert files_in(article_corpus) == listing, "no file of the failed add is left"


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/cron.d/job.txt", "C:\\Users\\me\\notes.txt"])
def test_only_the_last_part_of_a_name_is_used(assistant, article_corpus, name):
    (added,), _ = assistant.add([Upload(name, "一段足够长的文字，说明这个文件确实有内容可以被索引和引用。".encode())])
    assert added.original in ("escape.txt", "job.txt", "notes.txt") and (article_corpus / added.original).is_file()


def test_hidden_names_and_files_over_the_limit_are_refused(article_corpus, tmp_path):
    small = make_assistant(article_corpus, tmp_path / "index", upload_max_bytes=1000)
    with pytest.raises(CorpusError, match=r"report.pdf is [\d,]+ bytes; the limit is 1,000"):
        small.add([Upload("report.pdf", pdf_bytes())])
    with pytest.raises(CorpusError, match="not a usable file name"):
        small.add([Upload(".bashrc.txt", b"some text that is long enough")])


def test_uploads_are_switched_by_on_or_off_and_nothing_else():
    from assistant.errors import ConfigurationError
    from assistant.settings import Settings

    assert Settings.load(env={"ASSISTANT_UPLOADS": "off"}).uploads is False
    assert Settings.load(env={"ASSISTANT_UPLOADS": "on"}).uploads is True
    with pytest.raises(ConfigurationError, match="ASSISTANT_UPLOADS='maybe': use on or off"):
        Settings.load(env={"ASSISTANT_UPLOADS": "maybe"})


def test_only_changed_chunks_are_embedded_when_a_file_is_added(article_corpus, tmp_path):
    from assistant.factory import build_assistant
    from assistant.settings import Settings

    counting = CountingEmbeddings()
    settings = Settings.load(env={}, corpus=article_corpus, index_dir=tmp_path / "index", embeddings="fake")
    assistant = build_assistant(settings, embeddings=counting)
    assistant.build_index()
    counting.embedded = 0
    (added,), _ = assistant.add([Upload("report.pdf", pdf_bytes())])
    assert counting.embedded == added.chunks, "the article's chunks are not embedded again"


# -- the CLI --------------------------------------------------------------------------------------


def test_assistant_add_then_ask_from_the_terminal(env, article_corpus, tmp_path):
    pdf = write(tmp_path, "report.pdf", pdf_bytes())
    done = run_cli(["add", str(pdf)], env)
    assert done.returncode == 0, done.stderr
    assert f"added report.pdf (its text: report.pdf.txt): {REPORT_TITLE}" in done.stdout
    found = run_cli(["search", "星河电池在合肥新建工厂的年产能", "--json", "-k", "1"], env)
    assert json.loads(found.stdout)[0]["source"] == "report.pdf.txt"

    refused = run_cli(["add", str(write(tmp_path, "fake.docx", b"plain words, not a Word file at all"))], env)
    assert refused.returncode == 3
    assert "fake.docx is named .docx but its content is plain text: rename it to end in .txt" in refused.stderr


def test_index_names_a_pdf_copied_into_the_corpus_and_the_command_that_adds_it(env, article_corpus):
    write(article_corpus, "copied.pdf", pdf_bytes())
    done = run_cli(["index"], env)
    assert done.returncode == 0 and "skipped copied.pdf: not text: `assistant add" in done.stderr
    assert run_cli(["add", str(article_corpus / "copied.pdf")], env).returncode == 0, "added where it lies"
    assert (article_corpus / "copied.pdf.txt").is_file() and "copied.pdf" not in run_cli(["index"], env).stderr

    (article_corpus / "reports").mkdir()
    write(article_corpus / "reports", "nested.pdf", pdf_bytes())
    assert run_cli(["add", str(article_corpus / "reports" / "nested.pdf")], env).returncode == 0
    assert (article_corpus / "reports" / "nested.pdf.txt").is_file() and not (article_corpus / "nested.pdf").exists()
    assert "nested.pdf" not in run_cli(["index"], env).stderr, "converted where it lies, in its folder"


# -- the HTTP API ---------------------------------------------------------------------------------


def _server(assistant):
    from assistant.interfaces.http.server import build_server

    return running(build_server(assistant))


def test_the_api_adds_a_pdf_and_the_next_answer_cites_it(article_corpus, tmp_path):
    assistant = make_assistant(article_corpus, tmp_path / "index", api_key="k" * 32)
    assistant.build_index()
    with_llm(assistant, scripted("首席技术官由陈立远接任 [1]。"))
    key = {"Authorization": "Bearer " + "k" * 32}
    with _server(assistant) as url:
        pdf = {"files": ("report.pdf", pdf_bytes(), "application/pdf")}
        assert httpx.post(f"{url}/api/documents", files=pdf).status_code == 401, "uploads need the key"
        made = httpx.post(f"{url}/api/documents", files=pdf, headers=key, timeout=60)
        assert made.status_code == 201, made.text
        assert made.json()["added"][0]["source"] == "report.pdf.txt" and made.json()["index"]["embedded"] >= 1
        listed = httpx.get(f"{url}/api/documents", headers=key).json()
        assert "report.pdf.txt" in [d["source"] for d in listed["documents"]]
        asked = {"question": "星河电池的首席技术官由谁接任？"}
        answer = httpx.post(f"{url}/api/ask", json=asked, headers=key, timeout=60)
        assert answer.json()["citations"][0]["source"] == "report.pdf.txt", answer.text
        assert "陈立远" in answer.json()["answer"] and "陈立远" in answer.json()["citations"][0]["quote"], answer.text

        wrong = httpx.post(f"{url}/api/documents", files={"files": ("x.pdf", html_bytes())}, headers=key)
        assert wrong.status_code == 422 and "content is a web page" in wrong.json()["error"]
        page_upload = httpx.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"text")})
        assert page_upload.status_code == 401, "the page's own upload route needs the key too"


def test_the_api_refuses_an_upload_over_the_limit_and_when_uploads_are_off(article_corpus, tmp_path):
    small = make_assistant(article_corpus, tmp_path / "a", upload_max_bytes=2000)
    small.build_index()
    with _server(small) as url:
        big = httpx.post(f"{url}/api/documents", files={"files": ("r.pdf", pdf_bytes() * 40)})
        assert big.status_code == 413 and "ASSISTANT_UPLOAD_MAX_BYTES" in big.json()["error"]
    off = make_assistant(article_corpus, tmp_path / "b", uploads=False)
    off.build_index()
    with _server(off) as url:
        refused = httpx.post(f"{url}/api/documents", files={"files": ("r.pdf", pdf_bytes())})
        assert refused.status_code == 403 and "ASSISTANT_UPLOADS=off" in refused.json()["error"]
        big = httpx.post(f"{url}/api/documents", files={"files": ("r.pdf", pdf_bytes() * 40)})
        assert big.status_code == 403 and "ASSISTANT_UPLOADS=off" in big.json()["error"], "not a 413 about questions"
    assert not (article_corpus / "r.pdf").exists()
