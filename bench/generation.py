"""Generation settings of llama.cpp on this machine: threads, and prompt-lookup speculative decoding.

Each configuration loads its own copy of the packaged model and answers the same four article
questions from the assistant's own prompts (greedy, up to 96 tokens): prompt evaluation and
generation are timed separately, in tokens a second. Configurations: generation on one core fewer
than the machine has (the setting before issue 12) and on every core, each without and with
llama-cpp-python's `LlamaPromptLookupDecoding` (drafts the next tokens by copying from the prompt,
which answers that quote their passages should favour). A configuration that fails is reported
with its error. Records part `generation` of bench/out/results.json.
Run: `.venv/bin/python bench/generation.py [--quick]` (a few minutes).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from common import markdown_table, part_parser, run_part, summary

from assistant.answering import prompts
from assistant.factory import build_assistant
from assistant.settings import Settings

QUESTIONS = ("阶跃星辰的首席科学家是谁？", "Step-3 的 INT8 量化版本需要多少显存？", "MiniMax 2025 年前三季度亏损多少？")
QUESTIONS += ("印奇是哪家公司的创始人？",)


def configurations() -> dict[str, dict[str, Any]]:
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    cores = os.cpu_count() or 1
    fewer, every = max(1, cores - 1), cores
    return {
        f"{fewer} thread(s)": {"n_threads": fewer},
        f"{every} threads": {"n_threads": every},
        f"{fewer} thread(s) + prompt lookup": {"n_threads": fewer, "draft_model": LlamaPromptLookupDecoding(10)},
        f"{every} threads + prompt lookup": {"n_threads": every, "draft_model": LlamaPromptLookupDecoding(10)},
    }


def prompts_for(questions: tuple[str, ...]) -> list[list[dict[str, str]]]:
    """The assistant's answering prompt (today's passages) for each question, as chat messages."""
    assistant = build_assistant(Settings.load())
    chats = []
    for q in questions:
        passages = assistant.answerer._passages(q, assistant.retriever.search(q, k=5))
        user = prompts.ANSWER_USER.format(passages=passages, question=q)
        chats.append([{"role": "system", "content": prompts.ANSWER_SYSTEM}, {"role": "user", "content": user}])
    return chats


def run(config: dict[str, Any], chats: list[list[dict[str, str]]]) -> dict[str, Any]:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from assistant.models.model_file import packaged_model_path

    cores = os.cpu_count() or 1
    llama = llama_cpp.Llama(
        model_path=str(packaged_model_path()), n_ctx=4096, n_threads_batch=cores, verbose=False, **config
    )
    template = Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token=""
    )
    prompt_speed, generation_speed = [], []
    try:
        for chat in chats:
            tokens = llama.tokenize(template(messages=chat).prompt.encode(), add_bos=False, special=True)
            llama.reset()
            started, first, text = time.perf_counter(), None, ""
            for part in llama.create_completion(tokens, stream=True, temperature=0, max_tokens=96, stop=["<|im_end|>"]):
                first = first or time.perf_counter()
                text += part["choices"][0]["text"]
            done = time.perf_counter()
            generated = len(llama.tokenize(text.encode(), add_bos=False, special=True))
            prompt_speed.append(len(tokens) / ((first or done) - started))
            generation_speed.append(generated / max(done - (first or done), 1e-3))
    except Exception as exc:  # a configuration llama-cpp-python cannot run: reported, not fatal
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    finally:
        llama.close()
    return {"prompt_tokens_per_s": summary(prompt_speed, 1), "generated_tokens_per_s": summary(generation_speed, 1)}


def measure(args: Any) -> dict[str, Any]:
    chats = prompts_for(QUESTIONS[:2] if args.quick else QUESTIONS)
    return {"questions": len(chats), "configurations": {name: run(c, chats) for name, c in configurations().items()}}


def table(part: dict[str, Any]) -> str:
    rows = []
    for name, r in part["configurations"].items():
        if "error" in r:
            rows.append([name, "–", "–", f"failed: {r['error']}"])
        else:
            speeds = (r["prompt_tokens_per_s"], r["generated_tokens_per_s"])
            rows.append([name, *(f"{s['p50']:.0f} ({s['min']:.0f}–{s['max']:.0f})" for s in speeds), ""])
    headers = ["generation", "prompt tokens/s p50 (range)", "generated tokens/s p50 (range)", "note"]
    return markdown_table(headers, rows) + f"\n\n{part['questions']} article questions, each configuration in turn."


def main() -> int:
    return run_part("generation", part_parser(__doc__).parse_args(), measure, table)


if __name__ == "__main__":
    sys.exit(main())
