"""The notes' pictures in TensorBoard, drawn during a run by a callback."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from fashion_lightning.errors import ConfigError
from fashion_lightning.models import ImageClassifier
from fashion_lightning.viz import figures
from fashion_lightning.viz.conv_stages import ConvStages, first_conv, normalises_before_relu


class PictureLogger(Callback):
    """Figures in TensorBoard's Images tab, next to the loss and accuracy curves (which are scalars).

    - at the start of training: ``data/train_images``, a grid of training images with their class
      names, and ``data/train_images_augmented``, the same images as augmentation hands them to the
      network (when the data module augments);
    - after validation: ``val/predictions`` (sample images titled "predicted (true)", green when right,
      red when wrong), ``val/confusion_matrix``, ``val/class_accuracy`` (a bar per class), and
      ``filters/first_conv``: the first convolution's filters and their feature maps for one
      validation image, before ReLU, after ReLU and after 2x2 max-pooling;
    - after testing: the same three ``test/`` pictures.

    Drawing costs a noticeable share of a small net's epoch on a CPU, so it happens every
    ``every_n_epochs`` epochs and after the last validation of a fit. Only rank 0 draws; without a
    TensorBoard logger nothing is drawn. It reads its images (grayscale or RGB, any size) from
    ``trainer.datamodule``'s splits (``train_set``, ``val_set``, ``test_set``, each with
    ``first(count)``), and the class names and normalisation from the model's ``input_contract``;
    with a data module that has no such split (a user's own, or none), the pictures of its images are
    left out and the confusion pictures still drawn. A test or validate run draws at the step of the
    checkpoint it loaded.

    Args:
        every_n_epochs: draw the validation pictures every this many epochs (and for the last
            validation); 0 turns all pictures off.
        num_images: images in the training and prediction grids (rows of 10, as in the notes).
        sample_index: the validation image whose feature maps are shown.
    """

    def __init__(self, every_n_epochs: int = 5, num_images: int = 20, sample_index: int = 0) -> None:
        if every_n_epochs < 0 or num_images <= 0 or sample_index < 0:
            raise ConfigError(
                "pictures: every_n_epochs must be 0 (off) or more, num_images positive and sample_index "
                f"0 or more; got {every_n_epochs}, {num_images}, {sample_index}"
            )
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.sample_index = sample_index
        self._undrawn_validation: tuple[int, int] | None = None  # (epoch, step) of a validation not drawn

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = self._writer(trainer)
        if writer is None:
            return
        images, labels = first_images(trainer, "train_set", self.num_images)
        if not len(images):
            return
        names = pl_module.class_names
        pictures = {
            "data/train_images": figures.labelled_batch(images, labels, names, suptitle="training images")
        }
        augment = getattr(trainer.datamodule, "augment", None)
        if augment is not None and augment.enabled:
            with torch.random.fork_rng(devices=[]):  # leave the training's random stream as it was
                augmented = augment(images)
            title = "the same images, augmented"
            pictures["data/train_images_augmented"] = figures.labelled_batch(
                augmented, labels, names, suptitle=title
            )
        self._add(writer, pictures, trainer.global_step)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._writer(trainer) is None:
            return
        fitting = trainer.state.fn == TrainerFn.FITTING  # else `validate`: draw every time
        epoch, step = position(trainer, pl_module)
        if not fitting or (epoch + 1) % self.every_n_epochs == 0:
            self._draw(trainer, pl_module, "val", epoch, step)
            self._undrawn_validation = None
        else:
            self._undrawn_validation = (epoch, step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._undrawn_validation is not None:  # the last validation of the fit is always drawn
            self._draw(trainer, pl_module, "val", *self._undrawn_validation)
            self._undrawn_validation = None

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._writer(trainer) is not None:
            self._draw(trainer, pl_module, "test", *position(trainer, pl_module))

    def _draw(self, trainer: Trainer, pl_module: LightningModule, stage: str, epoch: int, step: int) -> None:
        names, pictures = pl_module.class_names, {}
        images, labels = first_images(trainer, f"{stage}_set", max(self.num_images, self.sample_index + 1))
        if len(images):
            shown, shown_labels = images[: self.num_images], labels[: self.num_images]
            precision = trainer.precision_plugin  # bf16 autocast, say: the answers the metrics counted
            with precision.test_step_context() if stage == "test" else precision.val_step_context():
                predicted = predict(pl_module, shown).argmax(dim=1)
            pictures[f"{stage}/predictions"] = figures.predictions_grid(shown, predicted, shown_labels, names)
        confusion = pl_module.confusion.get(stage)
        if confusion is not None:
            title = f"{stage}, epoch {epoch}"
            pictures[f"{stage}/confusion_matrix"] = figures.confusion_matrix(confusion, names, title)
            pictures[f"{stage}/class_accuracy"] = figures.class_accuracy(confusion, names, title)
        if stage == "val" and len(images) and first_conv(pl_module.net) is not None:
            sample = images[min(self.sample_index, len(images) - 1)]
            pictures["filters/first_conv"] = first_layer_figure(pl_module, sample)
        self._add(self._writer(trainer), pictures, step)

    def _writer(self, trainer: Trainer) -> SummaryWriter | None:
        if self.every_n_epochs == 0 or not trainer.is_global_zero:
            return None
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    @staticmethod
    def _add(writer: SummaryWriter, pictures: dict[str, Figure], step: int) -> None:
        for tag, figure in pictures.items():
            writer.add_figure(tag, figure, global_step=step)  # renders, then closes the figure


def first_images(trainer: Trainer, split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` images and labels of the data module's ``split`` (``train_set``, ...); none
    when there is no data module or it has no such split with ``first(count)``."""
    dataset = getattr(trainer.datamodule, split, None)
    if not callable(getattr(dataset, "first", None)):
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return dataset.first(count)


def position(trainer: Trainer, pl_module: LightningModule) -> tuple[int, int]:
    """(epoch, global step) of the weights: the loop's own while fitting; the loaded checkpoint's in a
    test or validate run, whose loop counters start at 0."""
    if trainer.state.fn != TrainerFn.FITTING and pl_module.checkpoint_position is not None:
        return pl_module.checkpoint_position
    return trainer.current_epoch, trainer.global_step


@torch.no_grad()
def predict(model: ImageClassifier, inputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities as ``test`` and ``predict`` compute them (with the model's test-time views), in
    eval mode (dropout off, batch-norm statistics fixed); the mode is restored. So a picture's answers
    and accuracy are those the commands report."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return model.evaluate(inputs.to(device)).float().softmax(dim=1).cpu()
    finally:
        model.train(was_training)


@torch.no_grad()
def first_layer_figure(model: ImageClassifier, image: torch.Tensor) -> Figure:
    """The first convolution's filters, and its feature maps for ``image`` (uint8 ``[C, H, W]``)."""
    net = model.net
    conv = first_conv(net)
    if conv is None:
        raise ValueError(f"{type(net).__name__} has no Conv2d layer, so it has no filters to show")
    inputs = model.standardize(image[None].to(conv.weight.device)).to(conv.weight.dtype)
    stages = ConvStages(conv)(inputs)
    kind = "learned" if conv.weight.requires_grad else "fixed"  # PatchWhitening's are set from the data
    title = f"first convolution of {type(net).__name__}: {kind} filters and feature maps"
    if normalises_before_relu(net, conv):
        name = type(net).__name__
        title += f"\n(ReLU and max-pool applied to the convolution as in the notes; {name} normalises first)"
    return figures.conv_stages(image, conv.weight, stages, title)
