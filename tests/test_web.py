"""The web chat in a real headless Chromium (Playwright), served by uvicorn on 127.0.0.1.

One server per module: the article indexed with the fake embedder, a scripted chat model swapped in
per test. Each test opens a fresh page (a new Gradio session). The browser may reach only the
loopback server. Set `UPDATE_SCREENSHOTS=1` to rewrite docs/screenshots/{desktop,phone}.png.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field

from assistant.core import Assistant
from assistant.errors import StoreUnavailableError
from assistant.interfaces.web.ui import EXAMPLES
from assistant.types import Answer

from conftest import ARTICLE_DIR, ROOT, make_assistant, running, scripted, with_llm

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INT8 = "INT8 量化后的 Step-3 需要几 GB 显存？"
INT8_REPLY = "Step-3 的 INT8 量化版本仅需 5GB 显存 [1]。"
FINAL = "#chat .reply.answer, #chat .reply.correction, #chat .reply.refusal, #chat .reply.error"

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
pytest.importorskip("gradio", reason="pip install gradio==6.31.0")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Assistant, str]]:
    import uvicorn

    from assistant.interfaces.web.ui import create_app

    assistant = make_assistant(ARTICLE_DIR, tmp_path_factory.mktemp("web-index"))
    assistant.build_index()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(assistant), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the web server did not start"
        time.sleep(0.05)
    yield assistant, f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.route("**/*", _loopback_only)
        yield context
        context.close()


def _loopback_only(route: Any) -> None:
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(browser: Any, served: tuple[Assistant, str]) -> Iterator[Any]:
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(served[1])
    page.evaluate("localStorage.clear()")  # each test starts a new conversation (the page keeps them)
    page.reload()
    page.wait_for_selector("#question textarea:not([disabled])")  # its saved conversation is restored
    yield page
    page.close()


def ask(page: Any, question: str, fast: bool = False) -> Any:
    """Ask through the page; wait for the final (verified) reply and return it."""
    before = page.locator(FINAL).count()
    if fast != page.locator("#fast input").is_checked():
        page.locator("#fast input").click()
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(f"document.querySelectorAll({FINAL!r}).length > {before}")
    return page.locator(FINAL).nth(before)


def shot(page: Any, name: str, tmp_path: Path) -> None:
    target = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"))
    assert (target / f"{name}.png").stat().st_size > 10_000


def test_an_answer_streams_then_its_marker_opens_the_passage_and_the_article(page, served, tmp_path):
    llm = scripted(INT8_REPLY)
    llm.sleep = 0.04  # slow enough to watch the draft grow
    with_llm(served[0], llm)
    page.fill("#question textarea", INT8)
    page.click("#ask")
    page.wait_for_function("(document.querySelector('#chat .reply.draft p')?.textContent || '').length > 8")
    assert page.locator("#chat .reply.answer").count() == 0, "the draft shows before the verified answer"
    reply = page.locator("#chat .reply.answer")
    reply.wait_for()
    assert page.locator("#chat .reply.draft").count() == 0, "the draft is replaced"
    assert "仅需 5GB 显存" in reply.inner_text() and "[1]" in reply.inner_text()
    assert "first token" in reply.locator(".meta").inner_text() and "fake" in reply.locator(".meta").inner_text()

    reply.locator("a.cite").first.click()
    card = page.locator("#sources-panel .source.active")
    assert card.get_attribute("id") == "src-0-1"
    assert "从技术创新到商业闭环 · ¶" in card.locator(".where").inner_text()
    assert "INT8 量化版本仅需 5GB 显存" in card.locator("mark").inner_text()
    article = page.locator("#article-panel section.article:visible")
    assert "阶跃星辰凭什么拿最多的钱" in article.locator("h3").inner_text()
    assert "关于ZAKER" not in article.inner_text(), "the article view is the cleaned text"
    assert "INT8 量化版本仅需 5GB 显存" in article.locator("mark.quote").first.inner_text()
    _assert_in_view(page, "#article-panel mark.quote", "#article-panel .article-scroll")
    shot(page, "desktop", tmp_path)


def test_the_supporting_quote_shows_before_the_answer(page, served):
    llm = scripted(INT8_REPLY)
    llm.sleep = 0.1  # a model that takes its time: the quote is on screen meanwhile
    with_llm(served[0], llm)
    page.fill("#question textarea", INT8)
    page.click("#ask")
    quote = page.locator("#chat .reply.draft blockquote.evidence")
    quote.wait_for()
    assert page.locator("#chat .reply.answer").count() == 0, "the quote shows before the verified answer"
    assert "文章原文" in quote.inner_text() and "5GB" in quote.inner_text() and "[1]" in quote.inner_text()
    page.locator("#chat .reply.answer").wait_for()
    assert page.locator("#chat .reply.draft").count() == 0, "the verified answer replaces quote and draft"


def test_a_follow_up_uses_the_conversation_and_old_markers_still_work(page, served):
    # Turn 1 answers; turn 2 ("那…呢") is condensed with turn 1 as history, then answered.
    with_llm(served[0], scripted(INT8_REPLY, "阶跃星辰的 CTO 是谁？", "CTO 朱亦博具备万卡集群建设经验 [1]。"))
    ask(page, INT8)
    second = ask(page, "那 CTO 是谁呢？")
    assert "万卡集群建设经验" in second.inner_text(), "the follow-up was rewritten with the first question"
    assert "万卡集群" in page.locator("#article-panel mark.quote").first.inner_text()
    _assert_in_view(page, "#article-panel mark.quote", "#article-panel .article-scroll")

    page.locator("#chat .reply.answer").first.locator("a.cite").click()  # the first answer's [1]
    assert page.locator("#sources-panel .source.active").get_attribute("id") == "src-0-1"
    marked = "".join(page.locator("#article-panel section.article:visible mark").all_inner_texts())
    assert "INT8" in marked and "万卡集群" not in marked


def test_a_refusal_looks_different_and_lists_related_passages(page, served, monkeypatch):
    with_llm(served[0], scripted("阶跃星辰的总部在北京 [1]。"))
    answers = recorded(served[0], monkeypatch)
    reply = ask(page, "阶跃星辰的办公地点在哪座城市？")
    assert [a.refusal_reason for a in answers] == ["unverified"], "the model's 北京 has no passage behind it"
    assert "refusal" in (reply.get_attribute("class") or "")
    assert reply.locator(".refusal-text").inner_text().startswith("文章没有提到")
    assert "Related (not cited)" in reply.inner_text() and reply.locator("li").count() == 3
    assert reply.locator("a.cite").count() == 0
    style = reply.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).borderStyle]")
    assert style == ["rgb(243, 244, 246)", "dashed"]
    assert page.locator("#sources-panel .source.related").count() == 3
    reply.locator("a.rel").first.click()
    assert page.locator("#article-panel section.article:visible mark").count() > 0


def recorded(assistant: Assistant, monkeypatch: pytest.MonkeyPatch) -> list[Answer]:
    """The answers `assistant` gives the page from now on (to the end of the test)."""
    answers: list[Answer] = []
    stream = assistant.stream

    def recording(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in stream(*args, **kwargs):
            if isinstance(event, Answer):
                answers.append(event)
            yield event

    monkeypatch.setattr(assistant, "stream", recording)
    return answers


def test_a_premise_correction_cites_its_passage_like_an_answer(page, served):
    """Asked about a partner the article does not name for this, the page says which one it names, cited."""
    with_llm(served[0], scripted("与比亚迪合作的银河 M9 车型上市 3 个月销量近 4 万辆 [1]。"))
    reply = ask(page, "阶跃星辰与比亚迪合作的银河 M9 车型上市 3 个月卖了多少辆？")
    assert "correction" in (reply.get_attribute("class") or "")
    assert reply.inner_text().startswith("文章说的是“吉利”，不是“比亚迪”")
    reply.locator("a.cite").first.click()
    card = page.locator("#sources-panel .source.active")
    assert "吉利" in card.locator("mark").inner_text() and page.locator("#sources-panel .source.related").count() == 0


def test_the_fast_toggle_answers_with_a_cited_quote(page, served):
    with_llm(served[0], scripted("不应被调用"))
    reply = ask(page, "Step-3 的总参数量有多大？", fast=True)
    assert reply.inner_text().startswith("文章原文（摘录") and "321B" in reply.inner_text()
    assert reply.locator("a.cite").count() >= 1 and "不应被调用" not in reply.inner_text()
    assert "extractive" in reply.locator(".meta").inner_text()


def test_clicking_an_example_asks_it(page, served):
    example = "Step-3 在国产芯片上的推理效率如何？"
    assert example in EXAMPLES
    with_llm(served[0], scripted("Step-3 在国产芯片上的推理效率最高可达 DeepSeek-R1 的 300% [1]。"))
    page.locator("#examples button", has_text=example).click()
    reply = page.locator(FINAL).first
    reply.wait_for()
    assert "300%" in reply.inner_text() and reply.locator("a.cite").count() == 1
    assert page.locator("#chat [data-testid=user]").first.inner_text().strip() == example


def test_errors_are_a_polite_chat_message_and_the_page_keeps_working(page, served, monkeypatch):
    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("cannot reach the Chroma server at http://127.0.0.1:9: is `chroma run` up?")

    monkeypatch.setattr(served[0], "stream", down)
    reply = ask(page, INT8)
    assert "error" in (reply.get_attribute("class") or "")
    assert "Sorry" in reply.inner_text() and "chroma run" in reply.inner_text()
    monkeypatch.undo()
    with_llm(served[0], scripted(INT8_REPLY))
    assert "5GB" in ask(page, INT8).inner_text()


def test_a_phone_sized_screen_stacks_the_sources_under_the_chat(browser, served, tmp_path):
    with_llm(served[0], scripted(INT8_REPLY))
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        page.set_default_timeout(20_000)
        page.goto(served[1])
        page.wait_for_selector("#question textarea")
        reply = ask(page, INT8)
        assert "answer" in (reply.get_attribute("class") or "") and "仅需 5GB 显存" in reply.inner_text()
        reply.locator("a.cite").click()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        chat, side = page.locator("#chat-col").bounding_box(), page.locator("#side-col").bounding_box()
        assert side["y"] >= chat["y"] + chat["height"] - 1 and side["width"] > 300
        assert page.locator("#sources-panel .source.active").is_visible()
        page.evaluate(
            "window.scrollBy(0, document.querySelector('#chat .reply.answer').getBoundingClientRect().top - 8)"
        )
        shot(page, "phone", tmp_path)  # the answer on top, its source below
    finally:
        page.close()


def test_gradio_client_calls_the_chat_endpoint(served):
    gradio_client = pytest.importorskip("gradio_client")
    with_llm(served[0], scripted(INT8_REPLY))
    client = gradio_client.Client(served[1], verbose=False)
    box, chat, sources, article = client.predict(INT8, False, [], api_name="/chat")
    assert box == "" and chat[-1]["role"] == "assistant"
    assert 'class="cite"' in str(chat[-1]["content"]) and "5GB" in str(chat[-1]["content"])
    assert 'id="src-0-1"' in sources and "<mark" in article


def _assert_in_view(page: Any, selector: str, box: str) -> None:
    inner, outer = page.locator(selector).first.bounding_box(), page.locator(box).bounding_box()
    assert outer["y"] <= inner["y"] <= outer["y"] + outer["height"], f"{selector} is scrolled out of view"


class Recorder(GenericFakeChatModel):
    """Answers every question alike after `delay` seconds, noting when each call ran and on what question."""

    messages: Any = iter(())
    delay: float = 2.0
    calls: list[tuple[str, float, float]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        started = time.monotonic()
        time.sleep(self.delay)
        self.calls.append((messages[-1].text, started, time.monotonic()))
        self.messages = iter([AIMessage(content="Step-3 每次推理仅激活 38B 参数 [1]。")])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kw)


@pytest.fixture(scope="module")
def server_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Assistant, str]]:
    """`assistant serve`'s app (API and page in one), as the CLI builds it."""
    from assistant.interfaces.http.server import build_server

    assistant = make_assistant(ARTICLE_DIR, tmp_path_factory.mktemp("server-index"))
    assistant.build_index()
    with running(build_server(assistant)) as url:
        yield assistant, url


