"""Word: a .docx file's text (paragraphs and table rows, in reading order) and title, by python-docx.

python-docx builds a tree of every XML part, and its cost grows with the elements, not the bytes: 6 million empty
paragraphs zip into 89 kB and took it 75 s and 750 MB. So the file is looked at first: its unpacked size, then its
XML read as a stream (no tree) counting paragraphs, runs and elements, and refused past a limit. What is left
(a table python-docx walks slowly) is bounded by the child process `convert` runs this in (`isolated`).
"""

from __future__ import annotations

import io
import zipfile

from assistant.errors import CorpusError

MAX_UNPACKED_BYTES = 200_000_000  # a Word file's parts, unzipped (its pictures count too)
MAX_MARKUP_BYTES = 40_000_000  # of them XML, which python-docx parses whole (about 10 bytes of memory a byte)
# Counted while streaming a Word file's XML, before python-docx builds a tree of it: a 1,000-page report holds
# about 30,000 paragraphs, 150,000 runs and 1,000,000 elements; python-docx takes about 7 s at 200,000 paragraphs
# and 400,000 runs (about 18 µs a run), and took 75 s for 6 million empty paragraphs zipped into 89 kB.
MAX_PARAGRAPHS = 200_000
MAX_RUNS = 400_000
MAX_ELEMENTS = 2_000_000  # all of them, in every XML part (python-docx parses each)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def read_word(data: bytes) -> tuple[str, dict[str, str]]:
    """A Word file's text (paragraphs and table rows, in reading order, a blank line between) and its title;
    a `CorpusError` past a limit."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # a ZIP can expand a thousandfold: look before opening
        parts = archive.infolist()
    unpacked = sum(info.file_size for info in parts)
    markup = sum(info.file_size for info in parts if info.filename.endswith((".xml", ".rels")))
    if unpacked > MAX_UNPACKED_BYTES or markup > MAX_MARKUP_BYTES:
        raise CorpusError(
            f"the Word file unpacks to {unpacked:,} bytes, {markup:,} of them text and markup (the limits are "
            f"{MAX_UNPACKED_BYTES:,} and {MAX_MARKUP_BYTES:,}): split it, or save it as PDF"
        )
    _count_markup(data)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    blocks: list[str] = []
    for item in document.iter_inner_content():  # paragraphs and tables in reading order
        if isinstance(item, Paragraph):
            if text := " ".join(item.text.split()):
                blocks.append(text)
        elif isinstance(item, Table):
            for row in item.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                if any(cells):
                    blocks.append(" | ".join(dict.fromkeys(cells)))  # merged cells repeat: once each
    title = " ".join((document.core_properties.title or "").split())  # its author is often a template's
    return "\n\n".join(blocks), {"title": title} if title else {}


class _Counter:
    """An lxml parser target that counts elements as they stream past (no tree is built)."""

    def __init__(self) -> None:
        self.counts = {"paragraphs": 0, "runs": 0, "elements": 0}

    def start(self, tag: str, attrib: object) -> None:
        self.counts["elements"] += 1
        if tag == f"{_W}p":
            self.counts["paragraphs"] += 1
        elif tag == f"{_W}r":
            self.counts["runs"] += 1

    def close(self) -> None:
        return None


def _count_markup(data: bytes) -> None:
    """A `CorpusError` as soon as a Word file's XML parts, read as a stream, pass a limit on paragraphs, runs or
    elements: seconds at most, and memory for one 64 kB piece at a time."""
    from lxml import etree

    limits = {"paragraphs": MAX_PARAGRAPHS, "runs": MAX_RUNS, "elements": MAX_ELEMENTS}
    counter = _Counter()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():  # every part: python-docx finds them by content type, not by name
            parser = etree.XMLParser(target=counter, resolve_entities=False, no_network=True)
            try:
                with archive.open(info) as stream:
                    while piece := stream.read(1 << 16):
                        parser.feed(piece)
                        if over := [what for what, limit in limits.items() if counter.counts[what] > limit]:
                            raise CorpusError(
                                f"the Word file holds over {limits[over[0]]:,} {over[0]} (the limit; counting "
                                f"stopped in {info.filename}): split it, or save it as PDF"
                            )
                parser.close()
            except etree.XMLSyntaxError:  # python-docx refuses the part at the same place, or never parses it
                continue
