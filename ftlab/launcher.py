"""A zero-code launcher: model, dataset, method and steps → train with a live loss plot → evaluate → save.

What an app such as Kiln offers as buttons, here as one call (``launch``) and one widget
(``launcher_widget``). Every method is built exactly as the comparison builds it
(``compare_methods.METHODS``: mean pooling + a trained linear head), and its learning rate is, unless you
give one, the rate the stored comparison chose on validation for this profile. Taught in notebook 10.
"""

from __future__ import annotations

import difflib
import html
import inspect
import json
import math
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from .compare import collapsed, slug
from .compare_methods import METHODS
from .errors import FtlabError, describe

TWO_CLASS = ("rotten_tomatoes", "chinese_reviews")  # the offline datasets a two-class head can learn
VALIDATION_ROWS = 200  # validation rows for the live validation loss (the comparison's grid search uses as many)


def launchable() -> list[str]:
    """The methods the launcher trains: every comparison method that needs nothing but a profile. The
    distilled student is left out: it needs a teacher fully fine-tuned in the same run (``ftlab compare``)."""
    return [name for name, m in METHODS.items() if "ctx" not in inspect.signature(m.build).parameters]


def _check_method(method: str) -> None:
    if method in METHODS and method not in launchable():
        raise FtlabError(f"{method!r} needs a teacher trained in the same run, so the launcher does not offer it; "
                         f"'python -m ftlab compare --profile ...' trains it. Launchable: {', '.join(launchable())}.")
    if method not in METHODS:
        lower = {n.lower(): n for n in launchable()}
        close = difflib.get_close_matches(str(method).lower(), lower, n=1)
        raise FtlabError(f"Unknown method {method!r}" + (f" (did you mean {lower[close[0]]!r}?)" if close else "")
                         + f". Choose one of: {', '.join(launchable())}.")


def _check_dataset(dataset: str) -> None:
    from .data import DATASETS

    if dataset in DATASETS or Path(dataset).exists() or "/" in dataset:  # offline name, local file/folder, hub name
        return  # ftlab.data says clearly what is wrong with it (missing columns, labels, splits)
    raise FtlabError(f"Unknown dataset {dataset!r}. Two-class datasets offline: {', '.join(TWO_CLASS)}; or a "
                     ".csv/.json/.jsonl/.parquet file (or save_to_disk folder) with 'text' and 'label' columns.")


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise FtlabError(f"steps must be a whole number of at least 1; got {steps!r}.")
    return steps


