# The project's commands. `make install` sets up .venv and builds the index; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install deps browser index test test-fast gate lint bench clean

install: deps browser index

deps:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch is pinned to the local CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	@echo "installing the project: llama-cpp-python compiles from source (about 4 minutes on 2 cores)"
	@( while sleep 60; do echo "  ... still installing ($$(date +%T))"; done ) & ticker=$$!; \
	$(PIP) install --quiet -e ".[st,dev]"; status=$$?; kill $$ticker; exit $$status

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
