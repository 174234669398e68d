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

.PHONY: install run test lint typecheck cfn-lint validate pytest pytest-pinned-sdk bench clean build lock

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install it (e.g. pyenv install 3.12) and retry"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[geo,dev]'
	@touch $@

TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed

# SAM CLI pins its own boto3 and cfn-lint: it lives in a virtualenv of its own.
$(TOOLS_STAMP):
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q -U pip
	$(TOOLS)/bin/python -m pip install -q "aws-sam-cli==1.170.*"
	@touch $@

# `sam build` without Docker needs the runtime's python3.12 itself first on PATH (not a pyenv shim).
# The layers are built by layers/sputnik/Makefile; .aws-sam/runtime gets the SDK the layers leave to
# the runtime (layers/sputnik/lock/runtime.txt), for measuring the functions as Lambda runs them,
# and .aws-sam/sdk the pinned SDK as a layer would ship it, for what bundling it would cost
# (bench/build_bench.py).
PYTHON_BIN = $(shell dirname "$$($(PYTHON) -c 'import sys; print(sys.executable)')")
build: $(TOOLS_STAMP) bundle
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install it (e.g. pyenv install 3.12) and retry"; exit 1; }
	PATH="$(PYTHON_BIN):$$PATH" $(TOOLS)/bin/sam build --parallel --template template.yaml
	rm -rf .aws-sam/runtime .aws-sam/sdk
	PATH="$(PYTHON_BIN):$$PATH" $(MAKE) --no-print-directory -C layers/sputnik runtime \
		ARTIFACTS_DIR="$(CURDIR)/.aws-sam/runtime"
	PATH="$(PYTHON_BIN):$$PATH" $(MAKE) --no-print-directory -C layers/sputnik sdk \
		ARTIFACTS_DIR="$(CURDIR)/.aws-sam/sdk"

# The layers' pins (layers/sputnik/lock/), from pyproject.toml for Lambda's platform;
# `make lock UPGRADE=--upgrade` moves every pin to the newest release.
LOCK_DIR := layers/sputnik/lock
UV_COMPILE = $(TOOLS)/bin/uv pip compile -q $(UPGRADE) pyproject.toml --python-version 3.12 \
	--python-platform x86_64-manylinux_2_34 --only-binary :all: --annotation-style line \
	--custom-compile-command "make lock"
lock: $(TOOLS_STAMP)
	$(TOOLS)/bin/python -m pip install -q "uv==0.13.*"
	$(UV_COMPILE) --extra geometry --extra imagery -o $(LOCK_DIR)/imagery.txt
	$(UV_COMPILE) --extra geometry -c $(LOCK_DIR)/imagery.txt -o $(LOCK_DIR)/geometry.txt
	$(UV_COMPILE) -c $(LOCK_DIR)/imagery.txt -o $(LOCK_DIR)/base.txt

run: $(STAMP) bundle
	$(BIN)/sputnik local --port $(PORT) --aws-port $(AWS_PORT)

test: lint typecheck cfn-lint validate pytest pytest-pinned-sdk

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/sputnik/sputnik tools/sputnik_tools
	@for f in functions/*/app.py; do $(BIN)/mypy --no-error-summary $$f || exit 1; done
	$(BIN)/mypy infra bench

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

# What CloudFormation will be handed: `sam validate --lint`, then the SAM transform done offline as
# `sam package` hands it over, cfn-lint on that (cycles created by the transform show only there),
# and the template tests (dependency graph, operations).
validate: $(STAMP) $(TOOLS_STAMP)
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam validate --lint --template template.yaml
	$(BIN)/python -m infra.transform template.yaml build/template.transformed.json
	$(BIN)/cfn-lint build/template.transformed.json
	$(BIN)/pytest -q -p no:cacheprovider tests/test_template.py

# The functions import the Lambda runtime's boto3, not the newer one pinned here (the layers leave the
# SDK out): the suite runs with that SDK first on the path (layers/sputnik/lock/runtime.txt), and the
# tools' own tests (CLI, local stack, settings, sample events) once more with the pinned one, which a
# developer's machine uses. Twice the whole suite would pass the six minutes its tests may take.
RUNTIME_SDK := .runtime-sdk
$(RUNTIME_SDK)/.installed: layers/sputnik/lock/runtime.txt $(STAMP)
	rm -rf $(RUNTIME_SDK)
	$(BIN)/python -m pip install -q --no-deps --target $(RUNTIME_SDK) -r $<
	@touch $@

# Contract fuzzing's depth: cases per operation and mode, and a fixed seed (`random` for a new one).
# Searched on the code before its four 500s were fixed (tests/test_contract_fuzz.py, BENCHMARKS.md,
# Tests): at 25 cases seed 26 finds both causes in three of the four operations, 4 in two; none of
# seeds 0-29, nor five at 60 cases, finds the fourth (a one-row preview of a two-band expression):
# tests/test_cog_hostile.py keeps each as a plain test. Seed 26 also found a fifth (GET /cog/statistics
# with a percentile p of 2**57 + 1, now a 422 in tests/test_cog_limits.py), so it is the default.
# PYTEST_ARGS go to both pytest runs (e.g. --durations=30).
FUZZ_EXAMPLES ?= 25
FUZZ_SEED ?= 26
PYTEST_ARGS ?=
# Three workers on two cores: a quarter of the suite's time is waiting (browser frames, Step Functions
# polling, GDAL timeouts, `sputnik local`'s start), which a third worker fills (BENCHMARKS.md, Tests).
WORKERS ?= 3
pytest: $(RUNTIME_SDK)/.installed $(STAMP) bundle chromium
	PYTHONPATH=$(CURDIR)/$(RUNTIME_SDK) SPUTNIK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SPUTNIK_FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder -q $(PYTEST_ARGS)

# Not again: how each function starts on Lambda (Lambda has the runtime's SDK, tested above), nor
# every stage's sample event (the same library code); the ingest and HTTP samples run through
# `sputnik invoke` with this SDK too. Two workers: its four modules leave a third one starting a
# stack for a few tests (28 s against 39).
PINNED_ONLY := not test_on_lambda and (not test_every_event_runs or IngestFunction or ProjectsFunction)
pytest-pinned-sdk: $(STAMP) bundle
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -q $(PYTEST_ARGS) -k "$(PINNED_ONLY)" \
		tests/test_cli.py tests/test_local_stack.py tests/test_settings.py tests/test_events.py

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
	$(BIN)/python -m sputnik_tools.openapi template.yaml $(BUNDLE)/openapi.json

# The browser tests drive Debian's chromium (never a browser that Playwright downloads).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) $(RUNTIME_SDK) .pytest_cache .mypy_cache .ruff_cache .aws-sam $(VIEWER)/node_modules $(BUNDLE)
