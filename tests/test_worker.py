"""The chat model's own process: the llama.cpp build has no AMX, a crash of the model costs only the call in
flight (the model is started again; the server, its page and API stay up), and the process boundary is cheap.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from assistant.errors import ModelCrashedError
from assistant.models import build, model_process
from assistant.models.llama import LlamaCppChat

from conftest import free_port, make_assistant

# --- the build --------------------------------------------------------------------------------------


def test_the_installed_llama_cpp_build_has_no_amx():
    """AMX kernels crash at the first generation on many VMs (llama.cpp PR #26954): `make llama` leaves them out."""
    assert build.check() == []


def test_amx_in_the_system_info_is_noticed():
    info = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 |"
    assert build.amx_features(info) == ["AMX_INT8"]
    assert build.amx_features(info.replace("AMX_INT8 = 1", "AMX_INT8 = 0")) == []


def test_amx_instructions_are_found_in_machine_code(tmp_path: Path):
    """The check reads the library's code too, so a build that hides AMX from its system info is still caught."""
    source = tmp_path / "tiles.c"
    source.write_text('void configure(const void *c) { __asm__ volatile("ldtilecfg (%0)" :: "r"(c)); }\n')
    library = tmp_path / "libggml-tiles.so"
    made = subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"no assembler for AMX here: {made.stderr.decode()[:200]}")
    assert build.amx_instructions(library) == ["ldtilecfg"]


# --- the model's process ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> LlamaCppChat:
    chat = LlamaCppChat(max_tokens=300)
    chat._model().ready()
    return chat


@pytest.mark.slow
def test_a_model_process_killed_mid_answer_costs_that_call_and_the_next_is_answered(model: LlamaCppChat):
    process = model._model()
    first_pid = process.pid
    assert first_pid is not None and first_pid != os.getpid()
    stream = model.stream([HumanMessage("从1数到200，用逗号分隔。")])
    assert next(stream).content  # generating now
    os.kill(first_pid, signal.SIGSEGV)
    with pytest.raises(ModelCrashedError) as crashed:
        for _ in stream:
            pass
    assert crashed.value.retry_after >= 1
    assert "SIGSEGV" in str(crashed.value) and "ask again" in str(crashed.value)
    answer = model.invoke([HumanMessage("中国的首都是哪座城市？请用一句中文回答。")])
    assert "北京" in str(answer.content)
    assert process.pid not in (None, first_pid) and process.restarts == 1


@pytest.mark.slow
def test_a_stream_left_unread_is_stopped_and_the_process_serves_the_next_call(model: LlamaCppChat):
    stream = model.stream([HumanMessage("从1数到300，用逗号分隔。")])
    next(stream)
    pid = model._model().pid
    stream.close()  # the caller went away: the child stops generating and is drained
    answer = model.invoke([HumanMessage("2 + 3 = ? Reply with the number only.")])
    assert "5" in str(answer.content) and model._model().pid == pid


@pytest.mark.slow
def test_helper_contexts_share_the_weights_and_keep_their_own_cache(model: LlamaCppChat):
    """A second context (the helper calls') answers like the first, and the answer context's prompt cache
    survives a helper call in between."""
    helper = model.model_copy(update={"instance": 1})
    question = [HumanMessage("Say hello in one short sentence.")]
    first = model.invoke(question)
    assert str(helper.invoke(question).content) == str(first.content)
    again = model.invoke(question)
    cached = (again.usage_metadata or {}).get("input_token_details", {}).get("cache_read", 0)
    assert cached >= (again.usage_metadata or {}).get("input_tokens", 0) - 1


@pytest.mark.slow
def test_the_model_s_choice_between_options_is_read_from_its_logits_without_generating(model: LlamaCppChat):
    """`choose`: the log-probability of each option as the reply's first token (the P(True) signal of a
    yes/no check), with true statements more likely "是" than false ones, and answers unchanged after it."""
    question = [HumanMessage("Say hello in one short sentence.")]
    before = str(model.invoke(question).content)

    def margin(claim: str) -> float:
        logprobs = model.choose([HumanMessage(f"“{claim}”对吗？只回答“是”或“否”。")], ["是", "否"])
        assert all(lp <= 0 for lp in logprobs.values()) and sum(math.exp(lp) for lp in logprobs.values()) <= 1.0001
        return logprobs["是"] - logprobs["否"]

    assert margin("北京是中国的首都") > margin("上海是中国的首都")
    assert margin("2+3=5") > margin("2+3=6")
    assert str(model.invoke(question).content) == before


