# Two commands on a fresh machine with Python 3.11: `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The built OHIF viewer, published on npm as @ohif/app: pinned, unpacked once into VIEWER_DIR.
OHIF_VERSION := 3.13.2
VIEWER_DIR := .viewer
VIEWER_STAMP := $(VIEWER_DIR)/.installed-$(OHIF_VERSION)
# Azurite, Microsoft's Azure Storage emulator (npm), where tests keep an Azure Blob tier.
AZURITE_VERSION := 3.35.0
AZURITE_DIR := .azurite
AZURITE_STAMP := $(AZURITE_DIR)/.installed-$(AZURITE_VERSION)

.PHONY: up test lint typecheck check debian-tools viewer azurite clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Independent DICOM peers for tests and benchmarks (Debian packages; root on these machines; Orthanc's
# DICOMweb plugin for the query benchmark; dicom3tools' dciodvfy checks de-identified copies),
# and chromium, which drives the viewer test headless; rsyslog (with its OpenSSL driver) is the
# audit record repository of the ATNA export tests.
debian-tools:
	@if ! command -v storescu >/dev/null || ! command -v Orthanc >/dev/null \
		|| ! command -v chromium >/dev/null || ! command -v dciodvfy >/dev/null \
		|| ! test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so \
		|| ! command -v rsyslogd >/dev/null || ! dpkg -s rsyslog-openssl >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq dcmtk orthanc orthanc-dicomweb chromium dicom3tools \
			rsyslog rsyslog-openssl >/dev/null; \
	fi

# `npm pack` fetches only the published tarball (the app is prebuilt: no dependencies, no
# node_modules, no build); the API serves VIEWER_DIR/dist at /viewer, the .gz copies made here
# to browsers that accept gzip.
viewer: $(VIEWER_STAMP)

$(VIEWER_STAMP):
	@command -v npm >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	rm -rf $(VIEWER_DIR) && mkdir -p $(VIEWER_DIR)/download
	cd $(VIEWER_DIR)/download && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null
	tar -xzf $(VIEWER_DIR)/download/ohif-app-$(OHIF_VERSION).tgz -C $(VIEWER_DIR) \
		--strip-components=1 package/dist
	rm -rf $(VIEWER_DIR)/download
	test -f $(VIEWER_DIR)/dist/index.html
	find $(VIEWER_DIR)/dist -type f -size +4k \( -name '*.js' -o -name '*.css' -o -name '*.wasm' \) \
		-exec gzip -k -6 {} +
	touch $@

azurite: $(AZURITE_STAMP)

$(AZURITE_STAMP):
	@command -v npm >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	rm -rf $(AZURITE_DIR) && mkdir -p $(AZURITE_DIR)
	cd $(AZURITE_DIR) && npm install --silent --no-audit --no-fund azurite@$(AZURITE_VERSION) >/dev/null
	test -x $(AZURITE_DIR)/node_modules/.bin/azurite-blob
	touch $@

up: $(STAMP) viewer
	$(BIN)/pacs up

test: $(STAMP) debian-tools viewer azurite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: $(STAMP) debian-tools
	$(BIN)/python bench/ingest_vs_orthanc.py
	$(BIN)/python bench/query_vs_orthanc.py --million

clean:
	rm -rf $(VENV) data $(VIEWER_DIR) $(AZURITE_DIR)
