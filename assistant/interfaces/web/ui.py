"""The web chat (Gradio): answers stream in, every `[n]` opens the passage it came from.

`build_ui(assistant)` returns a `gr.Blocks` to mount on any FastAPI app
(`gr.mount_gradio_app(app, build_ui(assistant), path="/")`); its CSS and script travel inside it;
`create_app` mounts it alone. This module lays the page out and wires its events to `handlers`, which
turn the `Assistant`'s stream and errors into page updates; HTML rendering is `render`'s job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from assistant.core import Assistant
from assistant.corpus.convert import KINDS
from assistant.interfaces.web import handlers, saved
from assistant.interfaces.web.assets import ARTICLE_ON_LOAD, HEAD
from assistant.interfaces.web.render import answer_html, article_html, inert, sources_html
from assistant.types import Answer

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import FastAPI

TITLE = "文章问答 / Ask the article"
# Questions about the packaged article (钛媒体 on StepFun's B+ round); pass your own for another corpus.
EXAMPLES = (
    "这轮融资的钱主要用在哪些方向？",
    "Step-3 在国产芯片上的推理效率如何？",
    "Which phone makers ship StepFun's models?",
    "What might StepFun be valued at after this round?",
)
# Thumbs (rendered as icons), and reasons under the flag: each kept as a 👎 with the reason as its comment.
FEEDBACK_OPTIONS = (
    "Like",
    "Dislike",
    "答错了 / Wrong",
    "没有依据 / Not supported by the text",
    "答非所问 / Off the question",
)


def build_ui(assistant: Assistant, *, title: str = TITLE, examples: Sequence[str] = EXAMPLES) -> gr.Blocks:
    """The chat page for `assistant`: chat and input on the left, sources and article on the right
    (stacked on a phone). Mount it with `gr.mount_gradio_app`; the chat endpoint's api_name is "chat"."""
    import gradio as gr

    # Gradio's cached files (uploads among them) are removed after a day, checked hourly
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 86400)) as page:
        gr.HTML(f"<h2 style='margin:.2em 0'>{escape(title)}</h2>", head=HEAD, js_on_load=None, elem_id="page-head")
        turns = gr.State([])
        stored = gr.BrowserState(saved.empty(), storage_key=saved.STORAGE_KEY, secret=saved.secret(assistant))
        with gr.Row(elem_id="main-row", equal_height=False):
            with gr.Column(scale=3, min_width=300, elem_id="chat-col"):
                chat, question, ask, fast, clear = _chat_column(gr)
                earlier = gr.Dropdown(
                    label="之前的对话 / Earlier conversations", choices=[], value=None, elem_id="earlier", type="value"
                )
                shown = _examples(gr, examples, question)
                files, added = _upload_area(gr) if assistant.settings.uploads else (None, None)
            with gr.Column(scale=2, min_width=280, elem_id="side-col"):
                gr.Markdown("### 来源 / Sources")
                sources = gr.HTML(sources_html([]), elem_id="sources-panel", js_on_load=None)
                gr.Markdown("### 原文 / The article")
                article = gr.HTML(article_html([]), elem_id="article-panel", js_on_load=ARTICLE_ON_LOAD)

        def respond(text: str, is_fast: bool, messages: list[handlers.Message], past: list[Answer]) -> Iterator[Any]:
            yield from handlers.respond(assistant, text, is_fast, messages, past)

        def shown_now(data: saved.Saved) -> tuple[Any, ...]:
            """The page for `data`'s current conversation, and the list of the earlier ones."""
            past = saved.current(assistant, data)
            messages = [m for i, a in enumerate(past) for m in _turn_messages(a, i)]
            choices = saved.titles(data)
            ready = gr.update(value="", interactive=True)  # the page takes questions once its conversation is back
            article_now = handlers.article(past) if past else article_html([])
            listed = gr.update(choices=choices, value=None)
            return ready, messages, past, sources_html(past), article_now, data, listed, gr.update(interactive=True)

        def restore(data: saved.Saved, messages: list[handlers.Message]) -> tuple[Any, ...]:
            if messages:  # a question was asked before the page finished loading: it is not overwritten
                return tuple(gr.skip() for _ in range(8))
            return shown_now(data)

        def new_conversation(past: list[Answer], data: saved.Saved) -> tuple[Any, ...]:
            return shown_now(saved.start_new(data, past))

        def reopen(index: int | None, past: list[Answer], data: saved.Saved) -> tuple[Any, ...]:
            return shown_now(data) if index is None else shown_now(saved.reopen(data, past, int(index)))

        def persist(past: list[Answer], data: saved.Saved) -> saved.Saved:
            return saved.keep(data, past)

        inputs, outputs = [question, fast, chat, turns], [question, chat, turns, sources, article]
        page_outputs = [*outputs, stored, earlier, ask]
        # Gradio lets every question through; the assistant's queue (shared with the API and Slack) orders them.
        once = {"show_progress": "hidden", "concurrency_limit": None}
        ask.click(respond, inputs, outputs, api_name="chat", **once).then(
            persist, [turns, stored], [stored], api_visibility="private"
        )
        question.submit(respond, inputs, outputs, api_visibility="private", **once).then(
            persist, [turns, stored], [stored], api_visibility="private"
        )
        if shown is not None:  # clicking an example asks it
            shown.load_input_event.then(respond, inputs, outputs, api_visibility="private", **once).then(
                persist, [turns, stored], [stored], api_visibility="private"
            )
        page.load(restore, [stored, chat], page_outputs, api_visibility="private")  # a reload keeps the conversation
        earlier.input(reopen, [earlier, turns, stored], page_outputs, api_visibility="private")

        def rate(data: gr.LikeData, past: list[Answer]) -> None:
            handlers.rate(assistant, data, past)

        rate.__annotations__["data"] = gr.LikeData  # Gradio finds the event data by this hint: the class, not a string

        chat.like(rate, [turns], None, api_visibility="private")
        if files is not None:  # one upload at a time per page; `Assistant.add` orders those of every page

            def add(paths: list[str] | None) -> Iterator[tuple[Any, str]]:
                yield from handlers.add(assistant, paths)

            files.upload(add, [files], [files, added], api_visibility="private", concurrency_limit=1)
        clear.click(new_conversation, [turns, stored], page_outputs, api_visibility="private")
        chat.clear(new_conversation, [turns, stored], page_outputs, api_visibility="private")
    return page


