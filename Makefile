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

# `gravityml export --format web` bundles onnxruntime-web: npm ci from the committed lock file (the
# registry is reached here, at install time, never when exporting). `browser`: Debian's Chromium and
# chromedriver for tests/inference/test_web_browser.py (apt-get as root; nothing to do when present).
WEB_DIR   := src/gravityml/inference/web
WEB_STAMP := $(WEB_DIR)/node_modules/.gravityml-installed
.PHONY: web browser
install: web
test: web browser

$(WEB_STAMP): $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	cd $(WEB_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

web: $(WEB_STAMP)

browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make browser: /usr/bin/chromium or /usr/bin/chromedriver is missing; as root: apt-get install -y chromium chromium-driver" >&2; \
	    exit 1; \
	  fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

# SkyPilot in a venv of its own: 0.14 pins click<8.2 and an older uvicorn, below what .venv is tested
# with. tests/execution/test_skypilot_dryrun.py runs SkyPilot's dry run there (no gravityml in it:
# the task travels as YAML). rsync: SkyPilot checks for it before a launch, a dry run's too (apt-get as root).
# The wheel of itself that SkyPilot ships to the clusters it launches (a dry run builds it too) is built
# once here, in $(SKY_VENV)/home; the test copies it into its temporary HOME.
SKY_VENV  := .venv-sky
SKY_STAMP := $(SKY_VENV)/.installed
SKYPILOT  := skypilot[aws]==0.14.1
test: $(SKY_STAMP)

$(SKY_STAMP):
	@if ! command -v rsync >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make $(SKY_STAMP): rsync is missing; as root: apt-get install -y rsync" >&2; \
	    exit 1; \
	  fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync; \
	fi
	$(PYTHON) -m venv $(SKY_VENV)
	flock /tmp/pip.lock $(SKY_VENV)/bin/python -m pip install --quiet '$(SKYPILOT)'
	HOME=$(CURDIR)/$(SKY_VENV)/home $(SKY_VENV)/bin/python -c "import shutil; from sky.backends import wheel_utils; shutil.rmtree(wheel_utils.build_sky_wheel()[0])"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/gravityml train examples/tumor.yaml
	$(VENV)/bin/gravityml predict tumor examples/data/new_patients.csv -o $(GRAVITYML_HOME)/demo/scored.csv
	@$(PY) -c "import pandas as pd; d = pd.read_csv('$(GRAVITYML_HOME)/demo/scored.csv'); print(d[['prediction', 'confidence']].head(8).to_string()); print('...', len(d), 'rows scored ->', '$(GRAVITYML_HOME)/demo/scored.csv')"

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup --durations=25 tests

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
