"""Offline `evaluate` module: the same numbers as `ftlab.metrics.f1`. Load with ftlab.metrics.load_metric("f1")."""

import datasets
import evaluate

# The floor-1 module itself, not the package face. Python (and evaluate's own dependency check, which
# imports the top-level library) still runs ftlab/__init__ first; through ftlab.metrics.load_metric it is
# already imported, so that costs nothing.
import ftlab.metrics as metrics


class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="f1 computed by ftlab.metrics, shipped locally so it works without the hub.",
            citation="",
            inputs_description="predictions and references",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, average="macro"):
        return {"f1": metrics.f1(predictions, references, average=average)}
