# rotator — every command a developer or CI needs. `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: chart-crds help venv unit lint fmt e2e test demo bench reliability controlplane testbed testbed-down clean image

help:
	@echo "make demo          run one rotation end to end on an embedded local stack"
	@echo "make test          everything CI runs: lint, unit, e2e"
	@echo "make unit | lint | e2e | bench"
	@echo "make image        build the operator image with buildah (cached; prints its name)"
	@echo "make testbed       start the control plane + emulators in the background (.testbed/env)"
	@echo "make testbed-down  stop them"

# The virtualenv is rebuilt whenever the dependency set changes.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,sandbox]"
	touch $@

venv: $(STAMP)

unit: $(STAMP)
	$(BIN)/pytest tests $(PYTEST_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check operator tests e2e bench reliability
	$(BIN)/ruff format --check operator tests e2e bench reliability
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format operator tests e2e bench reliability
	$(BIN)/ruff check --fix operator tests e2e bench reliability

# The Go-built kube-apiserver and etcd, cached by version outside the clone.
controlplane:
	e2e/controlplane/build.sh

# build.sh builds once and names the binaries' folder; e2e and testbed pass that name on.
e2e: $(STAMP)
	dir="$$(e2e/controlplane/build.sh)" && \
	  ROTATOR_CONTROLPLANE_DIR="$$dir" $(BIN)/pytest e2e -p no:cacheprovider $(PYTEST_FLAGS)

test: lint unit e2e

# The operator image (buildah, no daemon), cached by a hash of what goes into it; on a machine
# without Docker Hub it builds on a local Debian base (docs/image.md). e2e/test_image.py runs it.
image:
	image/build.sh

# A private testbed (control plane) for the demo, stopped again whatever the demo's outcome.
demo: $(STAMP)
	dir="$$(e2e/controlplane/build.sh)" && \
	  ROTATOR_CONTROLPLANE_DIR="$$dir" $(BIN)/python -m e2e.testbed up --dir .testbed/demo && \
	  { set -a; . .testbed/demo/env; set +a; $(BIN)/rotator demo; rc=$$?; \
	    $(BIN)/python -m e2e.testbed down --dir .testbed/demo; exit $$rc; }

bench: $(STAMP) controlplane
	$(BIN)/python -m bench

# The chaos suite and soak (docs/reliability.md): 30+ minutes, so not part of `make test`.
# Fails on any loss/leak/orphan/expiry/double/duplicate figure or a missed volume target.
RELIABILITY_FLAGS ?= --minutes 30 --seed 1
reliability: $(STAMP)
	dir="$$(e2e/controlplane/build.sh)" && \
	  ROTATOR_CONTROLPLANE_DIR="$$dir" $(BIN)/python -m reliability --full $(RELIABILITY_FLAGS)

testbed: $(STAMP)
	dir="$$(e2e/controlplane/build.sh)" && \
	  ROTATOR_CONTROLPLANE_DIR="$$dir" $(BIN)/python -m e2e.testbed up

testbed-down: $(STAMP)
	$(BIN)/python -m e2e.testbed down

clean:
	rm -rf $(VENV) .testbed .mypy_cache .ruff_cache .pytest_cache

# The chart's CRD templates and README are generated from crds/ and values.yaml;
# tests/test_chart.py fails when they are stale.
chart-crds: $(STAMP)
	$(BIN)/python charts/generate.py
