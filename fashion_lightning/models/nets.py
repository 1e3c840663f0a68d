"""The two networks of the course notes, as plain ``nn.Module``s (the LightningModule trains either)."""

from __future__ import annotations

import torch
from torch import nn


def notes_convolutions() -> nn.Sequential:
    """The two conv-ReLU-pool stages both nets share: 1x28x28 -> 10x13x13 -> 20x5x5, flattened to 500."""
    return nn.Sequential(
        nn.Conv2d(1, 10, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 28 -> 26 -> 13
        nn.Conv2d(10, 20, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 13 -> 11 -> 5
        nn.Flatten(),
    )


class BaselineNet(nn.Module):
    """conv(1->10, 3x3) - pool - conv(10->20, 3x3) - pool - linear(500->10).

    ``relu_logits=True`` reproduces the notes' mistake of a ReLU on the class scores: every class
    whose score goes negative for all inputs gets zero gradient and is never predicted again (the
    notes ended with Pullover and Shirt at 0% and 74% overall).
    """

    def __init__(self, num_classes: int = 10, relu_logits: bool = False) -> None:
        super().__init__()
        self.features = notes_convolutions()
        self.classifier = nn.Linear(20 * 5 * 5, num_classes)
        self.relu_logits = relu_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.features(x))
        return torch.relu(logits) if self.relu_logits else logits


class DropoutNet(nn.Module):
    """The notes' improved net: the same convolutions, then linear(500->50)-ReLU-dropout-linear(50->10)."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.4) -> None:
        super().__init__()
        self.features = notes_convolutions()
        self.classifier = nn.Sequential(
            nn.Linear(20 * 5 * 5, 50),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(50, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
