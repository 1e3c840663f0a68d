"""Fashion-MNIST as a LightningDataModule, held in memory as tensors."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import TensorDataset
from torchvision.datasets import FashionMNIST

from fashion_lightning.data.augmentation import Augmentation
from fashion_lightning.data.device_batches import DeviceBatches
from fashion_lightning.data.files import DataError, ensure_files, load_split, raw_dir
from fashion_lightning.data.images import load_images
from fashion_lightning.errors import ConfigError


class FashionMNISTDataModule(LightningDataModule):
    """The official 60,000/10,000 split, with validation carved from the training images by a fixed seed.

    Each split is moved once, as uint8, to the device that trains, and batches are cut there
    (``DeviceBatches``). Training batches are augmented there too (``augment``), then every batch is
    normalised with the training set's mean and std (0.2860, 0.3530: pixel values scaled to [0, 1],
    measured over all 60,000 training images) in ``on_after_batch_transfer``.
    """

    classes = tuple(FashionMNIST.classes)
    num_classes = len(classes)
    dims = (1, 28, 28)
    mean, std = 0.2860, 0.3530

    def __init__(
        self,
        data_dir: str = "data",
        local_copy: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        split_seed: int = 0,
        shuffle_seed: int | None = None,
        augment: Augmentation = Augmentation(),
        download: bool = True,
        predict_images: str | list[str] | None = None,
    ) -> None:
        """
        Args:
            data_dir: where the files are kept (in ``FashionMNIST/raw/``, torchvision's layout).
            local_copy: a folder with the four official ``.gz`` files to copy from
                (else ``$FASHION_MNIST_DIR``).
            batch_size: training batch size.
            eval_batch_size: batch size for validation, test and predict (no gradients, so larger is faster).
            val_size: how many of the 60,000 training images are held out for validation.
            split_seed: seed of the train/validation split, independent of the training seed.
            shuffle_seed: seed of the training order (epoch ``e`` uses ``shuffle_seed + e``); by
                default the run's seed (``seed_everything``), shared by all DDP ranks.
            augment: random changes to training images, drawn per image on the training device.
            download: fall back to torchvision's download when no copy is found.
            predict_images: an image file or folder, or a list of them, for ``predict`` (any size, colour or
                format, see ``images.to_fashion_mnist``); by default ``predict`` runs on the test set.
        """
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value <= 0:
                raise ConfigError(f"data.{name} must be a positive number of images, got {value}")
        if val_size < 0:
            raise ConfigError(f"data.val_size must be 0 or more, got {val_size}")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.augment = augment
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None
        self.predict_set: TensorDataset | None = None
        self.predict_paths: list[str] = []  # what each predicted image is: a file, or "test image N"

    def prepare_data(self) -> None:
        ensure_files(self.hparams.data_dir, self.hparams.local_copy, self.hparams.download)

    def setup(self, stage: str) -> None:
        folder = raw_dir(self.hparams.data_dir)
        if stage in ("fit", "validate") and self.train_set is None:
            images, labels = load_split(folder, train=True)
            val_size = self.hparams.val_size
            if val_size >= len(images):
                raise ConfigError(
                    f"data.val_size={val_size} leaves no training images: the training set has {len(images)}"
                )
            split = torch.Generator().manual_seed(self.hparams.split_seed)
            order = torch.randperm(len(images), generator=split)
            self.val_set = self._dataset(images, labels, order[:val_size])
            self.train_set = self._dataset(images, labels, order[val_size:])
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self._dataset(*load_split(folder, train=False))
        if stage == "predict" and self.predict_set is None:
            self._setup_predict()

    def _setup_predict(self) -> None:
        if not self.hparams.predict_images:
            self.predict_set = self.test_set
            self.predict_paths = [f"test image {i}" for i in range(len(self.test_set))]
            return
        named = self.hparams.predict_images
        try:
            images, paths, skipped = load_images([named] if isinstance(named, str) else named)
        except FileNotFoundError as err:
            raise DataError(f"data.predict_images: {err}") from None
        for path, reason in skipped:
            rank_zero_warn(f"skipped {path}: {reason}")
        if not paths:
            raise DataError(
                f"data.predict_images={self.hparams.predict_images} holds no readable image "
                f"({len(skipped)} files skipped); give PNG or JPEG files, or folders of them"
            )
        unlabelled = torch.full((len(images),), -1, dtype=torch.long)
        self.predict_set = TensorDataset(images, unlabelled)
        self.predict_paths = [str(path) for path in paths]

    @staticmethod
    def _dataset(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None = None):
        if index is not None:
            images, labels = images[index], labels[index]
        return TensorDataset(images.unsqueeze(1).contiguous(), labels)

    def train_dataloader(self) -> DeviceBatches:
        batches = self._batches(self.train_set, self.batch_size, train=True)
        trainer = self.trainer
        if trainer is not None:
            # resuming from a checkpoint saved mid-epoch, the epoch's order (same seed, same epoch) goes
            # on after the batches the restored loop counts as done (0 for an epoch that starts afresh).
            # Asked lazily: a step-wise scheduler's estimated_stepping_batches makes this loader before
            # Lightning restores its loops.
            batches.batches_done = lambda: trainer.fit_loop.epoch_loop.batch_progress.current.ready
        return batches

    def val_dataloader(self) -> DeviceBatches:
        return self._batches(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> DeviceBatches:
        return self._batches(self.test_set, self.hparams.eval_batch_size)

    def predict_dataloader(self) -> DeviceBatches:
        return self._batches(self.predict_set, self.hparams.eval_batch_size)

    def _batches(self, dataset: TensorDataset | None, batch_size: int, train: bool = False) -> DeviceBatches:
        if dataset is None:
            raise RuntimeError("call setup() for this stage before asking for its dataloader")
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer else torch.device("cpu")
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        images, labels = (tensor.to(device) for tensor in dataset.tensors)
        seed = self._shuffle_seed() if train else 0
        return DeviceBatches.for_rank(images, labels, batch_size, rank, world_size, shuffle=train, seed=seed)

    def _shuffle_seed(self) -> int:
        if self.hparams.shuffle_seed is not None:
            return self.hparams.shuffle_seed
        seed = torch.initial_seed() % 2**63  # what seed_everything set
        return self.trainer.strategy.broadcast(seed) if self.trainer else seed

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # DeviceBatches cut every batch on the training device already; Lightning's generic transfer
        # would only walk the batch to find that out, at ~0.2 ms a step
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        if self.augment.enabled and self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return self.normalize(images), labels

    @classmethod
    def normalize(cls, images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> the network's input scale: ``(x / 255 - mean) / std``."""
        return images.float().div_(255).sub_(cls.mean).div_(cls.std)
