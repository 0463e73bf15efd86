"""The chat model's process, `python -m assistant.models.worker`, started and watched by `model_process`.

`serve` loads the model, says so, then answers the parent's requests over the socket pair in order: text
pieces as llama.cpp makes them, then one last message with the token counts (a cancel ends a generation
early); for a `choose` request, the log-probability of each option as the reply's first token. The child
keeps one set of weights and a llama.cpp context per `context` number (the answer's, the helper calls'), so
a helper call does not evict the answer prompt's cached start; see `model_load.twin`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError, ConfigurationError, ModelTimeoutError

log = logging.getLogger(__name__)


def serve(conn: Connection, path: str, n_ctx: int) -> None:
    """The child's loop: load the model, say so, then answer requests in order until the parent goes."""
    from assistant.models import model_load

    cores = os.cpu_count() or 1
    try:
        first = model_load.load(Path(path), n_ctx, cores, cores)
    except AssistantError as exc:
        conn.send({"error": type(exc).__name__, "message": str(exc)})
        return
    contexts = {0: first}
    conn.send({"ready": True})
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if request.get("op") not in ("complete", "choose"):
            continue  # a cancel that arrived after its completion ended
        try:
            number = int(request.get("context", 0))
            if number not in contexts:
                contexts[number] = model_load.twin(first)
            run = generate if request["op"] == "complete" else choose
            for reply in run(contexts[number], request, conn):
                conn.send(reply)
        except (EOFError, OSError):
            return  # the parent went away mid-answer
        except AssistantError as exc:
            _reply(conn, {"error": type(exc).__name__, "message": str(exc)})
        except Exception as exc:  # llama-cpp-python's own ValueError/RuntimeError: this call fails, not the process
            log.exception("the chat model failed on a request")
            _reply(conn, {"error": "ModelUnavailableError", "message": f"the chat model failed ({exc}): try again"})


def _reply(conn: Connection, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.send(message)


def generate(model: Any, request: dict[str, Any], conn: Connection) -> Iterator[dict[str, Any]]:
    """Text pieces for `request` on `model` (a `model_load.Loaded`), then the last message with token counts."""
    llama = model.llama
    rendered = model.formatter(messages=request["messages"])
    prompt = _tokens(llama, rendered)
    extra = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
    model.use_threads(*request["threads"])
    cached = cached_prefix(llama, prompt)
    started, timeout = time.monotonic(), request.get("timeout")
    stream = llama.create_completion(
        prompt,
        stream=True,
        temperature=request["temperature"],
        max_tokens=request["max_tokens"],
        stop=[*request["stop"], *extra],
        repeat_penalty=request["repeat_penalty"],
    )
    text, finish_reason, first = "", None, 0.0
    with contextlib.closing(stream):
        for part in stream:
            choice = part["choices"][0]
            finish_reason = choice.get("finish_reason") or finish_reason
            first = first or time.monotonic() - started
            if choice["text"]:
                text += choice["text"]
                yield {"text": choice["text"]}
            if conn.poll() and conn.recv().get("op") == "cancel":
                finish_reason = "cancelled"
                break
            if timeout is not None and time.monotonic() - started >= timeout and finish_reason is None:
                raise ModelTimeoutError(
                    f"the chat model took longer than {timeout:.0f} s (stopped after {len(text)} "
                    "characters): raise ASSISTANT_LLM_TIMEOUT, ask a shorter question, or use a faster model"
                )
    log.info("%d prompt tokens; first token %.1f s; %d characters", len(prompt), first, len(text))
    output = len(llama.tokenize(text.encode(), add_bos=False, special=True)) if text else 0
    yield {"done": True, "prompt_tokens": len(prompt), "cached": cached, "output_tokens": output,
           "finish_reason": finish_reason or "stop"}  # fmt: skip


def choose(model: Any, request: dict[str, Any], conn: Connection) -> Iterator[dict[str, Any]]:
    """The model's log-probability of each of `request["options"]` as the first token of its reply (e.g. 是/否
    after a yes/no check): one evaluation of the prompt past what the context still holds, no generation."""
    import numpy as np

    llama = model.llama
    rendered = model.formatter(messages=request["messages"])
    prompt = _tokens(llama, rendered)
    model.use_threads(*request["threads"])
    keep = min(cached_prefix(llama, prompt), len(prompt) - 1)  # the last token is evaluated for its logits
    llama.n_tokens = keep
    llama.eval(prompt[keep:])
    logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
    top = logits.max()
    log_total = top + np.log(np.exp(logits - top).sum())
    firsts = {o: llama.tokenize(o.encode(), add_bos=False, special=False)[0] for o in request["options"]}
    yield {"done": True, "logprobs": {o: float(logits[t] - log_total) for o, t in firsts.items()},
           "prompt_tokens": len(prompt), "cached": keep, "output_tokens": 0, "finish_reason": "stop"}  # fmt: skip


def _tokens(llama: Any, rendered: Any) -> list[int]:
    """The rendered chat prompt's tokens, refused when the context cannot hold them."""
    prompt = llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
    n_ctx = llama.n_ctx()
    if len(prompt) >= n_ctx:
        raise ConfigurationError(
            f"the prompt has {len(prompt)} tokens but the chat model's context holds {n_ctx}: "
            "give it fewer or shorter passages, or a larger n_ctx"
        )
    return list(prompt)


def cached_prefix(llama: Any, prompt: list[int]) -> int:
    """How many tokens at the start of `prompt` llama.cpp still holds from the previous call (not evaluated again)."""
    held = list(llama.input_ids[: llama.n_tokens])
    n = 0
    for a, b in zip(held, prompt, strict=False):
        if a != b:
            break
        n += 1
    return max(0, n - 1) if n == len(prompt) else n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m assistant.models.worker", description="the chat model's process")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-ctx", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="model process: %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the parent, which ends us
    serve(Connection(args.fd), args.model, args.n_ctx)
    os._exit(0)  # the parent is gone: nothing to flush, and freeing the model by hand only delays the exit


if __name__ == "__main__":
    main()
