"""Data sets: a source of images (``source``, ``mnist_family``, ``image_folder``) and the data module that
batches, augments and measures them (``datamodule``)."""

from fashion_lightning.data.augmentation import Augmentation
from fashion_lightning.data.batches import DeviceBatches, EpochBatches, StreamedBatches
from fashion_lightning.data.contract import InputContract
from fashion_lightning.data.datamodule import ImageDataModule
from fashion_lightning.data.image_folder import ImageFolder
from fashion_lightning.data.mnist_family import KMNIST, MNIST, FashionMNIST
from fashion_lightning.data.source import DataError, ImageSource, LabelledImages

__all__ = [
    "KMNIST",
    "MNIST",
    "Augmentation",
    "DataError",
    "DeviceBatches",
    "EpochBatches",
    "FashionMNIST",
    "ImageDataModule",
    "ImageFolder",
    "ImageSource",
    "InputContract",
    "LabelledImages",
    "StreamedBatches",
]
