"""The comparison's baselines and report: a markdown table and figures from ``compare``'s summaries.

Baselines (every table carries them): the majority class; frozen mean-pooled features + logistic
regression (the strongest cheap baseline; C chosen on validation); zero-shot SmolLM2 with its own chat
template (no training at all). They are computed once per profile and stored beside the runs.
"""

from __future__ import annotations

import json
from pathlib import Path

INSTRUCTION = "Is the sentiment of this review positive or negative? Answer with one word."


def frozen_features_logreg(ctx) -> dict:
    """Logistic regression on the frozen encoder's mean-pooled last layer; C chosen on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from .methods.probe import layer_features
    from .models import load_model
    from .preprocess import classification_collator

    model = load_model(ctx.profile.encoder, task="base", seed=0)[0]
    collate = classification_collator(ctx.tokenizer)
    feats = {s: layer_features(model, ctx.tokens[s], collate)[-1].numpy() for s in ("train", "validation", "test")}
    labels = {s: list(ctx.tokens[s]["labels"]) for s in feats}
    scaler = StandardScaler().fit(feats["train"])
    scores = {}
    for c in (0.01, 0.1, 1.0, 10.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(feats["train"]), labels["train"])
        scores[c] = (clf.score(scaler.transform(feats["validation"]), labels["validation"]), clf)
    c = max(scores, key=lambda k: (scores[k][0], -k))
    test = scores[c][1].score(scaler.transform(feats["test"]), labels["test"])
    return {"accuracy": round(float(test), 4), "C": c, "C grid (validation accuracy)": {str(k): round(v[0], 4)
                                                                                      for k, v in scores.items()}}


def zero_shot(ctx) -> dict:
    from .methods import prompts
    from .models import load_model

    lm, tok = load_model(ctx.profile.decoder, task="causal-lm", seed=0)
    template = prompts.chat_template(tok, INSTRUCTION)
    test = ctx.data["test"]
    acc = prompts.zero_shot_accuracy(lm, tok, test["text"], test["label"], template, ["negative", "positive"])
    return {"accuracy": round(acc, 4), "model": ctx.profile.decoder, "template": "the model's chat template"}


def baselines(ctx, folder: Path) -> dict:
    from .metrics import majority_baseline

    path = folder / "baselines.json"
    if path.exists():
        return json.loads(path.read_text())
    result = {"majority class": {"accuracy": round(majority_baseline(ctx.data["train"]["label"],
                                                                     ctx.data["test"]["label"]), 4)},
              "frozen features + logistic regression": frozen_features_logreg(ctx),
              "zero-shot SmolLM2 (chat template)": zero_shot(ctx)}
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def markdown(summaries: dict, base: dict, protocol: dict) -> str:
    lines = [f"# ftlab compare · profile {protocol['profile']}",
             "", f"{protocol['steps']} steps × batch {protocol['batch_size']}, max length {protocol['max_length']}, "
             f"{protocol['seeds']} seed(s) per method at the rate chosen on {protocol['validation_rows']} validation rows; "
             "test accuracy is the mean over non-collapsed seeds with a 95 % t-interval.", "",
             "| method | 中文 | lr | test accuracy | ± 95 % | macro-F1 | collapsed | trainable % | s/step | GFLOP/s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(summaries.values(), key=lambda s: -s["test accuracy"]):
        lines.append(f"| {s['method']} | {s['chinese']} | {s['lr']:g} | {s['test accuracy']:.3f} | {s['± 95 %']:.3f} | "
                     f"{s['test f1']:.3f} | {s['collapsed runs']}/{s['seeds']} | {s['trainable %']:.3f} | "
                     f"{s['s/step']:.3f} | {s.get('GFLOP/s') or ''} | {s['peak MB']} |")
    for name, b in base.items():
        lines.append(f"| *{name}* | | | {b['accuracy']:.3f} | | | | 0 | | | |")
    full = summaries.get("full fine-tuning", {})
    if "share of matmul FLOP/s" in full:
        lines += ["", f"Full fine-tuning ran at {full['GFLOP/s']} GFLOP/s (FLOPs counted by PyTorch's FlopCounterMode); "
                  f"a 2048×2048 matmul in the same process reached {full['matmul GFLOP/s']} GFLOP/s: "
                  f"{full['share of matmul FLOP/s']:.0%} of the machine's practical ceiling."]
    return "\n".join(lines) + "\n"


FIGURES = {"accuracy-vs-trainable.png": ("trainable %", True), "accuracy-vs-memory.png": ("peak MB", False),
           "accuracy-vs-speed.png": ("s/step", False)}


def figures(summaries: dict, base: dict) -> dict:
    """Accuracy against what each method costs, Pareto front ringed: ``{file name: Figure}``."""
    from .plot import plot_tradeoff

    rows = list(summaries.values())
    lines = {name: b["accuracy"] for name, b in base.items()}
    return {f: plot_tradeoff(rows, x, logx=log, baselines=lines, title=f"test accuracy vs {x}")
            for f, (x, log) in FIGURES.items()}


def write_report(profile, summaries: dict) -> Path:
    """Baselines (computed once), ``summary.json`` and ``report.md`` in the comparison's folder."""
    from .compare import Context, Protocol, run_dir

    folder = run_dir(profile.name)
    any_run = next((folder / "runs").rglob("final-*.json"), None)
    protocol = json.loads(any_run.read_text())["protocol"] if any_run else {}
    ctx = Context(profile, Protocol(**protocol)) if protocol else None
    base = baselines(ctx, folder) if ctx else {}
    (folder / "summary.json").write_text(json.dumps({"protocol": protocol, "methods": summaries, "baselines": base},
                                                    indent=1, ensure_ascii=False))
    path = folder / "report.md"
    text = markdown(summaries, base, protocol)
    for name, fig in figures(summaries, base).items():
        fig.savefig(folder / name, dpi=110)
        text += f"\n![{name}]({name})\n"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- reading a stored comparison


