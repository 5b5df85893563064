"""The parts of ../shared/NOTEBOOKS.md a machine can check, for every numbered notebook as stored.

Numbered notebooks are `NN_*.ipynb`; appendices are `A<n>_*.ipynb` (titled `# A1 · ...`) and keep the same contract.
"""

import json
import re
from pathlib import Path

import pytest

_FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted([*_FOLDER.glob("[0-9][0-9]_*.ipynb"), *_FOLDER.glob("A[0-9]_*.ipynb")])
MACHINE_PATH = re.compile(r"/(work|tmp|root|home/\w+|Users/\w+)/")


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell):
    return "".join(cell.get("source", []))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no numbered notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opening_setup_lessons_and_close(path):
    cs = cells(path)
    title = text(cs[0])
    assert re.match(rf"# {path.name[:2]} · .+ — .*[\u4e00-\u9fff]", title), "title: '# NN · Method — 中文名' (appendix: '# A1 · ...')"
    assert "You will learn" in title and "smoke" in title and "cpu" in title, "goals and runtime per profile"
    assert "colab-badge.svg" in title, "an Open-in-Colab badge (python tools/colab_cell.py)"
    code = [c for c in cs if c["cell_type"] == "code"]
    assert "colab-install" in code[0].get("metadata", {}).get("tags", []), "first code cell: Colab/Kaggle install"
    assert "fl.setup(" in text(code[1]) or "ftlab.setup(" in text(code[1]), "the setup cell comes right after"
    assert any("assert" in text(c) for c in code[-3:]), "asserted lessons in the last code cells"
    close = " ".join(text(c) for c in cs[-3:] if c["cell_type"] == "markdown")
    assert "Summary" in close and "Exercises" in close
    assert any("widgets" in text(c) for c in code), "at least one ipywidgets explorer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_executed_and_clean(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    # the Colab install cell is a no-op here: it may be stored unexecuted when added after a cpu run
    run = [c for c in code if "colab-install" not in c.get("metadata", {}).get("tags", [])]
    assert all(c.get("execution_count") for c in run), "stored executed (make notebooks)"
    for i, c in enumerate(code):
        for out in c.get("outputs", []):
            body = out.get("text", "")
            body = "".join(body) if isinstance(body, list) else str(body)
            assert out.get("output_type") != "error", f"code cell {i} stored an error"
            assert not MACHINE_PATH.search(body), f"code cell {i} shows a machine path"
            if out.get("name") == "stderr":
                assert not re.search(r"Warning|warn\(", body), f"code cell {i} shows library warnings: {body[:200]}"
