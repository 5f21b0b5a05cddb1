# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest install install-dev servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## demo: create .venv, install, run the demo on the embedded SQLite store
demo: install
	$(BIN)/python examples/demo.py

## test: create .venv, install dev tools, then ruff, mypy (strict) and pytest
test: install-dev servers lint typecheck pytest

## servers: install redis-server and PostgreSQL from Debian packages when missing
servers:
	bash scripts/ensure-servers

lint: install-dev
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo.db*

# bench: its own virtualenv (bench/.venv) with the peers, a private redis-server, one table.
BENCH_VENV := bench/.venv
BENCH_PY := $(BENCH_VENV)/bin/python

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q -e '.[bench]' || $(BENCH_PY) bench/install_peers.py
	touch $@

.PHONY: bench
## bench: Conveyor vs Celery, Dramatiq, RQ, Huey, Taskiq; BENCH_ARGS="--quick" for a short run
bench: $(BENCH_VENV)/.installed
	BENCH_VIA="make bench" $(BENCH_PY) -m bench --install-redis $(BENCH_ARGS)
