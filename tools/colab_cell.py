"""Give notebooks their Colab badge and first install cell (idempotent; `python tools/colab_cell.py notebooks/*.ipynb`).

The cell does nothing outside Colab/Kaggle, so local runs and nbval execute it as a no-op.
"""

import sys
from pathlib import Path

import nbformat

REPO = "ftlab-course/ftlab"
BADGE = ("[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{repo}/blob/main/notebooks/{name})")
INSTALL = '''# Colab / Kaggle only: install ftlab and its offline assets (does nothing on your own machine).
import os, sys
repo = os.environ.get("FTLAB_REPO", "https://github.com/%s")
if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) and not os.path.isdir("ftlab-src"):
    !git clone -q --depth 1 {repo} ftlab-src
    !pip install -q -e ftlab-src && pip install -q --no-deps -r ftlab-src/requirements-assets.txt
    sys.path.insert(0, "ftlab-src")''' % REPO


def add(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    changed = False
    title = nb.cells[0]
    if "colab-badge.svg" not in title.source:
        first, _, rest = title.source.partition("\n")
        title.source = f"{first}\n\n{BADGE.format(repo=REPO, name=path.name)}\n{rest}"
        changed = True
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "colab-install" not in code[0].metadata.get("tags", []):
        cell = nbformat.v4.new_code_cell(INSTALL, metadata={"tags": ["colab-install"]})
        nb.cells.insert(nb.cells.index(code[0]) if code else 1, cell)
        changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    for p in map(Path, sys.argv[1:]):
        print(p.name, "updated" if add(p) else "unchanged")