def test_a_page_question_and_an_api_question_are_answered_one_after_the_other_in_order(browser, server_app):
    assistant, url = server_app
    recorder = with_llm(assistant, Recorder()).llm
    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/")
    page.wait_for_selector("#question textarea")
    page.fill("#question textarea", "Step-3 每次推理激活多少参数？")
    page.click("#ask")
    deadline = time.monotonic() + 20
    while not assistant.queue.busy:  # the page's question holds the turn
        assert time.monotonic() < deadline, "the page's question never reached the queue"
        time.sleep(0.02)
    api = httpx.post(url + "/api/ask", json={"question": "Step-3 的总参数量是多少？"}, timeout=60)
    assert api.status_code == 200 and api.json()["refused"] is False, api.text
    page.wait_for_selector("#chat .reply.answer")
    assert "38B" in page.locator("#chat .reply.answer").inner_text()
    page.close()
    (first, start1, end1), (second, start2, _) = recorder.calls
    assert "每次推理激活多少参数" in first and "总参数量" in second, "answered in the order they arrived"
    assert start2 >= end1, "the API's answer started only after the page's was done"


TRAP = "trap.invalid"  # no such host: the browser may not reach it, and every attempt is recorded
HOSTILE = (
    f'![logo](http://{TRAP}/md.png) <img src=http://{TRAP}/img.png onerror="window.__pwned=1">'
    f' <script>window.__pwned=2</script> [点此领取](http://{TRAP}/link) <a href="javascript:window.__pwned=3">x</a>'
)


