from matplotlib.figure import Figure

import ftlab
from ftlab import results


def fake_history(name):
    return ftlab.History(name=name, steps=[1, 2, 3], loss=[1.0, 0.8, 0.7],
                         evals=[{"step": 3, "loss": 0.75, "accuracy": 0.6}], params_total=10, params_trainable=5)


def test_history_plot_has_train_and_validation_lines_per_run():
    fig = ftlab.plot_history(fake_history("a"), fake_history("b"))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 2


def test_bars_and_sweep():
    rows = [fake_history("a").summary(), fake_history("b").summary()]
    assert rows[0]["trainable %"] == 50.0 and rows[0]["accuracy"] == 0.6
    fig = ftlab.plot_bars(rows, "accuracy", reference=0.5)
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[0].lines) == 1
    assert len(ftlab.plot_sweep([1e-5, 1e-4], [0.5, 0.7], "lr", "acc", logx=True).axes[0].lines) == 1


def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_RESULTS", str(tmp_path))  # make test points FTLAB_RESULTS at its own folder
    ftlab.record_result("smoke", "full", accuracy=0.812345678, trainable_percent=100.0)
    ftlab.record_result("smoke", "lora", accuracy=0.8)
    assert ftlab.load_results("smoke") == {"full": {"accuracy": 0.812346, "trainable_percent": 100.0},
                                           "lora": {"accuracy": 0.8}}
    assert ftlab.load_results("cpu") == {}


def test_figures_show_as_png_in_a_notebook_without_pyplot():
    png = ftlab.plot_sweep([1, 2], [3, 4], "x", "y")._repr_png_()
    assert png.startswith(b"\x89PNG")
