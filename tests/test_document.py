"""Questions about the whole document and questions in several parts, over a real index (fake embeddings)."""

import re
import shutil
from pathlib import Path

import pytest

from assistant.answering.document import Asked, classify, select
from assistant.answering.parts import parse_split, split
from assistant.index.outline import Outline, outlines
from assistant.types import Answer

from conftest import ARTICLE_DIR, make_assistant, scripted, with_llm

TITLE = "阶跃星辰凭什么拿最多的钱"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    index_dir = tmp_path_factory.mktemp("document-index")
    make_assistant(ARTICLE_DIR, index_dir).build_index()
    return ARTICLE_DIR, index_dir


@pytest.fixture(scope="module")
def article(indexed: tuple[Path, Path]) -> Outline:
    [outline] = outlines(make_assistant(*indexed).retriever.chunks).values()
    return outline


def no_model() -> object:
    """A chat model that fails the test if it is called."""
    return scripted()  # no reply to give: any call raises


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("这篇文章主要讲了什么？", "main_point"),
        ("What is this article about?", "main_point"),
        ("用两三句话总结一下这篇文章", "summary"),
        ("Can you summarize the article briefly?", "summary"),
        ("文章分为哪几个部分？", "structure"),
        ("How is the article structured?", "structure"),
        ("文章的结论是什么？", "conclusion"),
        ("文章最后得出了什么结论？", "conclusion"),
        ("这篇文章有哪些小标题？", "structure"),
        ("In one or two sentences, what is the main point of this article?", "main_point"),
        ("What does the conclusion say?", "conclusion"),
        ("这篇文章是谁写的？", "author"),
        ("Who wrote this article?", "author"),
        ("这篇文章发表在哪家媒体？", "outlet"),
        ("When was the article published?", "date"),
        ("这篇文章的标题是什么？", "title"),
    ],
)
def test_questions_about_the_whole_document_are_recognised(question: str, kind: str, article: Outline):
    asked = classify(question, [article])
    assert asked is not None and asked.kind == kind, asked


@pytest.mark.parametrize(
    "question",
    [
        "文章中融资的日期是？",  # a date, but of a fact in the text
        "What does the article say about Step-3?",
        "阶跃星辰发布了什么模型？",
        "阶跃星辰的 CEO 是谁？",
        "Step-3 的总参数量是多少？",
        "文章提到的主要风险是什么？",
        "它发布了什么？",  # a follow-up about a fact, not the article's date
        "谁发布的？",  # who, not when
        "他的观点是什么？",
        "What is the source?",
    ],
)
def test_questions_about_a_fact_are_not(question: str, article: Outline):
    assert classify(question, [article]) is None


def test_a_section_is_found_by_its_heading_and_the_document_by_its_title(article: Outline):
    assert "结语" in article.headings
    assert classify("“赛道洗牌”这部分讲了什么？", [article]) == Asked("section", "赛道洗牌", article.source)
    assert classify("阶跃星辰那篇文章讲了什么？", [article]) == Asked("main_point", "", article.source)
    dotted = Outline("gore.txt", "阿尔·戈尔", None, article.sections)  # a title with a middle dot, asked without it
    assert classify("总结一下《阿尔·戈尔》这篇文章。", [article, dotted]) == Asked("summary", "", "gore.txt")


def test_chosen_sentences_are_the_documents_own_in_order(article: Outline):
    text = (ARTICLE_DIR / article.source).read_text(encoding="utf-8")
    for kind in ("main_point", "summary", "structure", "conclusion"):
        chosen = select(article, Asked(kind))
        assert chosen, kind
        assert [s.start for s in chosen] == sorted(s.start for s in chosen), kind
        for s in chosen:
            assert s.text in s.chunk.text and text[s.start : s.start + len(s.text)] == s.text
    summary = select(article, Asked("summary"))
    assert summary[0].start == article.sections[0].sentences[0].start, "a summary opens with the lede"
    assert len(summary) >= 3 and len({s.chunk.section for s in summary}) >= 3, "it covers the sections"
    [last] = [s for s in article.sections if s.heading == "结语"]
    assert {s.chunk.section for s in select(article, Asked("conclusion"))} == {"结语"}
    assert select(article, Asked("section", "没有这一节")) == []
    assert last.sentences


def assert_verified_and_cited(answer: Answer, corpus: Path = ARTICLE_DIR) -> None:
    """Every marker has its citation, every citation's quote stands in its passage at its offsets, and every
    sentence the answer shows passed verification."""
    assert not answer.refused, answer
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert markers == {c.n for c in answer.citations}, answer.answer
    for c in answer.citations:
        source = (corpus / c.source).read_text(encoding="utf-8")
        assert source[c.start : c.end] == c.text
        assert c.quote in c.text or (c.paragraph == 0 and c.quote in c.section)
    assert answer.verification and all(row["kept"] for row in answer.verification), answer.verification


