"""Workshop handouts: one HTML page per notebook with its opening (goals, runtime), its section list, and
its summary and exercises, rendered by nbconvert.  Usage: python tools/handouts.py [out_dir]  (default handouts/)
"""

import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent


def handout(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    sections = [line[3:] for c in md for line in c.source.splitlines() if line.startswith("## ")
                and not line.startswith(("## Summary", "## Exercises"))]
    start = next((i for i, c in enumerate(md) if "## Summary" in c.source), len(md))
    out = nbformat.v4.new_notebook()
    out.metadata = nb.metadata
    out.cells = [md[0], nbformat.v4.new_markdown_cell("## Sections\n" + "\n".join(f"- {s}" for s in sections)),
                 *md[start:]]
    return out


def main(out_dir: str = "handouts") -> None:
    out = ROOT / out_dir
    out.mkdir(exist_ok=True)
    exporter = HTMLExporter(template_name="classic")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        html, _ = exporter.from_notebook_node(handout(path))
        (out / f"{path.stem}.html").write_text(html, encoding="utf-8")
        print(f"{path.name} → {out_dir}/{path.stem}.html")


if __name__ == "__main__":
    main(*sys.argv[1:])
