# make run: set up (if needed) and start the service on :8000. make test: set up and run every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1

.PHONY: run test lint unit e2e browser bench bench-compare bench-backends bench-rebuild bench-scale soak eval faults clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch alone first, pinned, so the CPU build is chosen (a plain torch pulls a CUDA build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m deployments.launch serve_config.yaml

# The side-by-side benchmark (40 minutes warm on 2 cores on 2026-12-03; a cold .bench-cache/ first embeds ~95,000 documents in-process, 36 minutes on 2026-12-03, then indexes them); it
# rewrites the README's Performance table. ARGS="--docs 20000": 17 minutes from a cold cache (2026-12-05). Never part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# Git revisions side by side, alternated in one run (REVS="main ."; "." is this checkout as it is):
# search latency, searches/s and CPU per search by process. About 2 minutes per revision per round
# (ARGS="--rounds N", default 3). Never part of `make test`.
bench-compare: $(STAMP)
	$(BIN)/python -m bench.compare $(REVS) $(ARGS)

# The embedding backends' speed side by side (onnx, onnx-int8; a few minutes). Never part of `make test`.
bench-backends: $(STAMP)
	$(BIN)/python -m bench.backends $(ARGS)

# A broken index rebuilt from the kept vectors, the upgrade of a format-1 folder, and the cost of the
# kept copy, against chromadb's own insert rate in the same run (ARGS="--documents N", default
# 20,000: about 3 minutes on 2 cores). Never part of `make test`.
bench-rebuild: $(STAMP)
	$(BIN)/python -m bench.rebuild $(ARGS)

# The growth table: tenants of 2,000, 10,000 and 100,000 documents built through the HTTP API (their own
# vectors), then search latency by mode, recall, memory, disk, start, kill -9 recovery and snapshot
# for each (ARGS="--sizes 2000,10000,100000,1000000" adds the million: about an hour more to build, once).
# Built tenants are cached in .bench-cache/scale/. Never part of `make test`.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale $(ARGS)

# 16 clients mixing embed, search and delete for 5 minutes against a fresh service (about 6 minutes
# in all); prints a table, fails on any 5xx, lost document or memory growth. Never part of `make test`.
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(ARGS)

# Retrieval quality (about 7 minutes on 2 cores): SciFact through the HTTP API in every search mode,
# exact search and the STS Benchmark check; rewrites the README's table, fails on a missed target.
# ARGS="path/to/beir-folder" evaluates another BEIR data set. Never part of `make test`.
eval: $(STAMP)
	$(BIN)/python -m bench.eval $(ARGS)

# The fault tests' long version: three kill -9 crashes of the whole service per run instead of one,
# and the module RUNS times in a row (about 6 minutes a run), stopping at the first failure. Never part of `make test`.
RUNS ?= 10
faults: $(STAMP)
	for run in $$(seq $(RUNS)); do echo "fault run $$run of $(RUNS)"; FAULT_CRASHES=3 $(BIN)/python -m pytest -x tests/e2e/test_faults.py || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

e2e: $(STAMP) browser
	$(BIN)/python -m pytest -m e2e

# Debian's Chromium for the console's browser tests (as root, or with sudo that asks no password).
# Where it cannot be installed, those tests skip and say why; under CI (REQUIRE_BROWSER=1) they fail.
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; \
	} || echo "could not install chromium: the console's browser tests will be skipped"

test: lint $(STAMP) browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache .bench-cache
