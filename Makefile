# The two commands a new user needs (see README): `make dev` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint typecheck unit testbin clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fast,bench]'
	touch $(STAMP)

## Command 1: a local 3-node cluster with the embedded defaults (Ctrl-C stops it).
dev: $(STAMP)
	$(BIN)/raftpod-sidecar dev-cluster --nodes 3 --data-dir ./data

## Command 2: the whole suite — venv, Go test binaries (cached), lint, types, tests.
test: $(STAMP) testbin lint typecheck
	$(BIN)/pytest -q

testbin:
	scripts/testbin build

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Fast inner loop: everything but the Kubernetes control-plane tests.
unit: $(STAMP)
	$(BIN)/pytest -q -m 'not kube'

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