@pytest.mark.slow
def test_a_request_the_model_fails_on_is_that_call_s_error_and_the_process_lives(model: LlamaCppChat):
    """llama-cpp-python raises plain ValueError/RuntimeError: the call gets a ModelUnavailableError, the process
    (and its loaded model) stays."""
    from assistant.errors import ModelUnavailableError

    process = model._model()
    pid = process.ready() and process.pid
    with process.lock, pytest.raises(ModelUnavailableError, match="the chat model failed"):
        list(process.complete({"op": "complete", "context": 0, "threads": (1, 1)}, 30.0))  # no messages
    assert process.pid == pid
    assert "5" in str(model.invoke([HumanMessage("2 + 3 = ? Reply with the number only.")]).content)


@pytest.mark.slow
def test_a_model_that_cannot_load_says_why(tmp_path: Path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    process = model_process.ModelProcess(broken, 512)
    with pytest.raises(Exception, match="GGUF|cannot load|ended while loading"):
        process.ready()
    assert process.pid is None


# --- through the server ---------------------------------------------------------------------------


def _model_child(server_pid: int) -> int | None:
    """The pid of the server's `assistant.models.worker` child, if one runs."""
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if "assistant.models.worker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return int(pid)
    return None


@pytest.mark.slow
def test_the_server_stays_up_when_its_model_dies_mid_answer(article_corpus: Path, tmp_path: Path):
    make_assistant(article_corpus, tmp_path / "index").build_index()
    port = free_port()
    env = {**os.environ, "ASSISTANT_CORPUS": str(article_corpus), "ASSISTANT_INDEX_DIR": str(tmp_path / "index"),
           "ASSISTANT_EMBEDDINGS": "fake", "ASSISTANT_LLM": "llama-cpp"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while _status(f"{url}/readyz") != 200 or _model_child(server.pid) is None:
            assert server.poll() is None and time.time() < deadline, "the server did not become ready"
            time.sleep(0.5)
        crashed_pid = _model_child(server.pid)
        events = _ask_stream_killing(url, "阶跃星辰的 CTO 是谁？", crashed_pid)
        error = next(data for kind, data in events if kind == "error")
        assert error["status"] == 503 and error["retry_after"] >= 1 and "restarted" in error["error"]
        assert server.poll() is None and _status(f"{url}/healthz") == 200
        quoted = _post(f"{url}/api/ask", {"question": "阶跃星辰的 CTO 是谁？", "fast": True})  # needs no model
        assert not quoted["refused"] and quoted["citations"]
        answer = _post(f"{url}/api/ask", {"question": "阶跃星辰的 CTO 是谁？"})  # waits for the new model
        assert not answer["refused"] and answer["citations"]
        restarted = _model_child(server.pid)
        assert restarted not in (None, crashed_pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    deadline = time.time() + 10  # the model's process ends when its socket closes, however the server ended
    while Path(f"/proc/{restarted}").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{crashed_pid}").exists() and not Path(f"/proc/{restarted}").exists()


def _ask_stream_killing(url: str, question: str, pid: int | None) -> list[tuple[str, dict]]:
    """POST /api/ask/stream; at the first draft token, SIGSEGV `pid`; the events read."""
    request = urllib.request.Request(
        f"{url}/api/ask/stream", json.dumps({"question": question}).encode(), {"content-type": "application/json"}
    )
    events, kind = [], ""
    with urllib.request.urlopen(request, timeout=120) as response:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
                if kind == "token" and pid is not None and sum(k == "token" for k, _ in events) == 1:
                    os.kill(pid, signal.SIGSEGV)
    return events


def _status(url: str) -> int:
    try:
        return int(urllib.request.urlopen(url, timeout=10).status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=300).read())


def test_model_processes_are_one_per_file_and_context_size(tmp_path: Path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"x")
    assert model_process.process_for(path, 512) is model_process.process_for(path, 512)
    assert model_process.process_for(path, 512) is not model_process.process_for(path, 1024)
    assert model_process.describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
