# Two commands do everything on a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
INSTALLED := $(VENV)/.installed

.PHONY: help setup java postgres odbc azurite chromium screenshots jars dagster-home demo dev test test-all properties bench bench-smoke crash check lint format typecheck lock clean

help:
	@echo "make demo   set up, seed the embedded source, materialise the graph, print a summary"
	@echo "make dev    the Dagster UI (dagster dev) on the same DAGSTER_HOME"
	@echo "make test   set up and run the fast tier (about 13 minutes on 2 cores)"
	@echo "make test-all  make test's tests, the slow suites and bench-smoke (what CI runs)"
	@echo "make check  ruff and mypy"
	@echo "make bench  the benchmark suite (about an hour); make bench-smoke: its smallest sizes"
	@echo "make crash  kill runs at every point inside each layer's writes; re-run; compare"
	@echo "make properties  the property tests with their full budget, the whole graph included"
	@echo "make lock   re-resolve requirements.lock after editing pyproject.toml"

# PyPI has PySpark only as a 450 MB source archive. Its wheel is built once into WHEELS and
# installed from there: uv would otherwise keep a new unpacked copy of the archive in its cache
# on every fresh clone (a CI machine's disk filled up that way).
WHEELS ?= $(HOME)/.cache/spotify-lakehouse/wheels
PYSPARK_VERSION := $(shell sed -n 's/^pyspark==//p' requirements.lock)
PYSPARK_WHEEL := $(WHEELS)/pyspark-$(PYSPARK_VERSION)-py2.py3-none-any.whl

# Python packages, pinned by requirements.lock; re-installed only when it or pyproject changes.
$(INSTALLED): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: Python 3.11 is required"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@test -f $(PYSPARK_WHEEL) || { echo "building PySpark $(PYSPARK_VERSION)'s wheel once into $(WHEELS)"; \
	  $(BIN)/python -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir \
	    pyspark==$(PYSPARK_VERSION) -w $(WHEELS); }
	$(BIN)/uv pip install -q --python $(BIN)/python --find-links $(WHEELS) -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@$(BIN)/uv cache prune -q
	@touch $@

# Spark needs Java 17+: installed with apt when missing and we may, otherwise a clear error.
java:
	@if ! java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	  else echo "error: Spark needs Java 17+: install it, e.g. sudo apt-get install openjdk-17-jre-headless"; exit 1; fi; \
	fi

# The tests start a throw-away PostgreSQL server of their own: they need its binaries.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "error: the tests need PostgreSQL's server: sudo apt-get install postgresql"; exit 1; fi; \
	fi

# Delta Lake's jars from Maven Central, once, into DELTA_JARS_DIR (later runs need no network).
jars: $(INSTALLED)
	@$(BIN)/spotify-lakehouse fetch-jars

# $(DAGSTER_HOME)/dagster.yaml from ./dagster.yaml when there is none (storage in PostgreSQL when
# DAGSTER_POSTGRES_URL is set); `spotify-lakehouse dagster-home` rewrites it after a change.
dagster-home: $(INSTALLED)
	@$(BIN)/spotify-lakehouse dagster-home --if-missing

setup: $(INSTALLED) java jars dagster-home

demo: setup
	$(BIN)/spotify-lakehouse demo
	$(BIN)/python -m spotify_assets_tests.spotify_demo

dev: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Azure SQL's driver (mssql-python, from PyPI) loads Microsoft's ODBC driver, which needs libltdl.
odbc:
	@if ! ldconfig -p | grep -q 'libltdl.so.7'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq libltdl7 >/dev/null; \
	  else echo "error: Azure SQL's driver needs libltdl: sudo apt-get install libltdl7"; exit 1; fi; \
	fi

