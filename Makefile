# lakeforge: `make demo` runs the main job end to end, `make test` the whole suite.
# Both install everything first (a .venv from requirements.lock, Java 17+ if missing).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed

export SPARK_LOCAL_IP := 127.0.0.1
# Never fall back to MLflow's implicit ./mlflow.db, never phone home.
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: help setup java lint test test-unit test-spark test-e2e demo bench lock clean

help:
	@echo "make demo   install everything, then run the main job end to end on bundled real data"
	@echo "make test   install everything, then run linters and the whole test suite"
	@echo "make setup  create .venv from requirements.lock and check for Java 17+"
	@echo "make bench  run the benchmarks of bench/ (results in bench/results/)"
	@echo "make lock   re-resolve requirements.lock from pyproject.toml"

setup: $(STAMP) java

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else \
		f"lakeforge needs Python 3.11, found {v[0]}.{v[1]} at {sys.executable}; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

java:
	@scripts/ensure_java.sh

lint: setup
	$(BIN)/ruff check src tests bench jobs dags features
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: setup lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

test-unit: setup
	$(BIN)/pytest -q tests/unit

test-spark: setup
	$(BIN)/pytest -q tests/spark

test-e2e: setup
	$(BIN)/pytest -q tests/e2e

demo: setup
	$(BIN)/python jobs/demo.py
	$(BIN)/lakeforge tables
	$(BIN)/lakeforge history raw.weather --limit 3
	$(BIN)/lakeforge sql "SELECT origin, count(*) AS hours, round(avg(temp), 1) AS avg_temp_f, \
		round(max(wind_speed), 1) AS max_wind_mph FROM raw.weather GROUP BY origin ORDER BY origin"

bench: setup
	$(BIN)/python -m bench

lock:
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf lake mlruns mlartifacts mlflow.db spark-warehouse .pytest_cache .mypy_cache .ruff_cache
