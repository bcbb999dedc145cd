# Every target bootstraps .venv on its own: a fresh machine needs nothing but python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: install serve test test-fast lint format bench vgg clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## serve: install, import the shipped catalogue (models/) into the BentoML store, run the service
serve: $(STAMP)
	$(VENV)/bin/clipmorph styles import models/
	$(VENV)/bin/clipmorph styles list
	@if [ -f service.py ]; then $(VENV)/bin/bentoml serve service.py --host $(HOST) --port $(PORT); \
	else echo "The HTTP service lands with the service issue; use 'clipmorph stylize' meanwhile."; fi

## test: install, then the whole suite (unit + end-to-end over real media)
test: $(STAMP)
	$(PY) -m pytest -ra

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP)
	$(PY) -m pytest -ra -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

vgg: $(STAMP)
	$(VENV)/bin/clipmorph vgg fetch

bench: $(STAMP)
	@if [ -d bench ]; then $(PY) -m bench; else echo "benchmarks land with the performance issue"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