def _turn_messages(answer: Answer, turn: int) -> list[handlers.Message]:
    """A restored turn as the chat shows it: the question, then the answer."""
    return [
        {"role": "user", "content": inert(answer.question)},
        {"role": "assistant", "content": answer_html(answer, turn)},
    ]


def _chat_column(gr: Any) -> tuple[Any, ...]:
    chat = gr.Chatbot(
        elem_id="chat",
        label="对话 / Conversation",
        height=520,
        buttons=["copy"],
        feedback_options=FEEDBACK_OPTIONS,
        placeholder="问一个关于文章的问题 / Ask a question about the article",
    )
    with gr.Row(elem_id="ask-row"):
        question = gr.Textbox(
            show_label=False,
            placeholder="输入问题，回车提问 / Type a question, press Enter",
            elem_id="question",
            interactive=False,  # until the saved conversation is restored (`build_ui`'s load event)
            scale=5,
            min_width=160,
            max_lines=4,
        )
        ask = gr.Button("提问 / Ask", variant="primary", elem_id="ask", scale=1, min_width=90, interactive=False)
    with gr.Row():
        fast = gr.Checkbox(label="快速回答（原文摘录，不生成）/ Fast answer (quote, no generation)", elem_id="fast")
        clear = gr.Button("新对话 / New conversation", size="sm", elem_id="clear", scale=0, min_width=90)
    return chat, question, ask, fast, clear


def _upload_area(gr: Any) -> tuple[Any, Any]:
    """Drop files here (or click to choose): they join the corpus and can be asked about at once."""
    files = gr.File(
        label="添加文档（拖放或点击）/ Add documents (drop or click): " + " ".join(KINDS),
        file_count="multiple",
        file_types=list(KINDS),  # the browser's filter; the server tells each file's kind by its content
        height=120,
        elem_id="upload",
    )
    return files, gr.HTML("", elem_id="upload-status")


def _examples(gr: Any, examples: Sequence[str], question: Any) -> Any:
    if not examples:
        return None
    return gr.Examples(
        [[e] for e in examples], inputs=[question], label="示例问题 / Example questions", elem_id="examples"
    )


def create_app(assistant: Assistant, path: str = "/", **ui: Any) -> FastAPI:
    """A FastAPI app with the chat page mounted at `path` (the HTTP API can mount beside it)."""
    import gradio as gr
    from fastapi import FastAPI

    app = FastAPI(title="assistant")
    page = build_ui(assistant, **ui)
    return gr.mount_gradio_app(
        app, page, path=path, footer_links=["api"], max_file_size=assistant.settings.upload_max_bytes
    )
