import numpy as np
from matplotlib.figure import Figure

import ftlab


def fake_history(name, loss=(1.0, 0.8, 0.7), val_loss=0.75, accuracy=0.6):
    return ftlab.History(name=name, steps=[1, 2, 3], loss=list(loss),
                         evals=[{"step": 3, "loss": val_loss, "accuracy": accuracy}], params_total=10,
                         params_trainable=5)


def xy(line):
    return line.get_xydata().tolist()


def test_history_plot_has_train_and_validation_lines_per_run():
    a, b = fake_history("a"), fake_history("b", loss=(2.0, 1.5, 1.0), val_loss=1.25, accuracy=0.9)
    fig = ftlab.plot_history(a, b, smooth=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss, metric = fig.axes
    assert [line.get_label() for line in loss.lines] == ["a train", "a validation", "b train", "b validation"]
    assert xy(loss.lines[0]) == [[1, 1.0], [2, 0.8], [3, 0.7]] and xy(loss.lines[1]) == [[3, 0.75]]
    assert xy(loss.lines[2]) == [[1, 2.0], [2, 1.5], [3, 1.0]] and xy(loss.lines[3]) == [[3, 1.25]]
    assert [xy(line) for line in metric.lines] == [[[3, 0.6]], [[3, 0.9]]]
    assert metric.get_ylabel() == "accuracy"
    # smoothing: a running mean over the first points, then a moving average of `smooth` points
    smoothed = ftlab.plot_history(fake_history("c", loss=(3.0, 1.0, 2.0)), smooth=2).axes[0].lines[0]
    np.testing.assert_allclose(smoothed.get_ydata(), [3.0, 2.0, 1.5])
    assert len(ftlab.plot_history(a, metric=None).axes) == 1, "no metric, no second panel"


def test_bars_and_sweep():
    rows = [fake_history("a").summary(), fake_history("b", accuracy=0.9).summary()]
    assert rows[0]["trainable %"] == 50.0 and rows[0]["accuracy"] == 0.6
    ax = ftlab.plot_bars(rows, "accuracy", reference=0.5).axes[0]
    assert [p.get_height() for p in ax.patches] == [0.6, 0.9]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert len(ax.lines) == 1 and list(ax.lines[0].get_ydata()) == [0.5, 0.5], "the dashed reference at 0.5"
    rows = [{**r, "± 95 %": half} for r, half in zip(rows, (0.05, 0.1))]
    ax = ftlab.plot_bars(rows, "accuracy", err="± 95 %").axes[0]
    bars = next(c for c in ax.containers if getattr(c, "errorbar", None))
    low, high = bars.errorbar.lines[2][0].get_segments()[0][:, 1]  # the first bar's interval, bottom to top
    assert (round(low, 6), round(high, 6)) == (0.55, 0.65), "error bars: the mean ± the half-width"
    ax = ftlab.plot_sweep([1e-5, 1e-4], [0.5, 0.7], "lr", "acc", logx=True).axes[0]
    assert len(ax.lines) == 1 and xy(ax.lines[0]) == [[1e-5, 0.5], [1e-4, 0.7]]
    assert (ax.get_xscale(), ax.get_xlabel(), ax.get_ylabel()) == ("log", "lr", "acc")


def test_intervals_name_their_baselines_in_a_legend_off_the_points():
    rows = [{"method": "full", "test accuracy": 0.8, "± 95 %": 0.02}, {"method": "lora", "test accuracy": 0.7}]
    ax = ftlab.plot.plot_intervals(rows, reference="full", baselines={"majority class": 0.5, "logreg": 0.52}).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lora", "full"], "best on top"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["full ± 95 %", "majority class 0.500", "logreg 0.520"]
    assert not ax.texts, "no label written over the plot area"
    assert [list(line.get_xdata()) for line in ax.lines[-2:]] == [[0.5, 0.5], [0.52, 0.52]]


def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_RESULTS", str(tmp_path))  # make test points FTLAB_RESULTS at its own folder
    ftlab.record_result("smoke", "full", accuracy=0.812345678, trainable_percent=100.0)
    ftlab.record_result("smoke", "lora", accuracy=0.8)
    assert ftlab.load_results("smoke") == {"full": {"accuracy": 0.812346, "trainable_percent": 100.0},
                                           "lora": {"accuracy": 0.8}}
    assert ftlab.load_results("cpu") == {}


def test_figures_show_as_png_in_a_notebook_without_pyplot():
    png = ftlab.plot_sweep([1, 2], [3, 4], "x", "y")._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (550, 360), "5.5 x 3.6 inches at 100 dpi"
