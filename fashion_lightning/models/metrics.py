"""The metrics of one evaluation stage, and the notes' per-class accuracy table."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.wrappers import ClasswiseWrapper

CONFUSION_MATRIX = "confusion_matrix"
PER_CLASS_SCORES = ("class_acc", "class_precision", "class_f1")  # logged as {stage}/{score}/{class}


def stage_metrics(class_names: Sequence[str], stage: str) -> MetricCollection:
    """``{stage}/acc``, ``{stage}/f1`` (macro), ``{stage}/class_acc|class_precision|class_f1/<class>``
    and the confusion matrix.

    Per-class accuracy is recall: the share of a class's images that were given that class, as in
    the notes' table. A per-class name never extends an overall one (``val/acc/Shirt`` would need
    ``val/acc`` to be a folder in loggers that store a metric per file, as MLflow's file store).
    Compute groups are off: with ClasswiseWrapper they warn on every epoch, and the separate updates
    cost little next to the forward pass.
    """
    n, labels = len(class_names), list(class_names)

    def per_class(metric: type, name: str) -> ClasswiseWrapper:
        return ClasswiseWrapper(metric(num_classes=n, average=None), labels=labels, prefix=f"{name}/")

    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n, average="micro"),
            "f1": MulticlassF1Score(n, average="macro"),
            **{
                f"{score}_per_class": per_class(metric, score)
                for score, metric in zip(
                    PER_CLASS_SCORES, (MulticlassRecall, MulticlassPrecision, MulticlassF1Score), strict=True
                )
            },
            CONFUSION_MATRIX: MulticlassConfusionMatrix(n),
        },
        prefix=f"{stage}/",
        compute_groups=False,
    )


def defined_scores(results: dict[str, torch.Tensor], prefix: str, class_names: Sequence[str]) -> dict:
    """``results`` without the per-class accuracy and F1 of a class with no images in the split, and its
    precision unless it was predicted: torchmetrics gives them 0, which reads as a class always missed
    (the notes' table says N/A). A class with images that is never predicted keeps precision 0, as in
    scikit-learn."""
    confusion = results[prefix + CONFUSION_MATRIX]
    absent, predicted = (confusion.sum(dim=1) == 0).tolist(), (confusion.sum(dim=0) > 0).tolist()
    left_out = set()
    for name, is_absent, is_predicted in zip(class_names, absent, predicted, strict=True):
        if is_absent:
            scores = ("class_acc", "class_f1") if is_predicted else PER_CLASS_SCORES
            left_out.update(f"{prefix}{score}/{name}" for score in scores)
    return {key: value for key, value in results.items() if key not in left_out}


def class_accuracy_table(confusion: torch.Tensor, class_names: Sequence[str]) -> str:
    """The notes' report: ``Test Accuracy of Shirt: 62% (620/1000)`` per class, then the overall line."""
    correct, total = confusion.diag().tolist(), confusion.sum(dim=1).tolist()
    lines = []
    for name, right, count in zip(class_names, correct, total, strict=True):
        if count:
            lines.append(f"Test Accuracy of {name:>5}: {100 * right // count:2d}% ({right:2d}/{count:2d})")
        else:
            lines.append(f"Test Accuracy of {name:>5}: N/A (no test images)")
    right, count = sum(correct), sum(total)
    overall = f"{100 * right // count:2d}%" if count else "N/A"
    lines.append(f"\nTest Accuracy (Overall): {overall} ({right}/{count})")
    return "\n".join(lines)