def test_a_hostile_passage_and_a_hostile_draft_stay_inert_text(browser, tmp_path):
    """Model output and corpus text are shown as text, in the streamed draft and in the final answer, sources
    and article: a planted passage and a draft with Markdown images, links, HTML and script (blank lines to
    leave the reply's HTML block) fetch nothing, run nothing and leave no live link."""
    from assistant.interfaces.web.ui import create_app

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "planted.txt").write_text(
        "量化说明\n\nStep-3 的 INT8 量化版本仅需 5GB 显存。\n\n" + HOSTILE + "\n\n" + HOSTILE.replace(" ", "\n\n"),
        encoding="utf-8",
    )
    assistant = make_assistant(corpus, tmp_path / "index")
    assistant.build_index()
    draft = "Step-3 的 INT8 量化版本仅需 5GB 显存 [1]。\n\n" + HOSTILE.replace(" ", "\n\n") + "\n\n"
    llm = scripted(draft, draft)
    llm.sleep = 0.005
    with_llm(assistant, llm)
    requested: list[str] = []
    with running(create_app(assistant)) as url:
        page = browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.set_default_timeout(30_000)
        page.goto(url)
        page.wait_for_selector("#question textarea")
        page.fill("#question textarea", INT8)
        page.click("#ask")
        page.wait_for_function(
            "document.querySelector('#chat .reply.draft')"
            " && (document.querySelector('#chat').textContent.includes('点此')"
            f' || document.querySelectorAll(\'#chat [src*="{TRAP}"], #chat [href*="{TRAP}"]\').length > 0)'
        )
        in_draft = page.evaluate(
            f'document.querySelectorAll(\'#chat img[src*="{TRAP}"], #chat a[href*="{TRAP}"]\').length'
        )
        reply = ask(page, "量化说明里还写了什么？")  # a second turn: the first's final answer and sources are shown
        reply.wait_for()
        page.locator("#chat .reply a.cite, #chat .reply a.rel").first.click()
        live = page.evaluate(
            f"""[...document.querySelectorAll('img, a, script, iframe')].filter(e =>
                (e.src || e.href || '').includes('{TRAP}') || (e.href || '').startsWith('javascript:')
                || (e.tagName === 'SCRIPT' && e.textContent.includes('__pwned'))).length"""
        )
        pwned = page.evaluate("window.__pwned")
        shown = page.locator("#chat").inner_text() + page.locator("#sources-panel").inner_text()
        page.close()
    assert in_draft == 0, "the streamed draft made a live image or link"
    assert [u for u in requested if TRAP in u] == [], "the page tried to fetch a planted address"
    assert live == 0 and pwned is None
    assert f"http://{TRAP}/" in shown, "the hostile text is shown, as text"


