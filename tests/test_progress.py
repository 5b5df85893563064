"""A stored notebook keeps the text fallback of a progress widget: it must show the finished count, not 0/N."""

import nbformat
from nbclient import NotebookClient


def test_a_finished_bar_is_stored_as_one_text_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from ftlab.progress import LiveProgress\n"
        "bar = LiveProgress('demo', evaluates=False)\n"
        "bar.start(20, 0)\n"
        "for i in range(1, 21):\n"
        "    bar.step(i)\n"
        "bar.close()"),
        nbformat.v4.new_code_cell(
        "from ftlab.progress import ProgressBar\n"
        "bar = ProgressBar(12, 'loop')\n"
        "for i in range(12):\n"
        "    bar.update()\n"
        "bar.close()")]
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell, done in ((nb.cells[0], "demo: 20/20 steps in "), (nb.cells[1], "loop: 12/12 steps in ")):
        texts = [o.get("data", {}).get("text/plain", "") for o in cell.outputs]
        assert any(t.startswith(done) for t in texts), texts
        assert not any(" 0/" in t or t.startswith("0/") for t in texts), texts


def test_the_bar_works_outside_a_notebook(capsys):
    from ftlab.progress import LiveProgress

    bar = LiveProgress("demo", evaluates=False)
    bar.start(5, 0)
    for i in range(1, 6):
        bar.step(i)
    bar.close()


def test_the_plain_bar_prints_its_line_outside_a_notebook(capsys):
    from ftlab.progress import ProgressBar

    bar = ProgressBar(3, "loop")
    for _ in range(3):
        bar.update()
    bar.close()
    assert capsys.readouterr().out.startswith("loop: 3/3 steps in ")


def test_the_final_line_names_what_was_counted(capsys):
    from ftlab.progress import ProgressBar

    bar = ProgressBar(2, "grid", unit="runs")
    bar.update(2)
    bar.close()
    assert capsys.readouterr().out.startswith("grid: 2/2 runs in ")
