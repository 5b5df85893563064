#!/usr/bin/env bash
# Upstream drift: run the API-surface tests (tests/test_api_surface.py) in two venvs, one with the floor
# versions that pyproject.toml promises and one with the latest installable versions.
#   bash tools/check_drift.sh            # both
#   bash tools/check_drift.sh latest     # only the latest (what CI runs through `make test`)
# TORCH_SPEC chooses the PyTorch build for both venvs (default: torch; on the CI machine torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC=${TORCH_SPEC:-torch}
which=${1:-both}

# Floors: uv resolves pyproject's dependencies to their *lowest* allowed versions (--resolution
# lowest-direct), so a floor that no longer works is caught. Torch stays the build TORCH_SPEC installed.
floor() {
    local venv=.venv-floor
    echo "== floor versions: creating $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip uv
    "$venv/bin/python" -m pip install --quiet $TORCH_SPEC
    "$venv/bin/python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$venv/torch.txt"
    "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --resolution lowest-direct \
        --override "$venv/torch.txt" -e ".[test]"
    report "$venv"
}

latest() {
    local venv=.venv-latest
    echo "== latest versions: creating $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet $TORCH_SPEC
    "$venv/bin/python" -m pip install --quiet --upgrade -e ".[test]"
    report "$venv"
}

report() {
    "$1/bin/python" -m pip list 2>/dev/null | grep -iE "^(torch|transformers|peft|trl|datasets|bitsandbytes|accelerate) "
    "$1/bin/python" -m pytest -q -p no:cacheprovider tests/test_api_surface.py
}

status=0
if [ "$which" != "latest" ]; then floor || status=1; fi
if [ "$which" != "floor" ]; then latest || status=1; fi
exit $status
