# Every target installs uv with pip when it is missing, then syncs the locked workspace,
# so a fresh machine needs nothing but Python 3.11 and pip.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen --no-sync

.PHONY: help setup run demo test pytest lint typecheck fmt bench drills docs

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install uv if needed and sync the locked environment
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --all-packages --frozen --quiet

run: setup ## start the server on SQLite (./handrail.db) with a demo organisation and its keys
	$(RUN) handrail serve --demo

demo: setup ## no server: an agent asks for approvals and you review at the terminal
	$(RUN) handrail demo

test: setup lint pytest ## lint, type-check and run every test

pytest: setup ## run the tests only
	$(RUN) pytest

lint: setup ## ruff lint and format check, mypy strict
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

typecheck: setup ## mypy strict on every package's src/
	$(RUN) mypy

fmt: setup ## format and fix what ruff can
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: setup ## run the benchmarks, print one table, write docs/benchmarks.md and its charts
	$(RUN) python benchmarks/run.py

drills: setup ## fault drills (kill -9, PostgreSQL restart, webhooks, flood, bad input); docs/reliability.md
	$(RUN) python -m drills

docs: setup ## regenerate docs/lifecycle.md from the transition table
	$(RUN) python scripts/render_lifecycle.py
