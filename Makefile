# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export GRAVITYML_HOME ?= $(CURDIR)/.gravityml
export MPLBACKEND := Agg

.PHONY: install demo test lint mypy-baseline bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build of exactly this version is what these machines carry
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,tensorflow]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gravityml train examples/tumor.yaml
	$(VENV)/bin/gravityml predict tumor examples/data/new_patients.csv -o $(GRAVITYML_HOME)/demo/scored.csv
	@$(PY) -c "import pandas as pd; d = pd.read_csv('$(GRAVITYML_HOME)/demo/scored.csv'); print(d[['prediction', 'confidence']].head(8).to_string()); print('...', len(d), 'rows scored ->', '$(GRAVITYML_HOME)/demo/scored.csv')"

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup tests

# import-linter (layers), ruff (pyflakes, pycodestyle, import order, bugbear), mypy with the pydantic
# plugin held to tools/mypy-baseline.txt (the count may only go down; `make mypy-baseline` re-records).
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(PY) tools/mypy_baseline.py

mypy-baseline: $(STAMP)
	$(PY) tools/mypy_baseline.py --record

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .gravityml build dist src/*.egg-info .pytest_cache