@pytest.mark.parametrize(
    "question", ["这篇文章主要讲了什么？", "总结一下这篇文章", "文章的结构是怎样的？", "结语说了什么？"]
)
def test_a_chinese_question_about_the_whole_is_answered_from_the_document_without_the_model(
    indexed: tuple[Path, Path], question: str
):
    answer = with_llm(make_assistant(*indexed), no_model()).ask(question)
    assert_verified_and_cited(answer)
    assert TITLE in answer.answer or "结语" in answer.answer, "the answer names what it is about"
    assert len(answer.citations) >= 2
    assert answer.models["llm"].startswith("none"), "no model wrote it"


def test_who_wrote_it_is_answered_from_the_card_in_either_language(indexed: tuple[Path, Path]):
    a = with_llm(make_assistant(*indexed), no_model())
    for question in ("这篇文章的作者是谁？", "Who wrote this article?"):
        answer = a.ask(question)
        assert_verified_and_cited(answer)
        assert "胡不知" in answer.answer and answer.citations[0].paragraph == 0
    assert a.ask("Who wrote this article?").answer.startswith("The byline")


def test_an_english_summary_that_does_not_verify_falls_back_to_the_quotes(indexed: tuple[Path, Path]):
    a = with_llm(make_assistant(*indexed), scripted("The company was founded on the Moon in 1850 [1]."))
    a.answerer.whole.translate_claims = False
    events = list(a.answerer.stream("What is the main point of the article?"))
    first, answer = events[0], events[-1]
    assert not isinstance(first, str) and "“" in first.text, "the lede is quoted at once"
    assert isinstance(answer, Answer)
    assert_verified_and_cited(answer)
    assert "Moon" not in answer.answer and answer.answer.startswith("The main point")


def test_over_many_documents_this_article_is_the_one_the_conversation_is_about(tmp_path: Path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ARTICLE_DIR, corpus)
    (corpus / "harbour.txt").write_text(
        "港口城市的夜市\n\n本市夜市今年接待游客超过 300 万人次，成为港区最热闹的去处。\n\n"
        "摊位与美食\n\n夜市共有 420 个摊位，其中海鲜摊位占三成。\n\n"
        "结语\n\n夜市的成功说明，老港区可以靠小生意重新热闹起来。\n",
        encoding="utf-8",
    )
    a = with_llm(make_assistant(corpus, tmp_path / "index"), no_model())
    a.build_index()
    answer = a.ask("总结一下这篇文章", history=["夜市有多少个摊位？"])
    assert_verified_and_cited(answer, corpus)
    assert "港口城市的夜市" in answer.answer and {c.source for c in answer.citations} == {"harbour.txt"}
    other = a.ask("阶跃星辰那篇文章讲了什么？")
    assert_verified_and_cited(other, corpus)
    assert TITLE in other.answer and {c.source for c in other.citations} == {"stepfun-b-plus-round.txt"}


