# Two commands on a fresh machine with Python 3.11: `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck check debian-tools clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Independent DICOM peers for tests and benchmarks (Debian packages; root on these machines).
debian-tools:
	@if ! command -v storescu >/dev/null || ! command -v Orthanc >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk orthanc >/dev/null; \
	fi

up: $(STAMP)
	$(BIN)/pacs up

test: $(STAMP) debian-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP) debian-tools
	$(BIN)/python bench/ingest_vs_orthanc.py

clean:
	rm -rf $(VENV) data
