# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv/ if needed and install every distribution of the repo in editable mode (the test-only
# sample plugin of integration_tests/ included).
# For your own environment (docs/install.md): `make wheels` builds dist/*.whl of every user-facing
# distribution; `make install-env [EXTRAS=sd15,onnx] [EDITABLE=1]` installs them into the Python on PATH.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
PROJECTS := registry $(sort $(dir $(wildcard packages/*/pyproject.toml adapters/*/pyproject.toml))) \
            $(sort $(dir $(wildcard integration_tests/*/pyproject.toml)))
STAMP := $(VENV)/.installed
# What users install: every distribution but the test-only ones under integration_tests/.
USER_PROJECTS := ./registry $(sort $(dir $(wildcard packages/*/pyproject.toml adapters/*/pyproject.toml)))
DIST := dist
# install-env: the Python on PATH (the active environment), the extras of `pladis` to install, editable or not.
ENV_PYTHON ?= $(shell command -v python 2>/dev/null || command -v python3)
EXTRAS ?=
EDITABLE ?=
comma := ,
ENV_EXTRAS := $(if $(strip $(EXTRAS)),[$(strip $(EXTRAS))])
# Editable: every adapter, pladis-onnx only with an onnx extra (it pulls ONNX Runtime in).
EDITABLE_PROJECTS := ./registry $(sort $(dir $(wildcard adapters/*/pyproject.toml))) \
                     $(if $(filter onnx onnx-gpu,$(subst $(comma), ,$(EXTRAS))),packages/pladis-onnx/)

.PHONY: install demo test test-vision install-vision lint wheels install-env

# .venv-vision/: a second environment for the metrics that need torchvision (hps, imagereward, fid's
# Inception features), which imports only beside torch 2.14.1 (constraints-vision.txt over constraints.txt).
VENV_VISION := .venv-vision
PYV := $(VENV_VISION)/bin/python
PIPV := $(PYV) -m pip install --disable-pip-version-check -q -c $(VENV_VISION)/constraints.txt
VISION_STAMP := $(VENV_VISION)/.installed

$(STAMP): constraints.txt Makefile $(wildcard registry/pyproject.toml packages/*/pyproject.toml adapters/*/pyproject.toml integration_tests/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) $(foreach p,$(PROJECTS),-e $(p)) -e "packages/pladis[test]"
	touch $@

install: $(STAMP)

demo: install
	$(VENV)/bin/pladis compare "a red circle left of a blue square" --out outputs/demo

test: install $(VISION_STAMP)
	$(PY) -m pytest -q
	$(PYV) -m pytest -q packages/pladis-eval/tests_vision

# fairscale (image-reward's pin) ships an sdist whose setup.py needs pkg_resources: setuptools < 81,
# without build isolation. image-reward --no-deps: its timm==0.6.13 clashes with open-clip-torch's
# timm>=1.0.17; the extra test-vision lists what it imports.
$(VISION_STAMP): constraints.txt constraints-vision.txt Makefile packages/pladis-eval/pyproject.toml
	test -x $(PYV) || $(PYTHON) -m venv $(VENV_VISION)
	grep -v -E '^(torch|triton)==' constraints.txt > $(VENV_VISION)/constraints.txt
	cat constraints-vision.txt >> $(VENV_VISION)/constraints.txt
	$(PIPV) torch torchvision "setuptools<81" wheel
	$(PIPV) --no-build-isolation fairscale
	$(PIPV) --no-deps image-reward
	$(PIPV) -e registry -e adapters/generic -e packages/pladis -e "packages/pladis-eval[test-vision]"
	touch $@

install-vision: $(VISION_STAMP)

test-vision: $(VISION_STAMP)
	$(PYV) -m pytest -q packages/pladis-eval/tests_vision

lint: install
	$(PY) -m ruff check .

# One wheel per user-facing distribution in dist/ (the toy model is package data of pladis's wheel).
wheels:
	rm -rf $(DIST) && mkdir -p $(DIST)
	$(PYTHON) -m pip wheel --disable-pip-version-check -q --no-deps -w $(DIST) $(USER_PROJECTS)
	@ls $(DIST)

install-env:
ifeq ($(strip $(EDITABLE)),1)
	$(ENV_PYTHON) -m pip install --disable-pip-version-check $(foreach p,$(EDITABLE_PROJECTS),-e $(p)) \
	    -e "packages/pladis$(ENV_EXTRAS)"
else
	$(MAKE) wheels PYTHON=$(ENV_PYTHON)
	$(ENV_PYTHON) -m pip install --disable-pip-version-check --find-links $(DIST) --upgrade \
	    --upgrade-strategy only-if-needed "pladis$(ENV_EXTRAS)"
endif
