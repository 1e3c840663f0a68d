"""The stage metrics: what is logged for a class that a split lacks, and the notes' table."""

from __future__ import annotations

import torch

from fashion_lightning.models.metrics import (
    PER_CLASS_SCORES,
    class_accuracy_table,
    defined_scores,
    stage_metrics,
)
from fashion_lightning.viz.figures import class_accuracy

CLASSES = ["cat", "dog", "fox"]


def test_a_class_without_images_in_the_split_has_no_scores_logged_rather_than_zeros():
    metrics = stage_metrics(CLASSES, "val")
    # no fox among the images, one predicted; dogs are there but never predicted
    labels = torch.tensor([0, 0, 1, 1])
    scores = torch.tensor([[5.0, 0, 0], [5, 0, 0], [5, 0, 0], [0, 0, 5]])
    metrics.update(scores, labels)
    results = metrics.compute()
    assert results["val/class_acc/fox"] == 0, "torchmetrics' own value, which reads as always missed"

    logged = defined_scores(results, "val/", CLASSES)
    assert set(results) - set(logged) == {"val/class_acc/fox", "val/class_f1/fox"}
    assert logged["val/class_precision/fox"] == 0, "predicted once, wrongly: a precision of 0 is true"
    assert logged["val/class_acc/dog"] == 0 and logged["val/class_f1/dog"] == 0, "dogs were all missed"
    assert logged["val/class_precision/dog"] == 0, "never predicted: 0, as in scikit-learn"
    assert logged["val/class_acc/cat"] == 1 and logged["val/class_precision/cat"] == 2 / 3
    assert logged["val/acc"] == 0.5
    assert "Test Accuracy of   fox: N/A (no test images)" in class_accuracy_table(
        results["val/confusion_matrix"], CLASSES
    )


def test_a_class_neither_in_the_split_nor_predicted_has_no_precision_either():
    confusion = torch.tensor([[2, 0, 0], [1, 1, 0], [0, 0, 0]])
    results = {"val/confusion_matrix": confusion} | {
        f"val/{score}/{name}": torch.tensor(0.0) for score in PER_CLASS_SCORES for name in CLASSES
    }
    left_out = set(results) - set(defined_scores(results, "val/", CLASSES))
    assert left_out == {f"val/{score}/fox" for score in PER_CLASS_SCORES}


def test_the_per_class_accuracy_figure_says_n_a_for_a_class_without_images():
    confusion = torch.tensor([[2, 0, 0], [2, 0, 0], [0, 0, 0]])
    labels = [text.get_text() for text in class_accuracy(confusion, CLASSES, "val").axes[0].texts]
    assert labels == ["100.0%", "0.0%", "N/A (no images)"]
