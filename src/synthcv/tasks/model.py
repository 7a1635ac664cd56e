"""A small CNN classifier that trains in seconds on a CPU yet is not a toy.

Two conv blocks (conv-BN-ReLU ×2, then pool) and a small MLP head; ~0.3 M parameters at
``width=32``. BatchNorm makes it robust to the brightness/contrast gap between synthetic and
real images; global structure is kept (no global pooling) because digit identity depends on
where strokes are. Any input size works (adaptive pooling to 7×7 before the head).
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Image classifier: (N, C, H, W) float in [0, 1] → (N, num_classes) logits."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, width: int = 32, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.features = nn.Sequential(
            _block(in_channels, width), _block(width, 2 * width), nn.AdaptiveAvgPool2d(7)
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * width * 49, 4 * width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre inputs around 0 so the first conv sees symmetric data whatever the source.
        return self.head(self.features(x - 0.5))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate hidden layer (N, 4×width): the feature space ``synthcv compare``
        measures distributions in."""
        return self.head[:-2](self.features(x - 0.5))


def build_model(num_classes: int, in_channels: int = 1, **kwargs: object) -> SmallCNN:
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