def rate_last_answer(page, assistant, button: str) -> dict:
    """Click `button` (Like, Dislike) under the last answer; the feedback row it wrote."""
    before = len(assistant.feedback.rows())
    page.locator("#chat .message-row, #chat [data-testid='bot']").last.hover()
    page.locator(f"#chat button[aria-label='{button}'], #chat button[title='{button}']").last.click()
    deadline = time.monotonic() + 10
    while len(assistant.feedback.rows()) == before:
        assert time.monotonic() < deadline, "the click never reached the feedback store"
        time.sleep(0.1)
    return assistant.feedback.rows()[-1]


def test_a_thumb_in_the_page_is_kept_with_its_answer(page, served, tmp_path):
    """A click on 👎 under an answer (real Chromium) lands in the feedback store with the answer, its question
    and the conversation before it, and comes out of the export as an eval item to label."""
    assistant = served[0]
    with_llm(assistant, scripted(INT8_REPLY, INT8_REPLY))
    ask(page, "阶跃星辰是哪一年成立的？", fast=True)
    ask(page, INT8).wait_for()
    rated = rate_last_answer(page, assistant, "Dislike")
    assert rated["rating"] == -1 and rated["source"] == "page" and rated["question"] == INT8
    assert rated["history"] == ["阶跃星辰是哪一年成立的？"] and "5GB" in rated["answer"]["answer"]
    assistant.feedback.export(tmp_path / "out.jsonl")
    assert any(f'"turns": ["阶跃星辰是哪一年成立的？", "{INT8}"]' in line for line in (tmp_path / "out.jsonl").open())


