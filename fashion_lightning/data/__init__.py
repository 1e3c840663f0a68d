from fashion_lightning.data.augmentation import Augmentation
from fashion_lightning.data.datamodule import FashionMNISTDataModule
from fashion_lightning.data.device_batches import DeviceBatches
from fashion_lightning.data.files import DataError

__all__ = ["Augmentation", "DataError", "DeviceBatches", "FashionMNISTDataModule"]
