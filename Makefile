# The project's commands. `make install` sets up .venv and builds the index; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install deps index test test-fast lint bench clean

install: deps index

deps:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch is pinned to the local CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[st,dev]"

index:
	$(VENV)/bin/assistant index

test:
	$(PY) -m pytest

test-fast:
	$(PY) -m pytest -m "not slow"

lint:
	$(VENV)/bin/ruff check assistant tests bench
	$(VENV)/bin/ruff format --check assistant tests bench
	$(VENV)/bin/mypy assistant

bench:
	$(PY) bench/bench_retrieval.py

clean:
	rm -rf $(VENV) bench/out .pytest_cache