def test_a_thumb_up_after_a_reload_exports_the_answer_as_gold(page, served, tmp_path):
    """The page keeps the answer the server gave with its id, in the browser's storage too: a 👍 on it, even
    after a reload, is verified and exported with its answer as candidate gold."""
    assistant = served[0]
    with_llm(assistant, scripted(INT8_REPLY))
    ask(page, INT8)
    page.wait_for_timeout(500)  # the conversation is written to the browser's storage after the answer
    page.reload()
    page.wait_for_selector("#chat .reply.answer")
    rated = rate_last_answer(page, assistant, "Like")
    assert rated["rating"] == 1 and rated["source"] == "page" and rated["verified"] == 1
    assistant.feedback.export(tmp_path / "out.jsonl")
    items = [json.loads(line) for line in (tmp_path / "out.jsonl").open(encoding="utf-8")]
    [item] = [i for i in items if i["id"] == f"feedback-{rated['id']}"]
    assert "needs_label" not in item and item["answers"] == [rated["answer"]["answer"]] and "5GB" in item["answers"][0]


def test_a_reload_keeps_the_conversation_and_earlier_ones_can_be_reopened(page, served):
    """The conversation lives in the browser's storage: after a reload the answers are still shown, with their
    sources, and a follow-up is asked with the earlier question; "New conversation" files it under earlier ones,
    from where it can be reopened."""
    assistant = served[0]
    with_llm(assistant, scripted(INT8_REPLY, INT8_REPLY, INT8_REPLY))
    asked: list[list[str]] = []
    real_stream = assistant.stream

    def spy(question: str, history: Any = (), *args: Any, **kwargs: Any) -> Any:
        asked.append(list(history))
        return real_stream(question, history, *args, **kwargs)

    assistant.stream = spy  # type: ignore[method-assign]
    try:
        ask(page, INT8)
        page.wait_for_timeout(500)  # the conversation is written to the browser's storage after the answer
        page.reload()
        page.wait_for_selector("#chat .reply.answer")
        assert INT8 in page.locator("#chat").inner_text() and "5GB" in page.locator("#chat").inner_text()
        assert page.locator("#sources-panel .source").count() >= 1, "the sources come back too"
        ask(page, "它需要多少显存？", fast=True)
        assert asked[-1] == [INT8], "a follow-up after the reload is asked with the earlier question"
        page.wait_for_timeout(500)
        page.click("#clear")
        page.wait_for_function("document.querySelectorAll('#chat .reply').length === 0")
        page.locator("#earlier input").click()
        page.get_by_role("option").first.click()
        page.wait_for_selector("#chat .reply.answer")
        assert INT8 in page.locator("#chat").inner_text(), "the earlier conversation reopens"
    finally:
        assistant.stream = real_stream  # type: ignore[method-assign]


