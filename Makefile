# Two entry points on a fresh machine: `make demo` and `make test`.
# Both install from the committed lock file (uv.lock) with uv, so a fresh clone gets the
# exact versions CI ran. Refresh the lock on purpose with `make lock` (see docs/development.md).
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test faults lint typecheck pytest install install-dev servers clean lock bench

# uv itself, pinned, in a small virtualenv of its own (never in the project's .venv)
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q uv==$(UV_VERSION)

## install: the runtime dependencies from uv.lock (keeps dev tools already installed)
install: | $(UV)
	$(UV) sync --frozen --inexact -q

## install-dev: exactly the lock's dev environment (the lock guard test checks it)
install-dev: | $(UV)
	$(UV) sync --frozen --extra dev -q

## lock: re-resolve uv.lock from pyproject.toml (on purpose; commit the result)
lock: | $(UV)
	$(UV) lock --upgrade

## demo: create .venv, install from the lock, run the demo on the embedded SQLite store
demo: install
	$(BIN)/python examples/demo.py

## test: install dev tools from the lock, then ruff, mypy (strict) and pytest
test: install-dev servers lint typecheck pytest

## faults: the whole fault suite (tests/faults); its table goes to faults-table.md
faults: install-dev servers
	FAULTS_TABLE=faults-table.md $(BIN)/pytest -q -m faults tests/faults

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
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache demo.db*

# bench: its own virtualenv (bench/.venv) with the peers from the lock, a private
# redis-server and PostgreSQL, one table.
## bench: Conveyor vs Celery, Dramatiq, RQ, Huey, Taskiq; BENCH_ARGS="--quick" for a short run
bench: | $(UV)
	UV_PROJECT_ENVIRONMENT=bench/.venv $(UV) sync --frozen --extra bench -q
	BENCH_VIA="make bench" bench/.venv/bin/python -m bench --install-redis $(BENCH_ARGS)
