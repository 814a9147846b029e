# Two entry points for a fresh machine with python3 and pip:
#   make demo   - virtual env + edgenas (and matplotlib for the plots) + `edgenas search --target rpi4` on the
#                 embedded synthetic data
#   make test   - virtual env + edgenas with the test and export extras + the default (fast) test suite
# Each target installs only what it needs; a later `make test` adds the export extras to the demo's env.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-slow bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[plot]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,export]"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/edgenas search --target rpi4 --out runs/demo
	$(BIN)/edgenas profile runs/demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/search_throughput.py
	$(BIN)/python benchmarks/data_throughput.py
	$(BIN)/python benchmarks/bench_fidelity.py

clean:
	rm -rf $(VENV) runs .pytest_cache
