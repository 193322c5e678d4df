# OpenHR: `make run` starts the whole mesh on embedded defaults; `make test` runs the suites.
# Everything missing (venv, Python packages, buf, generated code) is installed on the way.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY_VERSION ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
GEN := gen
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/$(GEN)/python
export HF_HUB_OFFLINE := 1

PROTOS := $(shell find protos -name '*.proto')

.PHONY: help install protos lint run test bench token migrate clean

help:
	@echo "make run    - install what is missing, start the whole mesh, print the edge URL"
	@echo "make test   - install what is missing, run every test suite"
	@echo "make bench  - run the benchmarks (results in bench/results/)"
	@echo "make token USER=you@example.com - print a local access token (local mode only)"
	@echo "make protos - regenerate code from protos/ ; make lint - buf lint + ruff"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PY_VERSION) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

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

# buf breaking: the contracts of this commit against its parent (nothing to compare on the first).
lint: protos
	$(BUF) lint
	if git rev-parse -q --verify HEAD~1 >/dev/null; then $(BUF) breaking --against '.git#ref=HEAD~1'; fi
	$(VENV)/bin/ruff check .

migrate: protos
	$(PY) -m deploy.local.stack migrate

run: protos
	$(PY) -m deploy.local.stack run

# USER is also the login name in the environment: only a USER given on the command line counts.
token: protos
	@if [ "$(origin USER)" != "command line" ]; then echo "usage: make token USER=you@example.com" >&2; exit 2; fi
	@$(PY) -m services.identity.devtoken "$(USER)"

test: protos
	$(BUF) lint
	$(PY) -m pytest

bench: protos
	$(PY) -m bench

clean:
	rm -rf $(GEN) .pytest_cache
