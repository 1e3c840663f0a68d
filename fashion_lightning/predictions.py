"""``predict``'s output: a CSV of class probabilities per image, and a short summary."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from fashion_lightning.checkpoint_io import replaced_whole, writable_folder
from fashion_lightning.errors import ConfigError

COLUMNS = ("path", "predicted", "probability", "second", "second_probability", "third", "third_probability")


class PredictionWriter(BasePredictionWriter):
    """Writes one CSV row per predicted image: what it is (a file, or ``test image N``), the predicted
    class and its probability, and the next two classes with theirs; for the test set also the true
    class. Then prints how many images went to each class (and the accuracy, when labels are known).

    Args:
        output: the CSV file to write; its folder is made if needed.
    """

    def __init__(self, output: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.output = Path(output)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.world_size > 1:
            raise ConfigError(
                "trainer.devices: predict writes one CSV from one process: run it with --trainer.devices 1 "
                "(it takes seconds even for the 10,000 test images)"
            )
        # refused before the images are classified, not after
        if self.output.is_dir():
            raise ConfigError(
                f"predictions.output: {self.output} is a folder; give a file in it, "
                f"e.g. {self.output / 'predictions.csv'}"
            )
        if self.output.exists() and not _is_predictions_csv(self.output):  # a checkpoint, a photo, ...
            raise ConfigError(
                f"predictions.output: {self.output} exists and is no earlier predictions CSV (its first "
                "line is not predict's header): give another file, or remove that one first"
            )
        writable_folder(self.output.parent, "predictions.output")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        probabilities = torch.cat(predictions).float().cpu()
        datamodule = trainer.datamodule
        count = len(probabilities)  # fewer than all with trainer.limit_predict_batches or fast_dev_run
        labels = datamodule.predict_set.labels[:count]
        labelled = bool((labels >= 0).all())
        names = pl_module.class_names
        top = probabilities.topk(min(3, len(names)), dim=1)  # a two-class model has no third
        rows = []
        for path, classes, values, label in zip(
            datamodule.predict_names[:count],
            top.indices.tolist(),
            top.values.tolist(),
            labels.tolist(),
            strict=True,
        ):
            row = [path] + [
                item for c, v in zip(classes, values, strict=True) for item in (names[c], f"{v:.4f}")
            ]
            rows.append(row + ([names[label]] if labelled else []))
        columns = COLUMNS[: 1 + 2 * top.indices.shape[1]]
        self._write(columns + (("true",) if labelled else ()), rows)
        self._summary(top.indices[:, 0], labels if labelled else None, names)

    def _write(self, header: tuple[str, ...], rows: list[list[str]]) -> None:
        with (
            replaced_whole(self.output) as partial,
            partial.open("w", newline="", errors="surrogateescape") as file,
        ):  # names as the file system has them
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(rows)

    def _summary(self, predicted: torch.Tensor, labels: torch.Tensor | None, names: list[str]) -> None:
        counts = Counter(names[c] for c in predicted.tolist())
        images = "image" if len(predicted) == 1 else "images"
        print(f"\nPredicted {len(predicted)} {images}; wrote {self.output}")
        for name, count in counts.most_common():
            print(f"  {name:>12}: {count}")
        if labels is not None:
            right = int((predicted == labels).sum())
            print(f"Accuracy: {right / len(labels):.2%} ({right}/{len(labels)})")


def _is_predictions_csv(path: Path) -> bool:
    """Whether ``path`` begins as the CSV that predict writes."""
    header = ",".join(COLUMNS[:3]).encode()
    try:
        with path.open("rb") as file:
            return file.read(len(header)) == header
    except OSError:
        return False
