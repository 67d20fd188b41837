# newsmon — every target bootstraps its own virtualenv (.venv) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint format bench eval container-check clean

# setup.py builds the compiled classifier (classifier/compiled.pyx) in place: a change to it
# reinstalls, so the tests never run a stale build.
$(STAMP): pyproject.toml setup.py classifier/compiled.pyx
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "newsmon needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: start every role in one process (embedded Redis unless NEWSMON_REDIS_URL is set)
run: $(STAMP)
	$(BIN)/newsmon serve

## test: the whole suite; REDIS_URL=redis://host:port/db runs it against that server instead
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected"; fi; exit $$rc

## lint: ruff (lint + format check) and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: throughput figures against a baseline measured in the same run
bench: $(STAMP)
	$(BIN)/python -m bench

## eval: precision/recall/F1 of the classifier rules on the labelled dev set
eval: $(STAMP)
	$(BIN)/newsmon eval tests/data/dev.jsonl

## container-check: build the image with podman and start it against the Redis at 127.0.0.1:6379 (db 14), no feeds
container-check:
	../shared/tools/container-check --smoke 'env NEWSMON_REDIS_URL=redis://127.0.0.1:6379/14 NEWSMON_API_HOST=127.0.0.1 NEWSMON_FEEDS_FILE=/nonexistent newsmon serve'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	rm -f classifier/compiled.c classifier/compiled.*.so
