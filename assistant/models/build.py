"""The llama.cpp build installed here: does it carry AMX kernels, and does it generate?

llama.cpp compiled with `-march=native` on a CPU that reports AMX (Intel Sapphire Rapids and newer) uses
its AMX matrix kernels, and on many VMs those fault at the first generation (a general protection fault
at `ldtilecfg` in libggml-cpu.so; upstream llama.cpp PR #26954). The Makefile builds without them;
this module is how the Makefile and the tests tell, and how an install proves it can answer:

    python -m assistant.models.build --check   # exit 1 when the installed build would use AMX
    python -m assistant.models.build --smoke   # one short generation in a child process
    python -m assistant.models.build --speed   # prompt and generated tokens/s of this build on this machine

A crash in the smoke test kills only the child; the parent says what happened and how to fix it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REBUILD = "rebuild llama.cpp for this machine without AMX: `make llama FORCE=1` (or `rm -rf .venv && make install`)"
SMOKE_TIMEOUT_S = 600.0  # the first run also assembles the 1.1 GB model file from its 22 parts
AMX_INSTRUCTIONS = ("ldtilecfg", "tdpbssd", "tdpbusd", "tdpbf16ps", "tileloadd")


def system_info() -> str:
    """llama.cpp's own account of the features it was compiled with ("AVX2 = 1 | ... | AMX_INT8 = 1 | ...")."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace")


def amx_features(info: str) -> list[str]:
    """The AMX features a system-info line reports as compiled in."""
    return re.findall(r"\b(AMX\w*) = 1\b", info)


def cpu_libraries() -> list[Path]:
    """llama.cpp's CPU backend libraries inside the installed llama_cpp package."""
    import llama_cpp

    package = Path(llama_cpp.__file__).parent
    return sorted(p for p in package.rglob("libggml*.so*") if p.is_file())


def amx_instructions(library: Path) -> list[str]:
    """AMX instructions found in `library`'s machine code (empty when objdump is missing)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return []
    code = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True)
    return sorted({word for word in AMX_INSTRUCTIONS if re.search(rf"\s{word}\s", code.stdout)})


def check() -> list[str]:
    """What in the installed build would run AMX code, or is not the pinned version: empty when all is well."""
    from importlib.metadata import version

    from assistant.models.model_file import LLAMA_PIP

    installed, pinned = version("llama-cpp-python"), LLAMA_PIP.split("==")[1]
    found = [f"llama-cpp-python {installed} is installed, not {pinned}"] if installed != pinned else []
    found += [f"system info reports {name}" for name in amx_features(system_info())]
    for library in cpu_libraries():
        found += [f"{library.name} holds `{word}`" for word in amx_instructions(library)]
    return found


def generate() -> dict[str, float | str]:
    """Load the packaged model and answer a one-number question (run in the child)."""
    import llama_cpp

    from assistant.models import model_file

    path = model_file.packaged_model_path()
    llama = llama_cpp.Llama(model_path=str(path), n_ctx=1024, verbose=False)
    prompt = "<|im_start|>user\nWhat is 2 + 3? Reply with the number only.<|im_end|>\n<|im_start|>assistant\n"
    started = time.perf_counter()
    result: Any = llama.create_completion(prompt, max_tokens=8, temperature=0.0)
    return {"text": result["choices"][0]["text"].strip(), "seconds": time.perf_counter() - started}


def speed(prompt_tokens: int = 800, generated: int = 128) -> dict[str, float]:
    """Prompt and generation tokens/s of the packaged model in this process (the figures DESIGN.md asks for)."""
    import llama_cpp

    from assistant.models import model_file

    llama = llama_cpp.Llama(model_path=str(model_file.packaged_model_path()), n_ctx=4096, use_mmap=False, verbose=False)
    words = " ".join(f"passage {i} says the figure is {i * 7}." for i in range(400))
    tokens = llama.tokenize(words.encode())[:prompt_tokens]
    started, made, prompt_s = time.perf_counter(), 0, 0.0
    for _ in llama.generate(tokens, temp=0.0):  # the first token comes once the prompt is evaluated
        made += 1
        if made == 1:
            prompt_s, started = time.perf_counter() - started, time.perf_counter()
        if made > generated:
            break
    generate_s, made = time.perf_counter() - started, made - 1
    return {
        "prompt_tokens": len(tokens),
        "prompt_tokens_per_s": round(len(tokens) / prompt_s, 1),
        "generated_tokens": made,
        "generated_tokens_per_s": round(made / generate_s, 1),
    }


def smoke() -> int:
    """Generate once in a child process; 0 when it answered, else a message with the fix and 1."""
    found = check()
    if found:
        print(f"llama.cpp was built with AMX kernels ({'; '.join(found)}), which crash on many VMs: {REBUILD}")
        return 1
    command = [sys.executable, "-P", "-m", "assistant.models.build", "--generate"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"the chat model did not answer a one-line question in {SMOKE_TIMEOUT_S:.0f} s: is the machine busy?")
        return 1
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        print(f"the chat model crashed ({name}) at its first generation: {REBUILD}\n{done.stderr[-2000:]}")
        return 1
    if done.returncode != 0:
        print(f"the chat model could not answer:\n{done.stderr[-2000:]}")
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "5" not in str(result["text"]):
        print(f"the chat model answered {result['text']!r} to 'What is 2 + 3?': the build is broken; {REBUILD}")
        return 1
    print(f"chat model: answered in {float(result['seconds']):.1f} s; llama.cpp built without AMX")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.models.build", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 when the installed build would use AMX")
    action.add_argument("--smoke", action="store_true", help="one short generation in a child process")
    action.add_argument("--speed", action="store_true", help="prompt and generated tokens/s, as JSON")
    action.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)  # the smoke test's child
    args = parser.parse_args(argv)
    if args.check:
        found = check()
        print("\n".join(found) or "no AMX in the installed llama.cpp build")
        return 1 if found else 0
    if args.generate or args.speed:
        print(json.dumps(generate() if args.generate else speed()))
        return 0
    return smoke()


if __name__ == "__main__":
    sys.exit(main())
