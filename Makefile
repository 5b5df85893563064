# ftlab: two commands on a fresh machine.
#   make lab    create .venv if missing, install the tested set, start JupyterLab on notebooks/ (PORT=8888)
#   make test   the same venv, then unit tests + every notebook under nbval in the smoke profile
# Installs use constraints.txt (the versions the suite last passed with); pyproject.toml keeps floors only.
# PyTorch comes first, from tools/install_torch.py: the CPU build when there is no NVIDIA GPU (Linux).
# Set TORCH_SPEC to override it, e.g. TORCH_SPEC="torch==2.13.0".
#   make upgrade   refresh constraints.txt to the latest versions, after the suite passes on them

PYTHON ?= python3
# pytest exits 5 when it collects no tests: a broken suite, so it fails here rather than passing quietly.
PYTEST = sh -c '"$$0" -m pytest "$$@"; s=$$?; [ $$s -eq 5 ] && echo "pytest collected no tests: failing" >&2 && exit 1; exit $$s' $(PY)
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints.txt
PORT ?= 8888
STAMP := $(VENV)/.ftlab-installed
export TORCH_SPEC

.PHONY: lab test test-browser unit nbval notebooks slides benchmark gpu-check drift upgrade clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the dependency lists change.
$(STAMP): $(PY) pyproject.toml requirements-assets.txt $(CONSTRAINTS)
	$(PY) tools/install_torch.py --constraints $(CONSTRAINTS)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-assets.txt
	@touch $(STAMP)

venv: $(STAMP)

# As root it adds --allow-root, without a display it opens no browser; either way it prints the URL.
lab: $(STAMP)
	$(PY) tools/lab.py --port $(PORT)

# TEST_WORKERS pytest-xdist processes (one torch thread each); a notebook's cells stay on one worker.
TEST_WORKERS ?= 2
# Checkpoints and results of the test run go to one temporary folder, removed afterwards.
test: $(STAMP)
	@tmp=$$(mktemp -d); \
	FTLAB_PROFILE=smoke FTLAB_RUNS=$$tmp/runs FTLAB_RESULTS=$$tmp/results HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 \
		$(PYTEST) tests notebooks --nbval-lax --nbval-sanitize-with nbval.ini -q -n $(TEST_WORKERS) --dist loadfile \
		--durations 15; s=$$?; rm -rf $$tmp; exit $$s

# JupyterLab in headless Chromium (Debian's /usr/bin/chromium; `apt-get install chromium`), driven by Playwright.
test-browser: $(STAMP)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[browser]"
	FTLAB_SCREENSHOTS=$(CURDIR)/browser_tests $(PYTEST) browser_tests -q

unit: $(STAMP)
	$(PYTEST) tests -q

nbval: $(STAMP)
	@tmp=$$(mktemp -d); FTLAB_PROFILE=smoke FTLAB_RUNS=$$tmp/runs FTLAB_RESULTS=$$tmp/results \
		$(PYTEST) notebooks --nbval-lax --nbval-sanitize-with nbval.ini -q; s=$$?; rm -rf $$tmp; exit $$s

# Re-execute every notebook in the cpu profile and store it executed (what readers see on GitHub).
notebooks: $(STAMP)
	FTLAB_PROFILE=cpu $(PY) tools/execute_notebooks.py notebooks/[0-9]*.ipynb

# Workshop handouts: each notebook's goals, sections, summary and exercises as HTML in handouts/.
slides: $(STAMP)
	$(PY) tools/handouts.py handouts

benchmark: $(STAMP)
	$(PY) benchmarks/trainer_vs_loop.py

# On a CUDA machine: measured memory, throughput and MFU of the gpu paths into results/gpu/ (≤ 8 min).
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py

# The API-surface tests + smoke notebooks on the floor versions and on the latest, with a table of what moved.
drift:
	bash tools/check_drift.sh

# The latest resolvable versions in a fresh venv; if the whole suite passes there, they become constraints.txt.
upgrade:
	bash tools/check_drift.sh upgrade

clean:
	rm -rf notebooks/runs runs .pytest_cache handouts .venv-floor .venv-latest