def load_comparison(profile_name: str) -> dict:
    """The stored comparison of a profile: ``{"protocol", "methods", "baselines"}`` from ``summary.json``.

    Looks in ``$FTLAB_RESULTS`` first, then in the repository's committed ``results/`` (what the notebooks
    show by default), so a test run with its own results folder still reads the committed comparison.
    """
    from .compare import run_dir
    from .errors import FtlabError
    from .results import RESULTS_DIR

    for path in (run_dir(profile_name) / "summary.json", RESULTS_DIR / "compare" / profile_name / "summary.json"):
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FtlabError(f"No stored comparison for profile {profile_name!r}. Make one with "
                     f"'python -m ftlab compare --profile {profile_name}' (resumable; see notebook 10).")


def comparison_table(comparison: dict, methods=None):
    """A pandas table of the stored comparison: the chosen methods (default all), then the baselines.

    Collapsed seeds are counted, never averaged in: a method whose every seed collapsed has no accuracy.
    """
    import pandas as pd

    rows = []
    for name, s in comparison["methods"].items():
        if methods is None or name in methods:
            rows.append({"method": name, "中文": s["chinese"], "lr": s["lr"], "test accuracy": s["test accuracy"],
                         "± 95 %": s["± 95 %"], "macro-F1": s["test f1"],
                         "collapsed": f"{s['collapsed runs']}/{s['seeds']}", "trainable %": s["trainable %"],
                         "s/step": s["s/step"], "GFLOP/s": s.get("GFLOP/s"), "peak MB": s["peak MB"],
                         "disk MB": s["disk MB"]})
    rows.sort(key=lambda r: -(r["test accuracy"] if r["test accuracy"] == r["test accuracy"] else -1))
    for name, b in comparison["baselines"].items():
        rows.append({"method": name, "中文": "基线", "test accuracy": b["accuracy"], "trainable %": 0.0})
    return pd.DataFrame(rows).set_index("method")


def differs(a: dict, b: dict) -> bool:
    """Whether two summaries' 95 % intervals do not overlap: the protocol's test for a real difference."""
    lo_a, hi_a = a["test accuracy"] - a["± 95 %"], a["test accuracy"] + a["± 95 %"]
    lo_b, hi_b = b["test accuracy"] - b["± 95 %"], b["test accuracy"] + b["± 95 %"]
    return hi_a < lo_b or hi_b < lo_a