def _can_display() -> bool:
    """Whether an IPython display is there to draw the live plot in (a notebook or IPython, not a script)."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
    except ImportError:
        return False
    return InteractiveShell.initialized()


def resolve_lr(profile, method: str, lr=None) -> tuple[float, str]:
    """``(rate, where it came from)``: the rate given; else the one the stored comparison of this profile
    chose on validation for ``method``; else the middle of the method's grid."""
    from . import report

    _check_method(method)
    if lr is not None:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise FtlabError(f"lr must be a positive number such as 2e-3; got {lr!r}.")
        return float(lr), "given"
    grid = METHODS[method].lrs
    middle, rates = sorted(grid)[len(grid) // 2], ", ".join(f"{r:g}" for r in grid)
    try:
        cmp = report.load_comparison(profile.name)
    except FtlabError:
        return middle, f"middle of the grid {rates} (no stored comparison for profile {profile.name})"
    row = cmp.get("methods", {}).get(method)
    if not row or not isinstance(row.get("lr"), (int, float)):
        return middle, (f"middle of the grid {rates} (the stored comparison of profile {profile.name} has no row "
                        f"for {method!r})")
    p = cmp.get("protocol", {})
    return float(row["lr"]), (f"stored comparison of profile {profile.name}: chosen on validation for "
                              f"{p.get('model') or profile.encoder} on {p.get('task', 'rotten_tomatoes')} at "
                              f"{p.get('steps', '?')} steps")


def default_out_dir(model: str, dataset: str, method: str) -> Path:
    """``<runs folder>/launcher-<model>-<dataset>-<method>`` (the runs folder is ``$FTLAB_RUNS`` or ``runs``)."""
    from .env import runs_dir

    return runs_dir() / f"launcher-{slug(Path(model).name)}-{slug(Path(dataset).stem)}-{slug(method)}"


def launch(profile, method: str, dataset: str = "rotten_tomatoes", steps: int | None = None, lr: float | None = None,
           seed: int = 0, model: str | None = None, out_dir=None, live: bool = True) -> dict:
    """Build ``method`` on ``model`` (default the profile's encoder), train it on ``dataset`` for ``steps``
    (default the profile's) with a live loss plot, evaluate on the test split and save the trainable
    weights (safetensors) into ``out_dir``. Returns what happened, as plain numbers and strings.

    The live plot needs IPython; in a plain script ``live`` is ignored and the run trains silently.
    """
    from .data import load_dataset
    from .evaluation import predict
    from .metrics import accuracy, classification_metrics, f1
    from .models import count_parameters, load_tokenizer
    from .preprocess import tokenize_classification
    from .train import TrainConfig, train

    start = time.perf_counter()
    _check_method(method)
    _check_dataset(dataset)
    steps = _check_steps(profile.steps if steps is None else steps)
    lr, lr_source = resolve_lr(profile, method, lr)
    if model:
        profile = replace(profile, encoder=model)
    out = Path(out_dir) if out_dir is not None else default_out_dir(profile.encoder, dataset, method)

    data = load_dataset(dataset, profile)
    tokenizer = load_tokenizer(profile.encoder)
    tokens = tokenize_classification(data, tokenizer, profile.max_length, num_labels=2)
    tokens["validation"] = tokens["validation"].select(range(min(VALIDATION_ROWS, len(tokens["validation"]))))
    built = METHODS[method].build(profile, seed, steps)
    config = TrainConfig(name=f"{method} · {Path(dataset).stem}", steps=steps, batch_size=profile.batch_size, lr=lr,
                         eval_every=min(profile.eval_every, steps), seed=seed, bf16=profile.bf16,
                         live=bool(live) and _can_display(),
                         output_dir=str(out))
    train(built.model, tokens["train"], tokens["validation"], config, tokenizer=tokenizer,
          callbacks=built.callbacks, loss_fn=built.loss_fn, compute_metrics=classification_metrics)

    pred, labels = predict(built.model, tokens["test"], tokenizer)
    params = count_parameters(built.model)
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.safetensors")}
    built.model.save_pretrained(out, safe_serialization=True)  # the trainable tensors only
    saved = sorted(p for p in out.glob("*.safetensors") if before.get(p) != p.stat().st_mtime_ns)
    if len(saved) != 1:
        raise FtlabError(f"Expected one new .safetensors file in {out} after saving {method!r}; found {saved}.")
    result = {"method": method, "model": profile.encoder, "dataset": dataset, "lr": lr, "lr_source": lr_source,
              "steps": steps, "test_accuracy": round(accuracy(pred, labels), 4), "test_f1": round(f1(pred, labels), 4),
              "collapsed": collapsed(pred), "trainable": params.trainable,
              "trainable_percent": round(params.percent, 4), "saved_to": str(saved[0]),
              "size_mb": round(saved[0].stat().st_size / 2**20, 4), "note": built.note,
              "seconds": round(time.perf_counter() - start, 1)}
    (out / "launcher.json").write_text(json.dumps({**result, "profile": profile.name, "seed": seed,
                                                   "max_length": profile.max_length, "date": str(date.today())},
                                                  indent=1, ensure_ascii=False), encoding="utf-8")
    return result


# ---------------------------------------------------------------- the widget


def _shown(path: str) -> str:
    """A path as a reader should see it: relative to the working folder or to the runs folder."""
    from .env import runs_dir

    p = Path(path).resolve()
    for base, prefix in ((Path.cwd(), ""), (runs_dir().resolve(), "$FTLAB_RUNS/")):
        try:
            return prefix + str(p.relative_to(base))
        except ValueError:
            pass
    return str(path)


def _result_table(r: dict) -> str:
    rows = [("method", r["method"]), ("model", r["model"]), ("dataset", r["dataset"]),
            ("learning rate 学习率", f"{r['lr']:g}"), ("rate from", r["lr_source"]), ("steps", r["steps"]),
            ("test accuracy", f"{r['test_accuracy']:.4f}"), ("test macro-F1", f"{r['test_f1']:.4f}"),
            ("collapsed (≥ 95 % one class)", "yes" if r["collapsed"] else "no"),
            ("trainable parameters", f"{r['trainable']:,} ({r['trainable_percent']:.3f} %)"),
            ("adapter 适配器 saved to", f"{_shown(r['saved_to'])} ({r['size_mb']:.3f} MB, safetensors)"),
            ("seconds", r["seconds"])]
    body = "".join(f"<tr><td style='text-align:left'>{html.escape(k)}</td><td style='text-align:left'>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _parse_lr(text: str):
    text = text.strip()
    if text.lower() in ("", "auto"):
        return None
    try:
        return float(text)
    except ValueError:
        raise FtlabError(f"learning rate {text!r}: type a number such as 2e-3, or 'auto' for the stored choice."
                         ) from None


def launcher_widget(profile, method: str = "LoRA", dataset: str = "rotten_tomatoes", steps: int | None = None):
    """Model, dataset, method, steps and learning rate, and a Train button that runs ``launch`` below them.

    The live plot goes to an ``Output`` widget, the result table (or one red error line, never a traceback)
    to an ``HTML`` widget below it. Returns the ``VBox``; ``.button``, ``.output``, ``.summary`` (the HTML),
    ``.controls`` (name → widget), ``.results`` (each finished launch's dict) and ``.errors`` (each error
    line shown) are attached for scripted use: ``box.controls["steps"].value = 20; box.button.click()``.
    """
    import ipywidgets as w

    from .train import TrainingInterrupted

    _check_method(method)
    steps = _check_steps(profile.steps if steps is None else steps)
    if dataset not in TWO_CLASS:
        raise FtlabError(f"The widget offers the datasets {', '.join(TWO_CLASS)}; got {dataset!r} "
                         "(launch() also takes files).")
    style, layout = {"description_width": "110px"}, w.Layout(width="460px")
    controls = {
        "model": w.Text(value=profile.encoder, description="model", style=style, layout=layout),
        "dataset": w.Dropdown(options=list(TWO_CLASS), value=dataset, description="dataset", style=style,
                              layout=layout),
        "method": w.Dropdown(options=[(n if METHODS[n].chinese == n else f"{n} — {METHODS[n].chinese}", n)
                                      for n in launchable()], value=method, description="method", style=style,
                             layout=layout),
        "steps": w.IntSlider(value=steps, min=1, max=max(3 * profile.steps, steps), description="steps", style=style,
                             layout=layout),
        "lr": w.Text(value="auto", description="learning rate", placeholder="auto = the stored comparison's choice",
                     style=style, layout=layout),
    }
    button = w.Button(description="Train", button_style="primary", icon="play")
    out, summary = w.Output(), w.HTML()
    box = w.VBox([*controls.values(), button, out, summary])
    box.button, box.output, box.summary, box.controls, box.results, box.errors = button, out, summary, controls, [], []

    def on_click(_):
        button.disabled = True
        out.clear_output()
        summary.value = ""
        result, message = None, None
        try:
            with out:  # the live plot and progress lines land here; no exception leaves this block
                try:
                    result = launch(profile, controls["method"].value, dataset=controls["dataset"].value,
                                    steps=int(controls["steps"].value), lr=_parse_lr(controls["lr"].value),
                                    model=controls["model"].value.strip() or None, live=True)
                except FtlabError as e:
                    message = f"FtlabError: {e}"
                except TrainingInterrupted as e:  # the checkpoint is kept: the same settings resume
                    message = f"Stopped: {e}".replace("Run the same cell again", "Click Train again")
                except KeyboardInterrupt:
                    message = "Stopped before training began."
                except Exception as e:  # a library error: one line, never a traceback
                    message = describe(e)
            if result is not None:
                box.results.append(result)
                summary.value = _result_table(result)
            else:
                box.errors.append(message)
                summary.value = f"<span style='color:#c00'>{html.escape(message)}</span>"
        finally:
            button.disabled = False

    button.on_click(on_click)
    return box
