"""End to end on the real local model (Qwen2.5-Coder-1.5B via llama.cpp) and the real e5 index.

Marked slow: a few seconds per question on 2 cores. The questions are this file's own, not the
evaluation set's.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from assistant.core import Assistant

from conftest import ARTICLE_DIR, running

pytestmark = pytest.mark.slow


def test_numeric_answer_is_right_cited_and_quoted(e5_article: Assistant):
    answer = e5_article.ask("Step-3 的参数效率提升了多少倍？")
    assert not answer.refused, answer
    assert "8.4" in answer.answer and "[1]" in answer.answer
    assert "8.4 倍的参数效率提升" in answer.citations[0].quote
    assert answer.timings["first_token_s"] < answer.timings["total_s"]


def test_question_the_article_does_not_answer_is_refused(e5_article: Assistant):
    answer = e5_article.ask("阶跃星辰现在有多少名员工？")
    assert answer.refused, answer
    # the passages name 阶跃星辰, so the model is asked; the real model either says the passages do not give the
    # head count or makes one up, which no passage supports
    assert answer.refusal_reason in ("model_declined", "unverified") and answer.usage["calls"] == 1, answer
    assert answer.answer.startswith("文章没有提到") and answer.related


def test_english_question_gets_an_english_cited_answer(e5_article: Assistant):
    answer = e5_article.ask("How much GPU memory does the INT8 version of Step-3 need?")
    assert not answer.refused, answer
    assert "5" in answer.answer and "GB" in answer.answer
    assert any("5GB 显存" in c.text for c in answer.citations)


def test_follow_up_is_answered_about_the_right_thing(e5_article: Assistant):
    answer = e5_article.ask("它的总参数量是多少？", history=["Step-3 模型采用了什么架构？"])
    assert not answer.refused, answer
    assert "321" in answer.answer


@pytest.mark.parametrize(
    ("history", "question", "expected"),
    [
        (
            ["阶跃星辰的创始人是谁？", "印奇是谁？", "阶跃星辰融资多少？"],
            "他是哪家公司的创始人？",
            "旷视",
        ),  # the latest person
        (["阶跃星辰的首席科学家是谁？"], "他在哪个领域有世界级影响力？", "计算机视觉"),  # the role asked about
        (["Step-3 的总参数量是多少？"], "它的参数效率提升了多少倍？", "8.4"),  # 它: the topic of the last turn
        (["阶跃星辰的创始人兼 CEO 是谁？"], "那首席科学家呢？", "张祥雨"),  # 那…呢: condensed by the model
    ],
)
def test_follow_ups_of_several_shapes_find_what_they_refer_to(
    e5_article: Assistant, history: list[str], question: str, expected: str
):
    answer = e5_article.ask(question, history=history)
    assert not answer.refused and expected in answer.answer, answer


def test_questions_about_the_article_itself_are_answered_from_its_card(e5_article: Assistant):
    author = e5_article.ask("这篇文章的作者是谁？")
    assert not author.refused and "胡不知" in author.answer, author
    assert author.citations[0].paragraph == 0 and "胡不知" in author.citations[0].text
    published = e5_article.ask("这篇文章是哪天发表的？")
    assert not published.refused and "2026" in published.answer, published


def test_an_english_question_about_a_person_is_answered_in_english(e5_article: Assistant):
    answer = e5_article.ask("Who is the CEO of StepFun?")
    assert not answer.refused and "姜大昕" in answer.answer, answer
    letters = [c for c in answer.answer if c.isalpha()]
    assert sum(c.isascii() for c in letters) > len(letters) / 2, answer.answer


def test_cli_ask_json_prints_the_answer_contract(e5_article: Assistant):
    env = {
        **os.environ,
        "ASSISTANT_CORPUS": str(ARTICLE_DIR),
        "ASSISTANT_INDEX_DIR": str(e5_article.settings.index_dir),
    }
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "阶跃星辰的 CTO 是谁？", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert set(answer) >= {"question", "answer", "refused", "citations", "timings", "models"}
    assert "朱亦博" in answer["answer"] and not answer["refused"]
    c = answer["citations"][0]
    assert set(c) >= {"n", "chunk_id", "source", "title", "paragraph", "start", "end", "text", "quote"}
    assert (ARTICLE_DIR / os.path.basename(c["source"])).read_text(encoding="utf-8")[c["start"] : c["end"]] == c["text"]
    assert "llama.cpp" in answer["models"]["llm"] and answer["models"]["embeddings"] == "e5-small"


def test_fast_answer_needs_no_model(e5_article: Assistant):
    answer = e5_article.ask("印奇是哪家公司的创始人？", fast=True)
    assert "旷视" in answer.answer and answer.models["llm"].startswith("extractive")


def test_http_api_answers_with_the_real_model(e5_article: Assistant):
    import httpx

    from assistant.interfaces.http.api import create_api

    with running(create_api(e5_article)) as url:
        response = httpx.post(f"{url}/api/ask", json={"question": "印奇是哪家公司的创始人？"}, timeout=300)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "旷视" in answer["answer"] and not answer["refused"] and answer["citations"]


def test_an_english_summary_is_written_in_english_and_every_sentence_verified(e5_article: Assistant):
    answer = e5_article.ask("Summarize the article in a few sentences.")
    assert not answer.refused and answer.citations, answer
    assert answer.verification and all(row["kept"] for row in answer.verification), answer.verification
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)} <= {c.n for c in answer.citations}
    assert "50" in answer.answer, answer.answer  # the lede: the RMB 5 bn round


def test_a_two_part_question_gets_both_parts_answered_and_cited(e5_article: Assistant):
    answer = e5_article.ask("阶跃星辰这轮融资有多少钱，投资方有哪些？")
    assert not answer.refused and len(answer.citations) >= 2, answer
    assert "50" in answer.answer and any(name in answer.answer for name in ("国寿", "上国投", "腾讯", "华勤")), answer


def test_an_added_pdf_is_answered_from_with_the_real_models(article_corpus, tmp_path):
    """A PDF added to an e5 index (real embedding model) is answered from by the real chat model, cited to its
    extracted text, in the same process and without a restart."""
    from conftest import make_assistant
    from documents import pdf_bytes, write

    assistant = make_assistant(article_corpus, tmp_path / "index", embeddings="e5-small")
    assistant.build_index()
    (added,), _ = assistant.add([write(tmp_path, "report.pdf", pdf_bytes())])
    answer = assistant.ask("星河电池计划在哪里新建工厂？")
    assert not answer.refused, answer
    assert "合肥" in answer.answer and answer.citations[0].source == added.source == "report.pdf.txt"
