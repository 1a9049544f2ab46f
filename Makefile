# The two commands: `make run` (the shop on SQLite with demo data, dev gateway on; PORT=8000 by default) and `make test` (everything CI checks).
# `make lock` rewrites the lock files in requirements/ from pyproject.toml (README "Dependencies").
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run PORT=8080` serves on another port
PORT ?= 8000
# pytest-xdist processes; each gets its own PostgreSQL database and Redis database
TEST_WORKERS ?= auto
# `make lock` keeps every pin it can; `make lock UPGRADE=httpx` (or "httpx stripe") moves those packages to
# their newest allowed versions, `make lock UPGRADE=all` every package
UPGRADE ?=
LOCK := $(BIN)/uv pip compile --quiet --universal --generate-hashes --python-version 3.11 --custom-compile-command "make lock"
ifeq ($(UPGRADE),all)
LOCK += --upgrade
else ifneq ($(UPGRADE),)
LOCK += $(addprefix --upgrade-package ,$(UPGRADE))
endif

.PHONY: setup run test lint lock clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kaquan needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

# Exactly the lock's versions, each checked against its hash; then kaquan itself, built by the lock's setuptools
$(STAMP): pyproject.toml requirements/lock.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

# requirements/lock.txt: what `make test` installs (runtime, dev, build); requirements/runtime.txt: the runtime
# alone, at the same versions (container images); requirements/uv.txt: the tool that writes them
$(BIN)/uv: requirements/uv.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/uv.txt
	@touch $@

lock: $(BIN)/uv
	$(LOCK) requirements/uv.in -o requirements/uv.txt
	$(LOCK) pyproject.toml --extra dev requirements/build.in -o requirements/lock.txt
	$(LOCK) pyproject.toml requirements/build.in --constraints requirements/lock.txt -o requirements/runtime.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
