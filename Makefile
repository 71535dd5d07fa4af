# Two commands on a fresh machine: `make run` and `make test`. Both bootstrap .venv from pyproject.toml.
# `make help` lists every target.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The broker's configuration; its ports are in it (see the README's "Other ports"):
#   make run CONFIG=my.toml   and then   export GATEPASS_CONFIG=my.toml   for the CLI.
CONFIG ?= examples/quickstart/gatepass.toml

.PHONY: help run test lint types unit bench clean demo

help:
	@echo "make run      start the broker and the demo API (CONFIG=$(CONFIG))"
	@echo "make demo     walk the demo agent through a task on the running broker"
	@echo "make test     lint, types and the whole suite (see the README's Running the tests)"
	@echo "make unit     the unit tests only: no services, no sockets, seconds"
	@echo "make lint     ruff, ruff format, mypy --strict and the import contracts"
	@echo "make bench    the benchmarks under bench/"
	@echo "make clean    remove .venv and the quickstart's state in .gatepass/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The quickstart broker with the demo API, on the ports CONFIG names, and beside
# them the example MCP server (examples/mcp/server.py on 127.0.0.1:8402), stopped
# when the broker stops.
run: $(STAMP)
	@$(BIN)/python examples/mcp/server.py & mcp=$$!; \
	trap 'kill $$mcp 2>/dev/null' EXIT INT TERM; \
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

# Fast feedback while editing: tests/unit needs no PostgreSQL, Redis or sshd.
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# One line per bench; each prints its aims' table (PASS/MISS) and writes
# bench/results/<name>.json. issuance.py installs its peer (npm) itself.
# QUICK=1: scale.py with 100,000 leases. FULL=1: replicas.py with 1,000 trials
# (about 5 minutes; by default 200 trials, to keep make bench under 15 minutes).
bench: $(STAMP)
	$(BIN)/python bench/issuance.py
	$(BIN)/python bench/federation.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/engines.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/upstream_clients.py
	$(BIN)/python bench/scale.py $(if $(QUICK),--quick)
	$(BIN)/python bench/replicas.py $(if $(FULL),,--quick)
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/approvals.py
	$(BIN)/python bench/evidence.py
	$(BIN)/python bench/delegation.py
	$(BIN)/python bench/ssf.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/signals.py

clean:
	rm -rf $(VENV) .gatepass .mypy_cache .ruff_cache
