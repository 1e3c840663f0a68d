from fashion_lightning.data.datamodule import FashionMNISTDataModule
from fashion_lightning.data.files import DataError

__all__ = ["DataError", "FashionMNISTDataModule"]
