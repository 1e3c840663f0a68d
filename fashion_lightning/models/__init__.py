"""Networks (plain ``nn.Module``s, ``nets``) and the LightningModule that trains them (``classifier``)."""

from fashion_lightning.models.classifier import ImageClassifier, NetFactory
from fashion_lightning.models.nets import BaselineNet, ConvBNNet, DropoutNet

__all__ = ["BaselineNet", "ConvBNNet", "DropoutNet", "ImageClassifier", "NetFactory"]