# Azurite (the Azure Storage emulator) for the storage layer's tests, pinned by its npm lock;
# installed again only when the lock's content changed (a restored CI cache is kept).
AZURITE_DIR := .ci/azurite
azurite:
	@if ! cmp -s $(AZURITE_DIR)/package-lock.json $(AZURITE_DIR)/node_modules/.installed-lock; then \
	  command -v npm >/dev/null || { echo "error: the tests need Node.js and npm for Azurite: sudo apt-get install nodejs npm"; exit 1; }; \
	  npm ci --prefix $(AZURITE_DIR) --no-audit --no-fund --loglevel=error && \
	  cp $(AZURITE_DIR)/package-lock.json $(AZURITE_DIR)/node_modules/.installed-lock; \
	fi

# The UI test drives Debian's headless Chromium through playwright (it never downloads a browser).
chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "error: the UI test needs Chromium: sudo apt-get install chromium"; exit 1; fi; \
	fi

# Two tiers. make test: every library-level proof and one end-to-end scenario of the whole graph
# (within 15 minutes on 2 cores). make test-all (what .ci/run runs): the same tests and the slow
# ones (`slow` marker: Spark Connect, the Databricks double, the UI in Chromium, killed runs, the
# bad-input corpus end to end, the whole graph's property), where a skip fails the run, then
# bench-smoke. PYTEST_ARGS adds pytest options to either.
# TEST_WORKERS=N shares each tier's modules among N processes (pytest-xdist), a module's tests
# in order on one of them. On 2 cores the default is one process: the tests keep Spark busy, and
# two JVMs gained 3% (make test's pytest: 698 s against 718 s).
TEST_WORKERS ?= 0
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
test: setup postgres odbc azurite
	$(BIN)/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

test-all: setup postgres odbc azurite chromium
	$(BIN)/pytest $(XDIST) --no-skips $(PYTEST_ARGS)
	$(MAKE) --no-print-directory bench-smoke

# docs/asset-graph.png, as the UI test sees it (dagster dev, a backfill, headless Chromium).
screenshots: setup chromium
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q spotify_assets_tests/test_ui.py

# The benchmark suite: a table, benchmarks/results/suite.json and the plots docs/benchmarks.md shows.
# bench-smoke runs it at its smallest sizes into a scratch folder (CI, to keep it working).
BENCH_ARGS ?=
BENCH_SMOKE_RESULTS ?= $(or $(TMPDIR),/tmp)/spotify-lakehouse-bench-smoke
bench: setup postgres
	$(BIN)/python -m benchmarks.suite $(BENCH_ARGS)

# The property tests with their full budget, the whole graph's included (25 examples each;
# a whole-graph example is several runs of the graph: allow hours). PROPERTY_EXAMPLES=6 lowers
# the budget. make test runs a few, library-level; make test-all the whole graph's explicit example.
PROPERTY_EXAMPLES ?= 25
properties: setup
	HYPOTHESIS_PROFILE=properties PROPERTY_EXAMPLES=$(PROPERTY_EXAMPLES) \
	  $(BIN)/pytest -q -s spotify_assets_tests/test_properties.py

# Every kill point of the crash harness (the tests try a sample): 50 points, about 2-3 minutes
# each on 2 cores. CRASH_ARGS="--per-layer 7" tries 7 of each layer (21) in about an hour.
CRASH_ARGS ?=
crash: setup
	$(BIN)/python -m spotify_assets_tests.crash_harness $(CRASH_ARGS)

# bench-smoke keeps the suite working and measures nothing: its JVMs take the tests' Spark
# defaults (no code generation or adaptive planning, which cost more than they save on kilobytes).
bench-smoke: setup postgres
	SPARK_CONF_DIR=$(CURDIR)/spotify_assets_tests/spark_conf \
	  $(BIN)/python -m benchmarks.suite --smoke --results $(BENCH_SMOKE_RESULTS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(INSTALLED)
	$(BIN)/mypy

check: lint typecheck

lock: $(INSTALLED)
	$(BIN)/uv pip compile -q --python-version 3.11 --extra orchestrator --extra dev pyproject.toml -o requirements.lock

clean:
	rm -rf .data .dagster_home/storage .dagster_home/history .dagster_home/schedules .pytest_cache
