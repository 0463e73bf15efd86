"""The answer chain with scripted and echo models over a real index (fake embeddings for speed)."""

from pathlib import Path

import pytest

from assistant.answering.answer import needs_condensing
from assistant.answering.extract import PROMPT_CHARS
from assistant.core import Assistant
from assistant.errors import InputError, ModelTimeoutError
from assistant.types import Answer, Evidence

from conftest import EchoChatModel, make_assistant, scripted, with_llm


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from conftest import ARTICLE_DIR

    index_dir = tmp_path_factory.mktemp("answer-index")
    make_assistant(ARTICLE_DIR, index_dir).build_index()
    return ARTICLE_DIR, index_dir


def assistant_with(indexed: tuple[Path, Path], llm) -> Assistant:  # type: ignore[no-untyped-def]
    return with_llm(make_assistant(*indexed), llm)


def test_build_assistant_takes_the_chat_model_and_embeddings_it_is_given(tmp_path: Path):
    """An application passes its own parts in; the settings' model names are then not used."""
    from assistant.factory import build_assistant
    from assistant.settings import Settings

    from conftest import ARTICLE_DIR, CountingEmbeddings

    embeddings = CountingEmbeddings()
    settings = Settings.load(env={}, corpus=ARTICLE_DIR, index_dir=tmp_path, embeddings="fake", llm="llama-cpp")
    a = build_assistant(settings, llm=scripted("Step-3 每次推理仅激活 38B 参数 [1]。"), embeddings=embeddings)
    a.build_index()
    answer = a.ask("Step-3 每次推理激活多少参数？")
    assert embeddings.embedded > 0 and a.index.embeddings is embeddings, "indexing and search use them"
    assert not answer.refused and "38B" in answer.answer and "llama" not in answer.models["llm"]


def test_a_supported_answer_is_cited_with_the_exact_passage_and_quote(indexed):
    a = assistant_with(indexed, scripted("Step-3 每次推理仅激活 38B 参数 [1]。"))
    answer = a.ask("Step-3 每次推理激活多少参数？")
    assert not answer.refused
    assert answer.answer == "Step-3 每次推理仅激活 38B 参数。[1]"
    [c] = answer.citations
    assert c.n == 1 and "每次推理仅激活 38B 参数" in c.quote and c.quote in c.text
    source = (indexed[0] / Path(c.source).name).read_text(encoding="utf-8")
    assert source[c.start : c.end] == c.text
    d = answer.to_dict()
    assert set(d) >= {"question", "answer", "refused", "citations", "timings", "models"}
    assert set(d["citations"][0]) >= {"n", "chunk_id", "source", "title", "paragraph", "start", "end", "text", "quote"}
    assert {"retrieve_s", "first_token_s", "total_s"} <= set(d["timings"])


def test_an_invented_answer_becomes_a_refusal_with_related_passages(indexed):
    a = assistant_with(indexed, scripted("阶跃星辰的总部位于北京 [1]。"))
    answer = a.ask("阶跃星辰的总部位于哪个城市？")
    assert answer.refused and answer.answer.startswith("文章没有提到")
    assert answer.refusal_reason == "unverified" and "北京" in answer.refusal_detail  # the name from nowhere
    assert answer.citations == () and len(answer.related) == 3


def test_english_questions_get_english_refusals(indexed):
    a = assistant_with(indexed, scripted("阶跃星辰的研究院", "StepFun is headquartered in Shanghai [1]."))
    answer = a.ask("Where is StepFun headquartered?")
    assert answer.refused and answer.answer == "The article does not say."
    assert answer.refusal_reason == "unverified"


def test_when_the_model_says_it_does_not_know_the_assistant_refuses(indexed):
    """The passages cover the question, so the model is asked; it says they do not answer it: refused as the
    model's own refusal (`model_declined`), not as a passage that failed its checks."""
    answer = assistant_with(indexed, scripted("文章没有提到这一点。")).ask("Step-3 每次推理激活多少参数？")
    assert answer.refused and answer.refusal_reason == "model_declined"
    assert "first_token_s" in answer.timings, "the model was asked"


def test_a_question_the_passages_barely_touch_is_refused_before_the_model(indexed):
    answer = assistant_with(indexed, scripted("不应被调用")).ask("Step-3 的上下文窗口有多长？")
    assert answer.refused and answer.refusal_reason == "not_covered" and "first_token_s" not in answer.timings


def test_nothing_relevant_refuses_without_calling_the_model(indexed):
    answer = assistant_with(indexed, scripted("不应被调用")).ask("Python 的 GIL 是什么？")
    assert answer.refused and answer.refusal_reason == "no_match" and "first_token_s" not in answer.timings


def test_the_prompt_holds_the_numbered_best_passages_and_the_question(indexed):
    echo = EchoChatModel()
    a = assistant_with(indexed, echo)
    tokens = [e for e in a.stream("首席科学家是谁？") if isinstance(e, str)]
    prompt = "".join(tokens)
    passages = prompt.split("资料：\n", 1)[1].split("\n\n问题：", 1)[0]
    assert passages.startswith("[1] ") and "[4] " not in passages
    assert "张祥雨" in passages and prompt.rstrip().endswith("首席科学家是谁？")
    # the sentences that matter, not whole passages: the best sentence may alone exceed the budget
    assert len(passages) <= 2 * PROMPT_CHARS and len(prompt) < 600