@pytest.mark.parametrize(
    ("question", "parts", "elliptical"),
    [
        ("阶跃星辰的 CEO 是谁，他之前在哪里工作？", ["阶跃星辰的 CEO 是谁？", "他之前在哪里工作？"], False),
        ("融资额是多少，投资方有哪些？", ["融资额是多少？", "投资方有哪些？"], False),
        ("阶跃星辰的融资额和估值分别是多少？", ["阶跃星辰的融资额是多少？", "阶跃星辰的估值是多少？"], False),
        ("How much did StepFun raise and from whom?", ["How much did StepFun raise?", "from whom?"], True),
        (
            "How much did StepFun raise, and who led the round?",
            ["How much did StepFun raise?", "who led the round?"],
            False,
        ),
        ("这轮融资规模多大，投资方有哪些？", ["这轮融资规模多大？", "投资方有哪些？"], False),
        ("百度和阿里的估值是多少？", ["百度和阿里的估值是多少？"], False),  # one clause asks: one question
        ("What is Step-3?", ["What is Step-3?"], False),
        # a clause that asks nothing is context for the question after it, not a part of its own
        ("在本轮融资之后，阶跃星辰的估值是多少？", ["在本轮融资之后，阶跃星辰的估值是多少？"], False),
        (
            "在本轮融资之后，阶跃星辰的估值是多少，谁领投了这一轮？",
            ["在本轮融资之后，阶跃星辰的估值是多少？", "谁领投了这一轮？"],
            False,
        ),
        # a clause ending on a bare copula asks for what follows it
        ("阶跃星辰的创始人为，这轮融资有多少？", ["阶跃星辰的创始人为？", "这轮融资有多少？"], False),
        ("专家认为，哪家公司的模型最强？", ["专家认为，哪家公司的模型最强？"], False),  # 认为 is a verb
        # a clause opening on 并/而/又 goes on with the one before, unless it asks a question of its own
        ("Step-3 在哪里发布，并于当天开源？", ["Step-3 在哪里发布，并于当天开源？"], False),
        ("Step-3 在哪里发布，并在几天内开源？", ["Step-3 在哪里发布？", "Step-3在几天内开源？"], False),
        # 几 as "a few" and words that only contain a question word do not ask
        ("这几年，阶跃星辰的营收是多少？", ["这几年，阶跃星辰的营收是多少？"], False),
        ("许多高校和研究所参与了哪个项目？", ["许多高校和研究所参与了哪个项目？"], False),
        # a connective closing on 是 is not a question; a clause opening on 而/又 that asks is a part of its own
        ("但是，阶跃星辰的 CTO 是谁？", ["但是，阶跃星辰的 CTO 是谁？"], False),
        ("Step-3 有多少参数，又在哪些芯片上运行？", ["Step-3 有多少参数？", "Step-3在哪些芯片上运行？"], False),
        # a list inside a title, or a question word inside the list, is not a "分别" list
        ("东德和西德在哪一年分别建国？", ["东德和西德在哪一年分别建国？"], False),
    ],
)
def test_questions_split_into_their_parts_where_the_grammar_shows_them(question, parts, elliptical):
    found = split(question)
    assert found.parts == parts and found.elliptical == elliptical


def test_the_models_split_is_kept_only_when_it_is_a_short_list_of_questions():
    rule = ["How much did StepFun raise?", "from whom?"]
    written = "1. How much did StepFun raise?\n2. From whom did StepFun raise it?"
    assert parse_split(written, rule) == ["How much did StepFun raise?", "From whom did StepFun raise it?"]
    assert parse_split("Sure! Here you go.", rule) == rule
    assert parse_split("", rule) == rule


def test_each_part_is_answered_and_cited_and_a_missing_part_is_named(indexed: tuple[Path, Path]):
    a = with_llm(
        make_assistant(*indexed),
        scripted("阶跃星辰宣布完成超 50 亿元人民币 B+ 轮融资 [1]。", "投资方包括上国投先导基金、国寿股权 [1]。"),
    )
    answer = a.ask("阶跃星辰这轮融资有多少钱，投资方有哪些？")
    assert_verified_and_cited(answer)
    assert "50 亿元" in answer.answer and "国寿股权" in answer.answer and len(answer.citations) == 2
    a = with_llm(
        make_assistant(*indexed), scripted("阶跃星辰宣布完成超 50 亿元人民币 B+ 轮融资 [1]。", "总部设在月球 [1]。")
    )
    partial = a.ask("阶跃星辰这轮融资有多少钱，总部在哪里？")
    assert not partial.refused and "50 亿元" in partial.answer
    assert "文章没有提到“总部在哪里”" in partial.answer and "月球" not in partial.answer


def test_two_parts_citing_one_passage_share_its_number():
    from assistant.answering.parts import join
    from assistant.types import Citation

    cited = Citation(
        1, "c1", "a.txt", "t", 3, 0, 10, "创始人兼 CEO 姜大昕作为微软前全球副总裁", "姜大昕作为微软前全球副总裁"
    )
    first = Answer("q1", "姜大昕。[1]", False, (cited,), {}, {})
    second = Answer("q2", "微软前全球副总裁。[1]", False, (cited,), {}, {})
    joined = join("q1，q2", ["q1", "q2"], [first, second], english=False, total_s=1.0)
    assert joined.answer == "姜大昕。[1]\n微软前全球副总裁。[1]" and [c.n for c in joined.citations] == [1]


def test_a_question_about_the_whole_in_two_parts_answers_both(indexed: tuple[Path, Path]):
    answer = with_llm(make_assistant(*indexed), no_model()).ask("这篇文章讲了什么，作者是谁？")
    assert_verified_and_cited(answer)
    assert "2026 年 1 月 26 日" in answer.answer and "胡不知" in answer.answer, answer.answer


def test_a_fast_english_question_about_the_whole_calls_no_model(indexed: tuple[Path, Path]):
    answer = with_llm(make_assistant(*indexed), no_model()).ask("Summarize the article.", fast=True)
    assert_verified_and_cited(answer)
    assert answer.answer.startswith("A summary of") and answer.models["llm"].startswith("none")
