PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

.env: | $(VENV)/.installed
	$(BIN)/python -m project.envfile

## Start console + gateway + monitor on http://127.0.0.1:$(PORT), under uvicorn (uvloop, httptools,
## websockets): its gateway serves about twice daphne's req/s at c=32 (docs/performance.md);
## ASGI_SERVER=daphne (or `manage.py serve --server daphne`) runs the same app under daphne
run: $(VENV)/.installed .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py serve --host 127.0.0.1 --port $(PORT)

## Install and run the whole test suite
test: $(VENV)/.installed
	$(BIN)/python -m pytest

## Lint: ruff (checks and the formatter's --check), mypy (strict for the engine and the adapters),
## import-linter's layer contracts
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
