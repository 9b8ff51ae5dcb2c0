# Barbacana — the commands the README names. Each one sets up what it needs.
UV ?= uv
export UV_PYTHON_PREFERENCE = only-system

.PHONY: setup up test lint audit bench

setup:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked

## Set up and run the reference system (auth on 8000, orders on 8001).
up: setup
	$(UV) run barbacana up

## Set up and run the whole test suite.
test: setup
	$(UV) run pytest -q

lint: setup
	$(UV) run ruff check src tests bench
	$(UV) run mypy

## Security gates: bandit, pip-audit (strict), ruff, mypy.
audit: setup
	bash .ci/gates

bench: setup
	$(UV) run python bench/tokens.py
	$(UV) run python bench/http.py
