"""Real PDF, Word and HTML files made for the tests (reportlab, python-docx, plain markup).

The text is invented (a battery maker's annual report, a meeting's minutes, a robot launch), so no
test depends on the article, and a question about it can only be answered from the added file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

REPORT_TITLE = "星河电池年报"
REPORT = (
    "星河电池公司2025年的营业收入为八十七亿元，同比增长百分之三十二，主要来自储能业务的扩张。",
    "公司计划在2026年于合肥新建一座工厂，年产能为二十吉瓦时，预计总投资四十五亿元。",
    "董事会同时宣布，首席技术官由陈立远接任，他此前负责固态电池研发。",
)
MINUTES_TITLE = "季度会议纪要"
MINUTES = ("会议决定由李雷负责华东区的渠道拓展，预算为三百万元。", "下次会议定于十二月十五日召开。")
LAUNCH_TITLE = "蓝鲸机器人发布新品"
LAUNCH = (
    "蓝鲸机器人周二在深圳发布了新一代仓储机器人，单台售价为十二万元。",
    "该公司表示，新产品的搬运效率比上一代提高了百分之四十，预计明年三月开始交付。",
)


def pdf_bytes(title: str = REPORT_TITLE, paragraphs: tuple[str, ...] = REPORT, *, password: str = "") -> bytes:
    """A real PDF with Chinese text (reportlab's built-in STSong-Light CID font, no font file needed), the
    paragraphs wrapped over several lines as a typesetter wraps them."""
    from reportlab.lib.pagesizes import A5
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    body = ParagraphStyle("body", fontName="STSong-Light", fontSize=11, leading=16, wordWrap="CJK", spaceAfter=8)
    heading = ParagraphStyle("heading", fontName="STSong-Light", fontSize=16, leading=22, spaceAfter=10)
    buffer = io.BytesIO()
    kw: dict[str, Any] = {"encrypt": password} if password else {}
    document = SimpleDocTemplate(buffer, pagesize=A5, title=title, author="记者 王敏", invariant=1, **kw)
    document.build([Paragraph(title, heading), *(Paragraph(p, body) for p in paragraphs)])
    return buffer.getvalue()


def image_only_pdf() -> bytes:
    """A PDF whose page holds only a drawing (as a scan holds a picture): no text to extract."""
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, invariant=1)
    page.rect(100, 100, 300, 400, fill=1)
    page.save()
    return buffer.getvalue()


def docx_bytes(title: str = MINUTES_TITLE, paragraphs: tuple[str, ...] = MINUTES) -> bytes:
    """A real Word file: a heading, paragraphs and a table between them."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, 1)
    document.add_paragraph(paragraphs[0])
    table = document.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "地区", (0, 1): "负责人", (1, 0): "华南", (1, 1): "韩梅梅"}.items():
        table.cell(r, c).text = text
    for paragraph in paragraphs[1:]:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def html_bytes(title: str = LAUNCH_TITLE, paragraphs: tuple[str, ...] = LAUNCH) -> bytes:
    """A saved web page: navigation, the article, a footer."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        "<nav><a href='/'>首页</a> <a href='/login'>登录</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<footer>版权所有 © 2026 某网站 | 联系我们</footer></body></html>"
    ).encode()


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def word_with_body(body: bytes) -> bytes:
    """A Word file whose document.xml holds `body` (raw WordprocessingML between <w:body> tags), every other
    part a real one's: the shape of a hostile file, built by zipping XML by hand."""
    import zipfile

    namespace = b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    real = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in real.infolist():
            if info.filename == "word/document.xml":
                archive.writestr(
                    info.filename,
                    b'<w:document xmlns:w="' + namespace + b'"><w:body>' + body + b"</w:body></w:document>",
                )
            else:
                archive.writestr(info.filename, real.read(info.filename))
    return buffer.getvalue()
