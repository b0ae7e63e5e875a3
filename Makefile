# The README's two commands: `make run` and `make test`. Everything else here serves them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned to the CPU wheel these machines carry; a GPU operator installs a CUDA build first
# (see README), and `pip install -e .` then keeps it.
TORCH_SPEC ?= torch==2.13.0

export GRIN_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/grin_test
export GRIN_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test install lint typecheck services

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@bash scripts/run-local.sh

services:
	@bash scripts/test-services.sh

test: $(STAMP) services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy
