# One target per habit; CI (.ci/run) calls `make test`, as the README says.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The Claude Code CLI the conformance suite (tests/claude/) runs against, pinned; installed
# into an ignored folder. MPMD_CLAUDE=/path/to/claude runs the suite against another one.
CLAUDE_CODE_VERSION := 2.1.328
CLAUDE_CODE_DIR     := .claude-code

.PHONY: setup run test test-fast lint types bench clean claude-code

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

# The edit-test loop: the unit tests only, each property test at most 20 examples
# (tests.utils.examples); `make test` runs everything, in full.
test-fast: setup
	MPMD_TEST_FAST=1 $(BIN)/pytest -q -x -m unit

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
	$(BIN)/python benchmarks/claude_session.py
	$(BIN)/python benchmarks/transcripts.py
	$(BIN)/python benchmarks/notify.py
	$(BIN)/python benchmarks/needs_you.py

# Only the platform package's native binary is used, so npm's install scripts are skipped.
claude-code: $(CLAUDE_CODE_DIR)/.installed-$(CLAUDE_CODE_VERSION)

$(CLAUDE_CODE_DIR)/.installed-$(CLAUDE_CODE_VERSION):
	mkdir -p $(CLAUDE_CODE_DIR)
	cd $(CLAUDE_CODE_DIR) && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
		--no-save @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
