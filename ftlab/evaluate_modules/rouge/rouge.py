"""Offline `evaluate` module: the same numbers as `ftlab.metrics.rouge`. Load with ftlab.metrics.load_metric("rouge")."""

import datasets
import evaluate

from ftlab import metrics


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="rouge computed by ftlab.metrics, shipped locally so it works without the hub.",
            citation="",
            inputs_description="predictions and references",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        return metrics.rouge(predictions, references)
