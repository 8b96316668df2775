# One target per habit; CI (.ci/run) calls `make test`, as the README says.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test lint types bench clean

$(BIN)/mpmd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/mpmd

run: setup
	$(BIN)/mpmd start
	@$(BIN)/mpmd status

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check mpmd mpm_hook tests benchmarks

types: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/hook_cost.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/e2e_latency.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/redact.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
