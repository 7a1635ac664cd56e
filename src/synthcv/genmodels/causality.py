"""Autoregressive causality by autograd, and receptive-field pictures.

The gradient of output dimension i (all its head parameters) with respect to input dimension j
must be exactly zero for every j >= i in raster/R->G->B order; any non-zero is a leak of the
future into the past, which would make the reported likelihood a lie.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthcv.genmodels.base import AutoregressiveModel, GenerativeModel


@dataclass
class CausalityReport:
    """``depends[i, j]``: output dim i has a non-zero gradient w.r.t. input dim j (raster order)."""

    depends: np.ndarray

    @property
    def violations(self) -> list[tuple[int, int]]:
        """(i, j) pairs with j >= i that the output depends on: must be empty."""
        i, j = np.nonzero(np.triu(self.depends))
        return list(zip(i.tolist(), j.tolist(), strict=True))

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def missing(self) -> int:
        """Allowed dependencies (j < i) that are absent: blind spots or a short receptive field."""
        return int(np.tril(~self.depends, k=-1).sum())


def _raster(t: torch.Tensor) -> torch.Tensor:
    """(C,H,W) -> flat vector in the autoregressive order (H, W, C)."""
    return t.permute(1, 2, 0).reshape(-1)


def check_causality(
    model: GenerativeModel, cond: int | None = None, seed: int = 0, training: bool = False
) -> CausalityReport:
    """Compute the full output/input dependency matrix of ``model`` by one backward per output.

    Uses a random continuous input (seeded) so no activation sits exactly at a flat point.
    ``training=True`` checks the training-mode network (dropout active: one pass, so one set of
    dropout masks). Cost: ``D`` backward passes — use small images.
    """
    if not isinstance(model, AutoregressiveModel):
        raise TypeError(
            f"check_causality: {type(model).__name__} is not autoregressive (a VAE's decoder "
            "dimensions are independent given z); nothing to check"
        )
    c, h, w = model.image_shape
    d = c * h * w
    gen = torch.Generator().manual_seed(seed)
    xu = (torch.rand((1, c, h, w), generator=gen) * 2 - 1).requires_grad_(True)
    y = None if model.num_classes == 0 else model.prepare_cond(cond or 0, 1)
    was = model.training
    model.train(training)
    try:
        out = model.forward_params(xu, y)  # (1, C, P, H, W)
        depends = np.zeros((d, d), dtype=bool)
        i = 0
        for r in range(h):
            for col in range(w):
                for ch in range(c):
                    (g,) = torch.autograd.grad(out[0, ch, :, r, col].sum(), xu, retain_graph=True)
                    depends[i] = (_raster(g[0]) != 0).numpy()
                    i += 1
    finally:
        model.train(was)
    return CausalityReport(depends)


def receptive_field(model, pixel: tuple[int, int], layers: int) -> np.ndarray:
    """(H, W) bool map of the input pixels that GatedPixelCNN features at ``pixel`` see after
    ``layers`` gated blocks (any channel)."""
    from synthcv.genmodels.pixelcnn import GatedPixelCNN

    if not isinstance(model, GatedPixelCNN):
        raise TypeError(f"receptive_field needs a GatedPixelCNN, got {type(model).__name__}")
    if not 1 <= layers <= model.num_layers:
        raise ValueError(f"layers must be in [1, {model.num_layers}], got {layers}")
    c, h, w = model.image_shape
    r, col = pixel
    if not (0 <= r < h and 0 <= col < w):
        raise ValueError(f"pixel {pixel} outside the {h}x{w} image")
    xu = torch.rand((1, c, h, w), generator=torch.Generator().manual_seed(0)) * 2 - 1
    xu.requires_grad_(True)
    y = None if model.num_classes == 0 else torch.zeros(1, dtype=torch.long)
    feats = model.features(xu, y, layers)
    (g,) = torch.autograd.grad(feats[0, :, r, col].sum(), xu)
    return (g[0] != 0).any(0).numpy()


def draw_receptive_field(model, pixel: tuple[int, int], max_layers: int, out: str | Path) -> Path:
    """Write a PNG with one panel per depth 1..max_layers: seen pixels grey, target red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthcv.genmodels.io import atomic_path

    out = Path(out)
    k = max_layers
    fig, axes = plt.subplots(1, k, figsize=(2.2 * k, 2.6), squeeze=False)
    for i in range(1, k + 1):
        rf = receptive_field(model, pixel, i)
        img = np.ones((*rf.shape, 3))
        img[rf] = (0.55, 0.6, 0.75)
        img[pixel[0], pixel[1]] = (0.85, 0.1, 0.1)
        ax = axes[0, i - 1]
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"{i} layer{'s' if i > 1 else ''}: {int(rf.sum())} px", fontsize=8)
        ax.set_xticks(np.arange(-0.5, rf.shape[1], 1), minor=True)
        ax.set_yticks(np.arange(-0.5, rf.shape[0], 1), minor=True)
        ax.grid(which="minor", color="#ccc", linewidth=0.3)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    fig.suptitle(f"Gated PixelCNN receptive field of pixel {pixel}", fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
