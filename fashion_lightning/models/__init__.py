from fashion_lightning.models.classifier import FashionClassifier
from fashion_lightning.models.nets import BaselineNet, ConvBNNet, DropoutNet

__all__ = ["BaselineNet", "ConvBNNet", "DropoutNet", "FashionClassifier"]
