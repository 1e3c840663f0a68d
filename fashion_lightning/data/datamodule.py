"""Fashion-MNIST as a LightningDataModule, held in memory as tensors."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets import FashionMNIST

from fashion_lightning.data.files import ensure_files, load_split, raw_dir


class BatchedTensorDataset(TensorDataset):
    """A TensorDataset that hands the DataLoader a whole batch with one indexing operation.

    The DataLoader (and Lightning's DistributedSampler under DDP) still chooses the indices; only
    the per-sample ``__getitem__`` and collate calls are skipped.
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        return tuple(tensor[index] for tensor in self.tensors)


def _as_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Collate function for ``BatchedTensorDataset``: the batch is already stacked."""
    return batch


class FashionMNISTDataModule(LightningDataModule):
    """The official 60,000/10,000 split, with validation carved from the training images by a fixed seed.

    Images travel as uint8 and are normalised after they reach the training device
    (``on_after_batch_transfer``), with the training set's mean and std (0.2860, 0.3530: pixel values
    scaled to [0, 1], measured over all 60,000 training images).
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
        download: bool = True,
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
            download: fall back to torchvision's download when no copy is found.
        """
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value <= 0:
                raise ValueError(f"data.{name} must be a positive number of images, got {value}")
        if val_size < 0:
            raise ValueError(f"data.val_size must be 0 or more, got {val_size}")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.train_set: BatchedTensorDataset | None = None
        self.val_set: BatchedTensorDataset | None = None
        self.test_set: BatchedTensorDataset | None = None

    def prepare_data(self) -> None:
        ensure_files(self.hparams.data_dir, self.hparams.local_copy, self.hparams.download)

    def setup(self, stage: str) -> None:
        folder = raw_dir(self.hparams.data_dir)
        if stage in ("fit", "validate") and self.train_set is None:
            images, labels = load_split(folder, train=True)
            val_size = self.hparams.val_size
            if val_size >= len(images):
                raise ValueError(
                    f"data.val_size={val_size} leaves no training images: the training set has {len(images)}"
                )
            split = torch.Generator().manual_seed(self.hparams.split_seed)
            order = torch.randperm(len(images), generator=split)
            self.val_set = self._dataset(images, labels, order[:val_size])
            self.train_set = self._dataset(images, labels, order[val_size:])
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self._dataset(*load_split(folder, train=False))

    @staticmethod
    def _dataset(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None = None):
        if index is not None:
            images, labels = images[index], labels[index]
        return BatchedTensorDataset(images.unsqueeze(1).contiguous(), labels)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.hparams.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.hparams.eval_batch_size)

    @staticmethod
    def _loader(dataset: BatchedTensorDataset | None, batch_size: int, shuffle: bool = False) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() for this stage before asking for its dataloader")
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=_as_batch)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        return self.normalize(images), labels

    @classmethod
    def normalize(cls, images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> the network's input scale: ``(x / 255 - mean) / std``."""
        return images.float().div_(255).sub_(cls.mean).div_(cls.std)
