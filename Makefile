# The two commands: `make run` (the shop on SQLite with demo data, dev gateway on; PORT=8000 by default) and `make test` (everything CI checks).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run PORT=8080` serves on another port
PORT ?= 8000
# pytest-xdist processes; each gets its own PostgreSQL database and Redis database
TEST_WORKERS ?= auto

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kaquan needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(STAMP)

run: setup
	$(BIN)/kaquan demo
	KAQUAN_DEV_GATEWAY=1 KAQUAN_GATEWAY_SIMULATORS=1 KAQUAN_DEV_CONTACT_CODES=1 $(BIN)/kaquan serve --port $(PORT)

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup  # a group (the cluster topology) stays on one worker

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
