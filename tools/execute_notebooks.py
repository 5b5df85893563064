"""Re-execute notebooks in place (profile from $FTLAB_PROFILE, `make notebooks` sets cpu) and store them
executed, so readers see real figures. One progress line per notebook, then a table of run times.

Usage: python tools/execute_notebooks.py notebooks/01_full_finetuning.ipynb [...]
"""

import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MACHINE_PATH = re.compile(r"/(work|tmp|root|home/\w+|Users/\w+)/")


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception:
        # keep what ran (outputs up to the failing cell) beside the untouched notebook, for diagnosis
        nbformat.write(nb, path.with_suffix(".failed.ipynb"))
        raise
    elapsed = time.perf_counter() - start
    nb.metadata["ftlab"] = {"profile": os.environ.get("FTLAB_PROFILE", "auto"), "run_seconds": round(elapsed)}
    nbformat.write(nb, path)
    leaks = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             for o in c.get("outputs", []) if MACHINE_PATH.search(str(o.get("text", "")))]
    if leaks:
        print(f"   warning: machine paths in the outputs of cells {sorted(set(leaks))}")
    return elapsed


def main(paths: list[str]) -> int:
    timeout = int(os.environ.get("FTLAB_CELL_TIMEOUT", "1800"))
    times, failed = {}, []
    for i, p in enumerate(map(Path, paths), 1):
        print(f"[{i}/{len(paths)}] {p.name} (profile {os.environ.get('FTLAB_PROFILE', 'auto')}) …", flush=True)
        try:
            times[p.name] = execute(p, timeout)
            print(f"   done in {times[p.name]:.0f} s", flush=True)
        except Exception as e:  # report and go on: one failing notebook should not hide the others
            failed.append(p.name)
            print(f"   FAILED: {type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''}", flush=True)
    print("\nnotebook".ljust(44) + "seconds")
    for name, t in times.items():
        print(f"{name:<43}{t:>7.0f}")
    for name in failed:
        print(f"{name:<43}{'failed':>7}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
