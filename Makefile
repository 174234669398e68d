# sputnik: `make run` serves the local stack, `make test` runs every check. Both install what they need.
SHELL := /bin/bash
PORT ?= 8000
AWS_PORT ?= 5000
VENV := .venv
BIN := $(VENV)/bin
# Python 3.12 is the Lambda runtime: take python3.12 from PATH (pyenv's shim honours .python-version).
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck cfn-lint pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install it (e.g. pyenv install 3.12) and retry"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[geo,dev]'
	@touch $@

run: $(STAMP) bundle
	$(BIN)/sputnik local --port $(PORT) --aws-port $(AWS_PORT)

test: lint typecheck cfn-lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/sputnik/sputnik
	@for f in functions/*/app.py; do $(BIN)/mypy --no-error-summary $$f || exit 1; done

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

pytest: $(STAMP) bundle chromium
	$(BIN)/pytest -n 2 --dist loadfile -q

# The tile benchmark compares with stock titiler.application: installed for it only (not a dependency),
# at the version of the titiler.core sputnik uses, so that pip changes nothing else.
bench: $(STAMP)
	$(BIN)/python -m pip install -q "titiler.application==$$($(BIN)/python -c \
		'from importlib.metadata import version; print(version("titiler.core"))')" uvicorn
	$(BIN)/python -m bench

# The map viewer and the API docs (Root function): npm packages from the lock, bundled into the function's
# package with the combined OpenAPI document of every function's app.
VIEWER := viewer
BUNDLE := functions/root/static
.PHONY: node-deps bundle chromium

node-deps: $(VIEWER)/node_modules/.package-lock.json

$(VIEWER)/node_modules/.package-lock.json: $(VIEWER)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 or later (e.g. apt-get install nodejs npm)"; exit 1; }
	cd $(VIEWER) && npm ci

bundle: node-deps $(STAMP)
	cd $(VIEWER) && npm run --silent build -- ../$(BUNDLE)
	$(BIN)/python -m sputnik.local.openapi template.yaml $(BUNDLE)/openapi.json

# The browser tests drive Debian's chromium (never a browser that Playwright downloads).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(VIEWER)/node_modules $(BUNDLE)
