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

# "name>=x.y" lines of pyproject's dependencies, torch excluded (its build is chosen by TORCH_SPEC).
floors=$(python3 - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(re.sub(r">=", "==", d) for d in deps if not d.startswith("torch")))
PY
)

run() {  # $1 venv dir, $2 label, rest: requirement specs
    local venv=$1 label=$2; shift 2
    echo "== $label: creating $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet $TORCH_SPEC
    "$venv/bin/python" -m pip install --quiet "$@" pytest
    "$venv/bin/python" -m pip install --quiet --no-deps -e .
    "$venv/bin/python" -m pip list 2>/dev/null | grep -iE "^(transformers|peft|trl|datasets|bitsandbytes|accelerate) "
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_api_surface.py
}

status=0
if [ "$which" != "latest" ]; then run .venv-floor "floor versions" $floors || status=1; fi
if [ "$which" != "floor" ]; then
    latest=$(echo "$floors" | sed 's/==[^ ]*//g')
    run .venv-latest "latest versions" --upgrade $latest || status=1
fi
exit $status
