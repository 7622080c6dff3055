# Every target sets up what it needs on a fresh machine: a virtualenv with the package and
# its extras (torch pinned to the CPU build), and Azurite from npm for the storage tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offline models carry their weights; nothing may reach for a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# PyPI's Linux torch wheels are CUDA builds (about 25 nvidia-* wheels, several GB) for models that
# run on the CPU. PyTorch's CPU index serves the same release as 2.13.0+cpu, which pip prefers to
# PyPI's 2.13.0; on macOS and Windows PyPI's wheels are CPU builds already. Where that index cannot
# be reached (an offline mirror), pip's own configured index is used instead.
UNAME_S ?= $(shell uname -s)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_OPTION := $(if $(filter Linux,$(UNAME_S)),--extra-index-url $(TORCH_CPU_INDEX))
DEMO_DATA ?= .imgsearch/demo
DEMO_QUERY ?= a cat

.PHONY: setup demo lint test test-fast test-live mutation bench lock clean

setup: $(STAMP)

# The install runs with -qq: setuptools warns on every editable install of a flat layout
# ("Editable installation ... folders may take precedence"), which is how this checkout is meant
# to be used; errors still show. A --extra-index-url given here replaces pip's configured ones.

$(STAMP): pyproject.toml package.json package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11 or newer is needed, " + sys.version.split()[0] + " is $(PYTHON); run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@torch_index="$(TORCH_INDEX_OPTION)"; \
	if [ -n "$$torch_index" ] && ! $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=15)' "$(TORCH_CPU_INDEX)" 2>/dev/null; then \
		echo "note: PyTorch's CPU index $(TORCH_CPU_INDEX) cannot be reached; torch comes from pip's configured index"; \
		torch_index=""; \
	fi; \
	echo "$(BIN)/python -m pip install -qq $$torch_index -e \".[local,dev]\""; \
	$(BIN)/python -m pip install -qq $$torch_index -e ".[local,dev]"
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

# Index the sample images with the embedded offline model and numpy index, then answer a text query.
demo: setup
	IMGSEARCH_DATA_DIR=$(DEMO_DATA) $(BIN)/imgsearch index samples
	IMGSEARCH_DATA_DIR=$(DEMO_DATA) $(BIN)/imgsearch search "$(DEMO_QUERY)" -k 5

# Lint, formatting, types (indexer/) and the layering contracts (pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Three workers on two cores: most tests wait on servers and subprocesses, not on the CPU.
test: lint
	$(BIN)/python -m pytest -n 3

# The fast tier: no Azurite, no offline models, no servers (about half a minute).
test-fast: setup
	$(BIN)/python -m pytest tests/unit

# The live tier: tests/live against the deployment `azd env get-values` shows (after `azd up`);
# each test is skipped, saying how to get one, when there is none. `make test` never runs them.
test-live: setup
	$(BIN)/python -m pytest -m live tests/live

# Mutation testing of the core modules with the fast tier (not part of `make test`; a few
# minutes). The score per module is printed at the end; see [tool.mutmut] in pyproject.toml.
mutation: setup
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python tests/mutation_report.py

# The deployed Function app's lock (functions/requirements.txt): exact versions and hashes of what
# pyproject.toml asks for, the package's dependencies and its [functions] extra, resolved on PyPI
# (no local mirror: every platform's files are hashed) for the Python the app runs on, 3.11
# (infra/app/function.bicep). Pins still allowed are kept; LOCK_OPTIONS=--upgrade moves them all.
# Needs the network; run it after changing a dependency (a test checks the lock matches).
# pip-tools lives in a virtualenv of its own: it needs a newer packaging than checkov allows.
LOCK_TOOLS := $(VENV)/lock-tools
lock: setup
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: make lock needs the Python the Function app runs on, 3.11; run make VENV=... PYTHON=python3.11 lock")'
	test -x $(LOCK_TOOLS)/bin/pip-compile || ($(BIN)/python -m venv $(LOCK_TOOLS) && \
		$(LOCK_TOOLS)/bin/python -m pip install --quiet 'pip-tools>=7.5,<8')
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet $(LOCK_OPTIONS) --extra functions --generate-hashes \
		--strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--output-file functions/requirements.txt pyproject.toml

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .imgsearch .pytest_cache mutants
