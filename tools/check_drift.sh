#!/usr/bin/env bash
# Upstream drift, caught before learners meet it. Three version sets:
#   constraints  the tested set (constraints.txt), what `make lab` / `make test` install (.venv)
#   floor        the lowest versions pyproject.toml allows (uv --resolution lowest-direct, .venv-floor)
#   latest       the newest versions that resolve today (.venv-latest)
# On floor and latest it runs the API-surface tests (tests/test_api_surface.py, test_prefix.py: the
# version-specific code paths) and notebooks 01 and 05 under nbval in the smoke profile, then prints a
# table of what moved and what passed.
#   bash tools/check_drift.sh            # floor + latest (CI)
#   bash tools/check_drift.sh latest     # one of them
#   bash tools/check_drift.sh upgrade    # latest + the WHOLE suite there; if green, rewrite constraints.txt
# A failing set exits non-zero, naming the set and the packages that differ from constraints.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
CHECKS="tests/test_api_surface.py tests/test_prefix.py notebooks/01_full_finetuning.ipynb notebooks/05_prefix_tuning.ipynb"
declare -A status

fresh_venv() {  # $1: venv folder; PyTorch first, chosen the way `make` chooses it
    rm -rf "$1"
    python3 -m venv "$1" && "$1/bin/python" -m pip install --quiet --upgrade pip uv \
        && "$1/bin/python" tools/install_torch.py --constraints constraints.txt
}

install_floor() {
    local venv=.venv-floor
    fresh_venv "$venv" || return 1
    "$venv/bin/python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$venv/torch.txt"
    "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --resolution lowest-direct \
        --override "$venv/torch.txt" -e ".[test]" \
        && "$venv/bin/python" -m pip install --quiet --no-deps -r requirements-assets.txt
}

install_latest() {
    local venv=.venv-latest
    fresh_venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --upgrade -e ".[test,browser]" \
        && "$venv/bin/python" -m pip install --quiet --no-deps -r requirements-assets.txt
}

run_checks() {  # $1: venv, $2: what to run
    local tmp; tmp=$(mktemp -d)
    FTLAB_PROFILE=smoke FTLAB_RUNS=$tmp/runs FTLAB_RESULTS=$tmp/results HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 \
        "$1/bin/python" -m pytest -q -p no:cacheprovider --nbval-lax --nbval-sanitize-with nbval.ini $2
    local s=$?; rm -rf "$tmp"; [ $s -eq 5 ] && echo "no tests collected" >&2 && s=1
    return $s
}

check() {  # $1: floor | latest; $2: what to run
    echo "== $1 versions: creating .venv-$1"
    if ! "install_$1"; then status[$1]="install failed"; return 1; fi
    "$(pwd)/.venv-$1/bin/python" tools/versions.py json > ".venv-$1/versions.json"
    if run_checks ".venv-$1" "$2"; then status[$1]="pass"; else status[$1]="FAIL"; return 1; fi
}

overall=0
case "$which" in
    floor|latest) check "$which" "$CHECKS" || overall=1 ;;
    both) check floor "$CHECKS" || overall=1; check latest "$CHECKS" || overall=1 ;;
    upgrade) check latest "tests notebooks" || overall=1 ;;
    *) echo "usage: $0 [both|floor|latest|upgrade]" >&2; exit 2 ;;
esac

echo; echo "## Drift: what moved, and what passed ($(date -u +%Y-%m-%d))"
args=(); [ -f .venv-floor/versions.json ] && args+=(floor=.venv-floor/versions.json)
args+=(constraints=constraints.txt); [ -f .venv-latest/versions.json ] && args+=(latest=.venv-latest/versions.json)
for k in "${!status[@]}"; do args+=("status:$k=${status[$k]}"); done
python3 tools/versions.py table "${args[@]}"

if [ "$which" = upgrade ]; then
    if [ $overall -eq 0 ]; then
        .venv-latest/bin/python tools/versions.py freeze > constraints.txt
        echo "constraints.txt now holds the latest versions (the whole suite passed on them); review and commit it."
    else
        echo "The suite failed on the latest versions: constraints.txt left as it was." >&2
    fi
elif [ $overall -ne 0 ]; then
    echo "Drift check FAILED for: $(for k in "${!status[@]}"; do [ "${status[$k]}" != pass ] && printf '%s ' "$k"; done)" >&2
    echo "The packages marked 'moved' above are the suspects; fix ftlab (or raise the floor) before users meet it." >&2
fi
exit $overall
