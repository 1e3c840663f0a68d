from fashion_lightning.models.classifier import FashionClassifier
from fashion_lightning.models.nets import BaselineNet, DropoutNet

__all__ = ["BaselineNet", "DropoutNet", "FashionClassifier"]
