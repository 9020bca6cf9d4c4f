# MBRS Studio: set-up and everyday commands. Each target builds the virtual
# environment from scratch when it is missing, so they work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: app test test-all bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

app: $(VENV)/.installed        ## start the desktop app on the shipped default model
	$(VENV)/bin/mbrs-gui

test: $(VENV)/.installed       ## the unit suite (slow tests excluded), one worker per core
	$(PY) -m pytest -q -m "not slow" -n auto --dist loadfile

test-all: $(VENV)/.installed   ## everything, slow tests included
	$(PY) -m pytest -q -n auto --dist loadfile

bench: $(VENV)/.installed      ## speed benchmarks (not tests)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
