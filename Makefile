# Every target builds its own .venv, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,tiled,pyhyper,virtual]'
	touch $(STAMP)

# Writes the demo with the command line, summarises it through intake and
# saves the newest RSoXS run's mean frame as demo-data/mean_frame.png.
demo: $(STAMP)
	$(VENV)/bin/intake-resonance demo demo-data --force
	$(PY) examples/demo_summary.py catalogs/demo.yaml -o demo-data/mean_frame.png

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/bench_tiled.py
	$(PY) benchmarks/bench_virtual.py

clean:
	rm -rf $(VENV) demo-data bench-data

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy
