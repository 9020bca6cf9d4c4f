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

# one worker per core and one thread per worker (torch, OpenBLAS and the subprocesses tests start): threads
# beyond the cores only fight over them (the unit suite on 2 cores: 5 min 27 s with the default 2 threads a
# worker in CI, 4 min 40 s with 1, AMD EPYC)
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadfile

test: $(VENV)/.installed       ## the unit suite (slow tests excluded), one worker per core
	$(PYTEST) -m "not slow"

test-all: $(VENV)/.installed   ## everything, slow tests included
	$(PYTEST)

bench: $(VENV)/.installed      ## speed benchmarks (not tests)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
