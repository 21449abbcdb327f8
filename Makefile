# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv/ if needed and install every distribution of the repo in editable mode.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
PROJECTS := registry $(sort $(dir $(wildcard packages/*/pyproject.toml adapters/*/pyproject.toml))) \
            $(sort $(dir $(wildcard integration_tests/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: install demo test lint

$(STAMP): constraints.txt Makefile $(wildcard registry/pyproject.toml packages/*/pyproject.toml adapters/*/pyproject.toml integration_tests/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) $(foreach p,$(PROJECTS),-e $(p)) -e "packages/pladis[test]"
	touch $@

install: $(STAMP)

demo: install
	$(VENV)/bin/pladis compare "a red circle left of a blue square" --out outputs/demo

test: install
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check .
