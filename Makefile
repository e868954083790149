# The two commands a newcomer needs: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# pytest-xdist workers for `make test`: most tests wait on sockets, processes and timers,
# so four workers keep two cores busy (tests/conftest.py says how the tests are spread).
# PYTEST_WORKERS=0 runs them in this process, one after another.
PYTEST_WORKERS ?= 4

# Bytecode caches are written even where the environment says not to: without them
# every xdist worker compiles and assertion-rewrites the whole suite again on each run.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test demo lint typecheck pytest test-browser venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

test: lint typecheck pytest

# Only the console's browser tests (headless Chromium; `make test` runs them too).
test-browser: $(STAMP)
	$(BIN)/pytest tests/console/test_browser.py

demo: $(STAMP)
	$(BIN)/sscl-daemon demo $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
