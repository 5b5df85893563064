"""Offline `evaluate` module: the same numbers as `ftlab.metrics.accuracy`. Load with ftlab.metrics.load_metric("accuracy")."""

import datasets
import evaluate

from ftlab import metrics


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="accuracy computed by ftlab.metrics, shipped locally so it works without the hub.",
            citation="",
            inputs_description="predictions and references",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": metrics.accuracy(predictions, references)}