def test_tokens_stream_before_the_final_answer(indexed):
    events = list(assistant_with(indexed, scripted("印奇是旷视科技创始人 [1]。")).stream("印奇是哪家公司的创始人？"))
    evidence, *tokens, answer = events
    assert isinstance(evidence, Evidence), "the best supporting quote comes first, before the model writes"
    assert evidence.text.startswith("文章原文") and "[1]" in evidence.text and evidence.citation.quote in evidence.text
    assert all(isinstance(e, str) for e in tokens) and len(tokens) > 5
    assert isinstance(answer, Answer) and "旷视" in answer.answer
    assert answer.timings["evidence_s"] < answer.timings["first_token_s"]


def test_a_refusal_before_the_model_shows_no_quote_first(indexed):
    events = list(assistant_with(indexed, scripted("不应被调用")).stream("Python 的 GIL 是什么？"))
    assert len(events) == 1 and isinstance(events[0], Answer) and events[0].refused
    assert events[0].refusal_reason == "no_match"


def test_a_follow_up_is_condensed_before_retrieval(indexed):
    # "他" after a 谁-question about a role resolves to that role by rule: no condense call to the model
    llm = scripted("朱亦博具备万卡集群建设经验 [1]。")
    answer = assistant_with(indexed, llm).ask("他有什么特别的经验？", history=["阶跃星辰的 CTO 是谁？"])
    assert "condense_s" in answer.timings
    assert "万卡集群" in answer.answer and not answer.refused
    assert "万卡集群建设经验" in answer.citations[0].text


def test_standalone_questions_skip_the_condense_call(indexed):
    answer = assistant_with(indexed, scripted("张祥雨 [1]")).ask("阶跃星辰的首席科学家是谁？", history=["CTO 是谁？"])
    assert "condense_s" not in answer.timings and "张祥雨" in answer.answer


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("他有什么经验？", True),
        ("那 MiniMax 呢？", True),
        ("What about its revenue?", True),
        ("阶跃星辰的首席科学家是谁？", False),
        ("How much did StepFun raise?", False),
    ],
)
def test_needs_condensing(question: str, expected: bool):
    assert needs_condensing(question) is expected


def test_fast_answers_quote_the_article_and_say_so(indexed):
    answer = assistant_with(indexed, scripted("不应被调用")).ask("Step-3 模型的总参数量是多少？", fast=True)
    assert answer.answer.startswith("文章原文（摘录，未经生成）") and "321B" in answer.answer
    assert answer.models["llm"] == "extractive (no generation)"
    assert answer.citations[0].quote in answer.answer


class Broken(EchoChatModel):
    def _generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ModelTimeoutError("the chat model did not finish in 1s")


def test_a_failing_model_falls_back_to_a_quote(indexed):
    answer = assistant_with(indexed, Broken()).ask("Step-3 模型的总参数量是多少？")
    assert not answer.refused and "321B" in answer.answer and "生成模型不可用" in answer.answer


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01", None, 42])
def test_bad_questions_are_clear_errors(indexed, bad):
    with pytest.raises(InputError):
        assistant_with(indexed, scripted("x")).ask(bad)


def test_overlong_question_is_refused_politely(indexed):
    with pytest.raises(InputError, match="under"):
        assistant_with(indexed, scripted("x")).ask("融资" * 60_000)


class Unreachable(EchoChatModel):
    def _generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("connection refused")


def test_a_model_that_is_down_still_gets_a_quoted_answer_to_a_follow_up(indexed):
    answer = assistant_with(indexed, Unreachable()).ask("它的总参数量是多少？", history=["Step-3 模型用了什么架构？"])
    assert "321B" in answer.answer and answer.models["llm"] == "extractive (no generation)"
    assert "connection refused" in answer.answer


@pytest.mark.parametrize("llm", ["llama-cpp:/nowhere/model.gguf", "openai:gpt-x"])
def test_a_chat_model_that_cannot_be_set_up_gives_quotes_that_say_why(indexed, llm):
    answer = make_assistant(*indexed, llm=llm).ask("Step-3 模型的总参数量是多少？")
    assert not answer.refused and "321B" in answer.answer and answer.citations
    assert answer.models["llm"] == "extractive (no generation)" and "生成模型不可用" in answer.answer
    assert "/nowhere/model.gguf" in answer.answer or "OPENAI" in answer.answer


def test_a_doubled_full_stop_keeps_the_marker_with_its_sentence(indexed):
    answer = assistant_with(indexed, scripted("Step-3 每次推理仅激活 38B 参数。。[1]")).ask(
        "Step-3 每次推理激活多少参数？"
    )
    assert answer.answer == "Step-3 每次推理仅激活 38B 参数。[1]"
