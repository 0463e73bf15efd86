import re

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.corpus.chunk import MAX_CHARS, chunk_document, split_sentences
from assistant.corpus.ingest import load_corpus, parse_document, read_document

from conftest import ARTICLE, EVAL

CMRC = EVAL / "cmrc2018-trial" / "corpus"


def test_every_chunk_is_an_exact_slice_of_the_original_file():
    original = ARTICLE.read_text(encoding="utf-8")
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    chunks = chunk_document(doc)
    assert 15 < len(chunks) < 80
    for c in chunks:
        assert original[c.start : c.end] == c.text
        assert len(c.text) <= MAX_CHARS


def test_offsets_hold_on_every_cmrc_passage_too():
    docs, skipped = load_corpus(CMRC)
    assert len(docs) == 256 and not skipped
    for doc in docs:
        for c in chunk_document(doc):
            assert doc.text[c.start : c.end] == c.text and len(c.text) <= MAX_CHARS


def test_chunks_carry_section_paragraph_and_title():
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    chunks = chunk_document(doc)
    step3 = next(c for c in chunks if "每次推理仅激活 38B 参数" in c.text)
    assert step3.section == "从技术创新到商业闭环"
    assert step3.title == "阶跃星辰凭什么拿最多的钱"
    para = doc.paragraphs[step3.paragraph - 1]
    assert para.start <= step3.start < para.end


def test_chunks_end_on_sentence_boundaries_and_cover_the_body():
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    chunks = chunk_document(doc)
    for c in chunks[1:]:  # chunks[0] is the document card: the title and byline lines
        assert re.search(r"[。！？!?\"”]$", c.text), c.text[-30:]
    covered = "".join(c.text for c in chunks)
    for p in doc.paragraphs:
        for s, e in split_sentences(doc.text, p.start, p.end):
            assert doc.text[s:e] in covered


def test_the_document_card_cites_the_header_and_lists_the_metadata():
    doc = read_document(ARTICLE, "stepfun-b-plus-round.txt")
    card = chunk_document(doc)[0]
    assert card.paragraph == 0 and doc.text[card.start : card.end] == card.text
    assert "胡不知" in card.text and "阶跃星辰凭什么拿最多的钱" in card.text
    assert "发表日期：2026-01-26" in card.section and "媒体：钛媒体" in card.section


def test_no_card_without_metadata_and_a_lone_title_line_is_kept_as_text():
    bare = parse_document("马祖列岛\n\n马祖列岛是一个群岛。", "a.txt", {})
    assert all(c.paragraph > 0 for c in chunk_document(bare))
    lone = parse_document("一句很短的新闻", "b.txt", {})
    assert [c.text for c in chunk_document(lone)] == ["一句很短的新闻"]


def test_sentence_splitting_copes_with_mixed_punctuation():
    text = '阶跃星辰宣布:完成超 50 亿元融资,刷新纪录。" 国资 + 产业 " 布局罕见!Step-3 总参数 321B. It works? 是的'
    spans = [text[s:e] for s, e in split_sentences(text, 0, len(text))]
    assert spans == [
        "阶跃星辰宣布:完成超 50 亿元融资,刷新纪录。",
        '" 国资 + 产业 " 布局罕见!',
        "Step-3 总参数 321B.",
        "It works?",
        "是的",
    ]


def test_decimal_points_and_numbers_are_never_split():
    text = "智谱 AI 同期净利润亏损 23.58 亿元,MiniMax 亏损 5.12 亿美元,OpenAI 估值 5000-7500 亿美元。"
    assert [text[s:e] for s, e in split_sentences(text, 0, len(text))] == [text]


def test_a_very_long_sentence_is_cut_at_clause_punctuation_not_inside_numbers():
    sentence = "，".join(f"第{i}项指标达到 {i}.{i}5 亿元规模" for i in range(60)) + "。"
    doc = parse_document("标题\n\n" + sentence, "long.txt", {})
    chunks = chunk_document(doc)
    assert len(chunks) > 2
    for c in chunks:
        assert len(c.text) <= MAX_CHARS
        assert doc.text[c.start : c.end] == c.text
        assert not doc.text[c.end - 1 : c.end + 1].isdigit()


def test_chunk_ids_are_stable_and_survive_unrelated_edits():
    original = ARTICLE.read_text(encoding="utf-8")
    first = chunk_document(parse_document(original, "a.txt", {"title": "阶跃星辰凭什么拿最多的钱"}))
    again = chunk_document(parse_document(original, "a.txt", {"title": "阶跃星辰凭什么拿最多的钱"}))
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)
    edited = original.replace("结语\n", "结语\n\n编者按:这是一段新加的话。\n", 1)
    later = chunk_document(parse_document(edited, "a.txt", {"title": "阶跃星辰凭什么拿最多的钱"}))
    unchanged = {c.chunk_id for c in first} & {c.chunk_id for c in later}
    assert len(unchanged) >= len(first) - 3


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('阶跃星辰融资。，,.!?: "\n\n abc123—#')), max_size=1500))
def test_arbitrary_text_chunks_to_valid_slices(text: str):
    doc = parse_document(text, "x.txt", {})
    for c in chunk_document(doc):
        assert text[c.start : c.end] == c.text
        assert c.text.strip() == c.text != ""
        assert len(c.text) <= MAX_CHARS
