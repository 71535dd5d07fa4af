# Two commands on a fresh machine: `make run` and `make test`. Both bootstrap .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= examples/quickstart/gatepass.toml

.PHONY: run test lint types unit bench clean demo

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/gatepass serve --config $(CONFIG) --with-demo

demo: $(STAMP)
	$(BIN)/gatepass demo --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q --durations=10 --cov=gatepass --cov-branch --cov-report=term:skip-covered --cov-fail-under=95

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python bench/issuance.py
	$(BIN)/python bench/engines.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/approvals.py

clean:
	rm -rf $(VENV) .gatepass .mypy_cache .ruff_cache
