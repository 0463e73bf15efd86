# The project's commands. `make install` sets up .venv and builds the index; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install deps llama smoke browser index test test-fast gate lint bench clean

install: deps browser index smoke

deps:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch is pinned to the local CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(MAKE) --no-print-directory llama
	@echo "installing the project and its pinned dependencies"
	@( while sleep 60; do echo "  ... still installing ($$(date +%T))"; done ) & ticker=$$!; \
	$(PIP) install --quiet -e ".[st,dev]"; status=$$?; kill $$ticker; exit $$status

# llama.cpp for this machine's CPU without its AMX kernels. With -march=native, llama.cpp compiles its AMX
# matrix kernels on CPUs that report AMX (Intel Sapphire Rapids and newer), and on many VMs those crash at the
# first generation: a general protection fault at `ldtilecfg` in libggml-cpu.so (upstream llama.cpp PR #26954:
# the tile permission is requested on the main thread only and the tile configuration can be left invalid on
# the stack; ollama #17006 and #17249 removed their AMX build for it). So the build keeps every vector
# extension of the machine (AVX2, AVX-512, VNNI, ...) and turns off each AMX extension the compiler knows
# (gcc gives an explicit -mno-* precedence over -march=native). Revisit when #26954 is released in a
# llama-cpp-python version: then drop LLAMA_CFLAGS. A build already installed is kept when it is the pinned
# version without AMX (`python -m assistant.models.build --check`), else rebuilt from source, never from pip's
# wheel cache; `make llama FORCE=1` always rebuilds (a .venv copied from another CPU, a broken build).
LLAMA_CFLAGS := $(strip $(foreach f,amx-tile amx-int8 amx-bf16 amx-fp16 amx-complex amx-avx512 amx-tf32 amx-transpose amx-movrs amx-fp8,\
	$(shell echo 'int main(void){return 0;}' | $${CC:-cc} -x c -mno-$(f) -Werror -o /dev/null - >/dev/null 2>&1 && echo -mno-$(f))))

llama:
	@if [ -z "$(FORCE)" ] && $(PY) -m assistant.models.build --check >/dev/null 2>&1; then \
		echo "llama.cpp: the installed llama-cpp-python is the pinned one, without AMX (FORCE=1 rebuilds it)"; else \
		echo "building llama-cpp-python for this CPU without AMX ($(LLAMA_CFLAGS)): about 4 minutes on 2 cores"; \
		CMAKE_ARGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(LLAMA_CFLAGS)' -DCMAKE_CXX_FLAGS='$(LLAMA_CFLAGS)'" \
		$(PIP) install --quiet --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python llama-cpp-python==0.3.36 \
		&& $(PIP) install --quiet llama-cpp-python==0.3.36; fi

# One short generation in a child process: a crash or a wrong answer says what happened and how to fix it,
# here rather than at a user's first question.
smoke:
	$(PY) -m assistant.models.build --smoke

# Headless Chromium (Debian's) for the web page tests; Playwright's own browser download cannot work offline.
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	else echo "no /usr/bin/chromium: the browser tests will be skipped (install Debian's chromium as root)"; fi

index:
	$(VENV)/bin/assistant index

test:
	$(PY) -m pytest

test-fast:
	$(PY) -m pytest -m "not slow"

# The quality gate: eval suites on the real model against quality_gate.toml; exit 1 on a regression.
gate:
	$(VENV)/bin/assistant gate --out bench/out/gate.json

lint:
	$(VENV)/bin/ruff check assistant tests bench
	$(VENV)/bin/ruff format --check assistant tests bench
	$(VENV)/bin/mypy assistant

# The benchmark (about an hour: 56 min on 2026-11-29 with 8 of its 9 parts): bench/out/results.json, docs/bench/*.png and tables. QUICK=1: a few minutes, small sizes.
bench:
	$(PY) -c "import matplotlib" 2>/dev/null || $(PIP) install --quiet -e ".[bench]"
	$(PY) bench/run.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) bench/out .pytest_cache