def test_a_pdf_dropped_on_the_page_is_answered_from_with_its_span_highlighted(browser, tmp_path):
    """Upload a real PDF through the page's file box (served as `assistant serve` serves it): it is converted,
    indexed and, the next question on, cited; the cited span is highlighted in the document view. A file whose
    content is not what its name says is refused with the reason, and the corpus is unchanged."""
    import shutil

    from assistant.interfaces.http.server import build_server

    from documents import REPORT_TITLE, html_bytes, pdf_bytes, write

    corpus = tmp_path / "corpus"
    shutil.copytree(ARTICLE_DIR, corpus)
    assistant = make_assistant(corpus, tmp_path / "index")
    assistant.build_index()
    with_llm(assistant, scripted("首席技术官由陈立远接任 [1]。"))
    with running(build_server(assistant)) as url:  # as `assistant serve`: body limits, rate limit, the API beside
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(url + "/")
        page.wait_for_selector("#question textarea:not([disabled])")
        page.set_input_files("#upload input[type=file]", str(write(tmp_path, "report.pdf", pdf_bytes())))
        page.wait_for_selector("#upload-status .upload-note li")
        assert f"report.pdf: {REPORT_TITLE}" in page.locator("#upload-status").inner_text()
        assert (corpus / "report.pdf.txt").is_file()

        reply = ask(page, "星河电池的首席技术官由谁接任？")
        assert "陈立远" in reply.inner_text() and "[1]" in reply.inner_text()
        reply.locator("a.cite").first.click()
        article = page.locator("#article-panel section.article:visible")
        assert REPORT_TITLE in article.locator("h3").inner_text()
        assert "首席技术官由陈立远接任" in article.locator("mark.quote").first.inner_text()

        listing = sorted(p.name for p in corpus.iterdir() if not p.name.startswith("."))
        page.set_input_files("#upload input[type=file]", str(write(tmp_path, "fake.pdf", html_bytes())))
        page.wait_for_selector("#upload-status .error")
        assert "content is a web page (HTML)" in page.locator("#upload-status").inner_text()
        assert sorted(p.name for p in corpus.iterdir() if not p.name.startswith(".")) == listing
        page.close()
