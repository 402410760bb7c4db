# Every target builds its own virtual environment, so a fresh clone needs only make and a
# supported Python (3.12 or 3.13). PYTHON=/path/to/python chooses one; otherwise the newest
# supported Python on PATH or in pyenv is used (.ci/find-python says what it looked for).
SUPPORTED := 3.13 3.12
VENV ?= .venv
# highest: every dependency at its newest release; lowest-direct: each declared lower bound
# (the "oldest" leg, as xarray's min-all-deps job).
RESOLUTION ?= highest
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: venv demo test test-oldest bench lint docs clean

venv: $(TEST_STAMP)

# The interpreter is looked up only when a venv is made, so `make clean` needs none.
$(VENV)/.created:
	@py="$(PYTHON)"; if [ -z "$$py" ]; then py=$$(.ci/find-python $(SUPPORTED)) || exit 1; fi; \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	touch $@

# The demo needs the package alone: no test tools, no extras (a light, quick install).
$(DEMO_STAMP): pyproject.toml $(VENV)/.created
	$(UV) pip install --quiet --python $(PY) --resolution $(RESOLUTION) -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(VENV)/.created
	$(UV) pip install --quiet --python $(PY) --resolution $(RESOLUTION) -e '.[test,tiled,pyhyper,virtual]'
	@$(PY) -c "import importlib.metadata as m, sys; print(sys.version.split()[0], *(f'{p}=={m.version(p)}' for p in \
	  ('numpy', 'zarr', 'numcodecs', 'xarray', 'dask', 'pandas', 'intake', 'icechunk', 'virtualizarr', 'tiled')))"
	touch $@ $(DEMO_STAMP)

# Writes the demo with the command line, summarises it through intake and
# saves the newest RSoXS run's mean frame as demo-data/mean_frame.png.
demo: $(DEMO_STAMP)
	$(VENV)/bin/intake-resonance demo demo-data --force
	$(PY) examples/demo_summary.py catalogs/demo.yaml -o demo-data/mean_frame.png

# The suite (the README's python blocks and the notebook included), then the API reference.
test: $(TEST_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory docs VENV=$(VENV)

# The API reference from the docstrings (NumPy style), warnings as errors: docs/_build/html.
docs: $(TEST_STAMP)
	rm -rf docs/_build
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html

# The same suite on Python 3.12 with the oldest releases pyproject.toml declares.
test-oldest:
	@py="$(PYTHON)"; if [ -z "$$py" ]; then py=$$(.ci/find-python 3.12) || exit 1; fi; \
	  $(MAKE) --no-print-directory test VENV=.venv-oldest RESOLUTION=lowest-direct PYTHON="$$py"

bench: $(TEST_STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/bench_tiled.py
	$(PY) benchmarks/bench_virtual.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf .venv .venv-oldest demo-data bench-data docs/_build
