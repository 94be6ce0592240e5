# jpegtrace: `make demo` sets everything up and analyses a collaged image; `make test` runs every test (CI),
# `make check` the fast ones (the inner loop).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo check test bench clean

$(BIN)/jpegtrace: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/jpegtrace

demo: install
	$(BIN)/python scripts/demo.py --out demo
	$(BIN)/jpegtrace analyze demo/clean.png demo/fake.png --maps demo

check: install
	$(BIN)/python -m pytest -q -m "not slow"

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) demo
