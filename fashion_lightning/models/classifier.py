"""The LightningModule that trains any of the networks on any image-classification data set."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection

from fashion_lightning.data.contract import InputContract
from fashion_lightning.errors import ConfigError, raised_inside
from fashion_lightning.models.metrics import (
    CONFUSION_MATRIX,
    class_accuracy_table,
    defined_scores,
    stage_metrics,
)
from fashion_lightning.models.nets import flat_size
from fashion_lightning.models.standardize import Standardize
from fashion_lightning.models.test_time_augmentation import TestTimeAugmentation
from fashion_lightning.random_states import RANDOM_STATES, random_states, set_random_states

TRAIN_TOTALS = "train_totals"  # a checkpoint's key for the epoch's running training sums
# the training images a layer that sets itself from the data sees: up to 2,048, fewer if they are large
FIT_TO_IMAGES_SAMPLE, FIT_TO_IMAGES_PIXELS = 2048, 1 << 24

# (in_channels, (height, width), num_classes) -> the network; in a config, a net's class and its own settings
NetFactory = Callable[[int, tuple[int, int], int], nn.Module]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step."""


class ImageClassifier(LightningModule):
    """Cross-entropy training of ``net``, with per-class metrics for validation and test.

    The model carries its ``InputContract`` (class names, image shape, per-channel mean and std) in
    its hyperparameters, so a checkpoint alone rebuilds it for test, predict, export and pictures. A
    first ``fit`` takes the contract from the data module and builds the net then
    (``configure_model``); a model loaded from a checkpoint is built at once. It takes images as the
    data stores them (uint8 ``[N, C, H, W]``) and normalises them itself (``standardize``).

    The optimizer and the learning-rate scheduler come from the config (``model.optimizer``,
    ``model.scheduler``), so any ``torch.optim`` class can be chosen without code.

    Args:
        net: the network's class and its own settings (``model.net``); it is called with the input's
            channels, (height, width) and number of classes. Required; it may be left out of a
            command only when a checkpoint's hyperparameters supply it (``predict --ckpt_path FILE``).
        input_contract: what the input is; left out, it is taken from the data module at ``fit``.
        optimizer: any ``torch.optim`` optimizer, given its settings in the config.
        scheduler: any ``torch.optim.lr_scheduler`` scheduler, or none for a constant rate.
        scheduler_interval: ``epoch`` steps the scheduler after every epoch; ``step`` after every
            batch, and builds it with ``total_steps`` = the run's number of optimizer steps, which is
            what torch's ``OneCycleLR`` needs.
        label_smoothing: spread this share of each training target over all classes (0 = plain
            cross-entropy). Validation and test losses stay plain cross-entropy, comparable across runs.
        channels_last: keep the net's weights and inputs in NHWC order, which oneDNN (CPU) and cuDNN
            convolutions run faster, most of all in bf16.
        test_time_augmentation: classify mirrored and moved copies of each image too, and average their
            probabilities, in validation, test and predict (never in training). A choice of the command
            that evaluates, not of the trained weights: the CLI takes it from the command, not from a
            checkpoint.
    """

    def __init__(
        self,
        net: NetFactory | None = None,
        input_contract: InputContract | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        test_time_augmentation: TestTimeAugmentation = TestTimeAugmentation(),
    ) -> None:
        super().__init__()
        if net is None:
            raise ConfigError(
                "model.net is not set: give a config (--config configs/dropout.yaml), a network "
                "(--model.net fashion_lightning.models.DropoutNet), or a checkpoint (--ckpt_path FILE)"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
        # Under the CLI this records the config of `net`, so a checkpoint rebuilds the same network.
        self.save_hyperparameters()
        self.make_net = net
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.test_time_augmentation = test_time_augmentation
        self.input_contract: InputContract | None = None
        self.net: nn.Module | None = None
        self.train_totals: dict = {}  # the epoch's running training sums, see _reset_train_totals
        self.restored_totals: dict | None = None  # those of a checkpoint saved mid-epoch, until training
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        # the latest confusion matrix of each stage ("val", "test"), drawn by viz.PictureLogger
        self.confusion: dict[str, torch.Tensor] = {}
        self.checkpoint_position: tuple[int, int] | None = None  # (epoch, step) of the loaded weights
        if input_contract is not None:
            self._build(InputContract.of(input_contract))

    def __deepcopy__(self, memo: dict) -> ImageClassifier:
        """Weight averaging (``EMAWeightAveraging``) deep-copies the model. The copy shares the net's,
        optimizer's and scheduler's factories: under LightningCLI they hold the CLI itself (through its
        checkpoint instantiator), trainer and data included, which would be copied too, or fail to be
        (the run lock's open file)."""
        for factory in (self.make_net, self.optimizer, self.scheduler):
            memo[id(factory)] = factory
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return copied

    def _build(self, contract: InputContract) -> None:
        """The net, the normalisation and the per-class metrics, for images as ``contract`` describes."""
        self.test_time_augmentation.check_fits(contract.size)
        self.input_contract = contract
        self.hparams["input_contract"] = contract.to_dict()  # into the checkpoint, as plain values
        self.net = self._checked_net(contract).to(memory_format=self.memory_format)
        self.standardize = Standardize(contract.mean, contract.std)
        self.val_metrics = stage_metrics(contract.classes, "val")
        self.test_metrics = stage_metrics(contract.classes, "test")

    def _checked_net(self, contract: InputContract) -> nn.Module:
        """``make_net``'s net, refused in one line unless it takes the three arguments and gives a
        score per class. The check is one blank forward pass, which also sizes ``nn.Lazy*`` layers:
        nothing can move or train them before."""
        classes = len(contract.classes)
        try:
            net = self.make_net(contract.channels, contract.size, classes)
        except TypeError as err:
            if not re.search(r"positional argument|unexpected keyword|required .*argument", str(err)):
                raise
            raise ConfigError(
                f"model.net: {err}. A net takes (in_channels, image_size, num_classes) as its first "
                "three arguments (fashion_lightning/models/nets.py)"
            ) from None
        except ValueError as err:
            if not raised_inside(err, torch):  # a net's own mistake: a bug to see with its traceback
                raise
            # torch's own check of a layer's setting, e.g. a dropout of 1.5
            raise ConfigError(f"model.net: {err}; fix model.net.init_args in the config") from None
        name = type(net).__name__
        if not any(parameter.requires_grad for parameter in net.parameters()):
            raise ConfigError(f"model.net: {name} has no trainable parameters; give a net with some")
        scores = flat_size(net, contract.channels, contract.size)
        if scores != classes:
            raise ConfigError(
                f"model.net: {name} gives {scores} numbers for an image, but the data has {classes} "
                f"classes: its output must be [N, num_classes] scores (its last layer's out_features)"
            )
        return net

    def configure_model(self) -> None:
        # a first fit: the data module has measured the training split in its setup, which runs first
        if self.net is not None:
            return
        contract = getattr(self.trainer.datamodule, "input_contract", None)
        if contract is None:
            raise ConfigError(
                "the model takes its input's classes, shape and normalisation from the data module "
                "(its input_contract after setup('fit')): train with a data module, or give "
                "model.input_contract"
            )
        self._build(contract)
        self._fit_net_to_images()

    def _fit_net_to_images(self) -> None:
        """Layers that set themselves from the data (``fit_to_images``, as ``PatchWhitening``) see a
        sample of the training images, standardised as the net gets them, before a new run's first step:
        here, before a resumed run's checkpoint is loaded over them and before DDP copies rank 0's
        weights to the other ranks (whose samples are the same anyway)."""
        layers = [m for m in self.net.modules() if callable(getattr(m, "fit_to_images", None))]
        if not layers:
            return
        sample = getattr(self.trainer.datamodule, "training_sample", None)
        if sample is None:
            raise ConfigError(
                f"model.net: {type(layers[0]).__name__} sets itself from training images before the first "
                "step, which this data module cannot give (training_sample): train with ImageDataModule, "
                "or without that layer (ConvBNNet: whitening false)"
            )
        contract = self.input_contract
        count = min(
            FIT_TO_IMAGES_SAMPLE,
            max(1, FIT_TO_IMAGES_PIXELS // (contract.channels * math.prod(contract.size))),
        )
        # Lightning builds the model on the training device (a GPU, say); the data module's images are here
        images = self.standardize(sample(count).to(self.standardize.mean.device))
        for layer in layers:
            layer.fit_to_images(images)

    @property
    def class_names(self) -> list[str]:
        return list(self.input_contract.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores for images as the data stores them (uint8), or as floats in [0, 1]."""
        return self.net(self.standardize(images.contiguous(memory_format=self.memory_format)))

    def evaluate(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores as validation, test and predict take them: ``forward``'s, or with test-time
        augmentation the log of the views' mean probabilities."""
        return self.test_time_augmentation(self, images)

    def model_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, ...]:
        images, labels = batch
        logits = self(images)
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing), logits, labels

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, logits, labels = self.model_step(batch, self.hparams.label_smoothing)
        # The loss read once as a number, for the check and the epoch's sum: fewer tensor operations than
        # checking and summing on the device, which cost a small net's step more than the reading does
        # (BENCHMARKS.md); the check needs the number on the host either way.
        value = loss.item()
        non_finite = not math.isfinite(value)  # stop before this loss changes the weights or a checkpoint
        if self.trainer.world_size > 1:  # all ranks stop together, or the others would wait forever
            non_finite = self.trainer.strategy.reduce_boolean_decision(non_finite, all=False)
        if non_finite:
            raise NonFiniteLossError(
                f"the training loss is {value} at step {self.global_step} "
                f"(epoch {self.current_epoch}); "
                "training stopped before that step changed the weights, and the checkpoints written before "
                "it are kept. Lower the learning rate (model.optimizer, model.scheduler) or check the data"
            )
        totals = self.train_totals
        images = labels.shape[0]
        totals["loss"] += value * images
        totals["correct"].add_((logits.argmax(dim=1) == labels).sum())
        totals["images"] += images
        totals["batches"] = batch_idx + 1
        if self._logger_writes_this_step():
            self.log("train/loss_step", value, prog_bar=True)
        return loss

    def _logger_writes_this_step(self) -> bool:
        """A ``self.log`` call costs about as much as a whole step of a small net on CPU, so the
        per-step loss is logged only on the steps whose metrics Lightning writes (every
        ``trainer.log_every_n_steps``); the progress bar shows the latest of them."""
        every = self.trainer.log_every_n_steps
        return every > 0 and (self.global_step + 1) % every == 0

    def on_fit_start(self) -> None:
        # a model validated or tested before, in inference mode, holds metric states made there, which
        # a fit's validation (no-grad, not inference mode) cannot update: they are made again here
        for metric in (self.val_loss, self.val_metrics):
            metric.reset()

    def on_train_start(self) -> None:
        # the sanity check's few batches must not count towards the best accuracy
        self.val_acc_best.reset()
        self._reset_train_totals()  # here, not at epoch start: a run resumed mid-epoch starts no epoch
        restored, self.restored_totals = self.restored_totals, None
        # only a resume goes on with a checkpoint's sums (it loads them again); a model validated or
        # loaded from a checkpoint saved mid-epoch, then trained afresh, starts from nothing
        if restored is not None and self.trainer.ckpt_path is not None:
            # the count of right answers stays a tensor on the training device
            self.train_totals["correct"] += restored.pop("correct")
            self.train_totals.update(restored)
        self._check_schedule_length()
        self.checkpoint_position = None  # the weights move on: a test after this fit is at its end

    def _check_schedule_length(self) -> None:
        """A step-wise schedule restored from a checkpoint keeps the length it was built with; if this
        run has another number of steps (a larger max_epochs, another batch size), OneCycleLR would
        fail midway, so say so before the first step."""
        if self.hparams.scheduler_interval != "step":
            return
        planned = int(self.trainer.estimated_stepping_batches)
        for config in self.trainer.lr_scheduler_configs:
            total = getattr(config.scheduler, "total_steps", None)
            if total is not None and total != planned:
                raise ConfigError(
                    f"the checkpoint's {type(config.scheduler).__name__} schedule spans {total} steps, but "
                    f"this run has {planned} (trainer.max_epochs, data.batch_size or "
                    "trainer.limit_train_batches differ from the run that wrote it). A schedule cannot be "
                    "stretched midway: resume with the settings it was trained with, or start a new run"
                )

    def _reset_train_totals(self) -> None:
        # The epoch's training loss and accuracy as running sums, cheaper per step than torchmetrics' two
        # updates (BENCHMARKS.md); the count of right answers stays on the training device, where it is
        # made. A plain tensor, not a buffer: DDP would overwrite buffers with rank 0's before every forward.
        self.train_totals = {
            "loss": 0.0,  # sum of loss x batch size
            "correct": torch.zeros((), dtype=torch.long, device=self.device),
            "images": 0,
            "batches": 0,  # the epoch's batches trained, this one's included
        }

    def on_train_epoch_end(self) -> None:
        totals = self.train_totals
        correct = totals["correct"].float()
        loss, images = correct.new_tensor(totals["loss"]), correct.new_tensor(totals["images"])
        sums = torch.stack((loss, correct, images))
        loss_sum, correct, images = self.trainer.strategy.reduce(sums, reduce_op="sum")  # over DDP ranks
        if images > 0:
            self._log_computed({"train/loss": loss_sum / images, "train/acc": correct / images})
        self._reset_train_totals()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._update_stage(batch, self.val_loss, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        results = self._log_stage(self.val_metrics, self.val_loss)
        if self.trainer.sanity_checking:
            return
        if self.trainer.state.fn != TrainerFn.FITTING:
            return  # a validate run scores one checkpoint: no best over epochs, no run to list
        self.val_acc_best.update(results["val/acc"])
        best = self.val_acc_best.compute()
        self._log_computed({"val/acc_best": best, "hp_metric": best})
        if self.current_epoch == 0 and isinstance(self.logger, TensorBoardLogger):
            # list the run in TensorBoard's HParams tab against a real metric (Lightning's default is -1),
            # with the model's and the data's settings named as the CLI names them (model/..., data/...)
            settings = {
                "model": dict(self.hparams),
                "data": dict(getattr(self.trainer.datamodule, "hparams", {})),
            }
            self.logger.log_hyperparams(settings, {"hp_metric": best})

    def test_step(self, batch, batch_idx: int) -> None:
        self._update_stage(batch, self.test_loss, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        results = self._log_stage(self.test_metrics, self.test_loss)
        if self.trainer.is_global_zero:
            print(f"\nTest Loss: {results['test/loss']:.6f}\n")
            print(class_accuracy_table(results["test/" + CONFUSION_MATRIX], self.class_names))

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, _ = batch
        return self.evaluate(images).softmax(dim=1)

    def _update_stage(self, batch, loss_metric: MeanMetric, metrics: MetricCollection) -> None:
        images, labels = batch
        logits = self.evaluate(images)
        loss_metric.update(F.cross_entropy(logits, labels), len(labels))
        metrics.update(logits, labels)

    def _log_stage(self, metrics: MetricCollection, loss: MeanMetric) -> dict[str, torch.Tensor]:
        """compute -> log plain scalars -> reset (torchmetrics' pattern for per-class metrics)."""
        prefix = metrics.prefix
        results = {f"{prefix}loss": loss.compute(), **metrics.compute()}
        metrics.reset()
        loss.reset()
        confusion = results[prefix + CONFUSION_MATRIX]
        logged = defined_scores(results, prefix, self.class_names)
        self._log_computed({k: v for k, v in logged.items() if k != prefix + CONFUSION_MATRIX})
        if not self.trainer.sanity_checking:
            self.confusion[prefix.rstrip("/")] = confusion
        return results

    def _log_computed(self, values: dict[str, torch.Tensor]) -> None:
        # torchmetrics' compute() has already gathered every rank's data, so under DDP sync_dist only
        # averages identical copies; it keeps the values correct and Lightning from warning.
        if self.trainer.state.fn != TrainerFn.FITTING and self.checkpoint_position is not None:
            # test/validate of a checkpoint log into its run's curves at its place, not at step 0: a test
            # where Lightning logs one right after the fit, at the checkpoint's global step; a validation
            # on the fit's validation that saved the checkpoint, which Lightning logs before it counts
            # the step just taken
            epoch, step = self.checkpoint_position
            if self.trainer.state.fn == TrainerFn.VALIDATING:
                step = max(step - 1, 0)
            values = {**values, "epoch": float(epoch), "step": float(step)}
        self.log_dict(values, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # dropout and augmentation draw from the global generators: a run resumed from this checkpoint
        # must draw the numbers the interrupted run would have drawn next
        checkpoint[RANDOM_STATES] = random_states()
        # and so must the epoch's running training sums, for the epoch's train/loss and train/acc, if it
        # goes on from the middle of the epoch (at its last batch, it goes on with the next epoch); under
        # DDP only rank 0's would be saved, so there a resumed epoch's figures count from the resume
        totals = self.train_totals
        mid_epoch = 0 < totals.get("batches", 0) < self.trainer.num_training_batches
        if mid_epoch and self.trainer.world_size == 1:
            checkpoint[TRAIN_TOTALS] = {**totals, "correct": int(totals["correct"])}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # test/validate do not restore the loop's epoch and step; pictures are drawn at the checkpoint's
        self.checkpoint_position = (checkpoint["epoch"], checkpoint["global_step"])
        self.restored_totals = checkpoint.get(TRAIN_TOTALS)
        if RANDOM_STATES in checkpoint:
            set_random_states(checkpoint[RANDOM_STATES])

    def configure_optimizers(self):
        try:
            optimizer = self.optimizer(self.parameters())
        except ValueError as err:  # torch's own check of the settings, e.g. "Invalid learning rate: -1"
            raise ConfigError(f"model.optimizer: {err}; fix model.optimizer.init_args in the config") from err
        if self.scheduler is None:
            return optimizer
        interval = self.hparams.scheduler_interval
        try:
            if interval == "epoch":
                scheduler = self.scheduler(optimizer)
            else:
                total_steps = int(self.trainer.estimated_stepping_batches)
                try:
                    scheduler = self.scheduler(optimizer, total_steps=total_steps)
                except TypeError as err:
                    raise ConfigError(
                        f"model.scheduler_interval=step builds the scheduler with total_steps="
                        f"{total_steps}, which this scheduler does not take ({err}). Use "
                        "torch.optim.lr_scheduler.OneCycleLR, or scheduler_interval: epoch."
                    ) from err
        except ConfigError:
            raise
        except ValueError as err:  # the scheduler's own checks, e.g. OneCycleLR's pct_start
            raise ConfigError(f"model.scheduler: {err}; fix model.scheduler.init_args in the config") from err
        # the scheduler sets the rate (OneCycleLR from max_lr): the optimizer's check of lr came before it
        bad = [rate for group in optimizer.param_groups if not 0 <= (rate := float(group["lr"])) < math.inf]
        if bad:
            raise ConfigError(
                f"model.scheduler: it sets the learning rate to {bad[0]:g}, which must be 0 or more; fix "
                "model.scheduler.init_args in the config (OneCycleLR's max_lr)"
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": "val/loss"},
        }
