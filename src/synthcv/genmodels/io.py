"""Files: atomic writes, sample sets other commands can train on, and image grids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import atomic_path


def levels_to_uint8(x: np.ndarray, levels: int) -> np.ndarray:
    """Integer levels in [0, levels) -> uint8 0..255 (binary data becomes 0/255)."""
    x = np.asarray(x)
    if levels == 256:
        return x.astype(np.uint8)
    return np.rint(x.astype(np.float64) * (255.0 / (levels - 1))).astype(np.uint8)


def to_hw_images(x: np.ndarray) -> np.ndarray:
    """(N,C,H,W) -> (N,H,W) for one channel, (N,H,W,C) for colour: the dataset image layout."""
    return x[:, 0] if x.shape[1] == 1 else np.moveaxis(x, 1, -1)


def save_samples_npz(
    path: str | Path, images: np.ndarray, labels: np.ndarray | None, meta: dict[str, Any]
) -> Path:
    """Write ``images`` uint8 (N,H,W) or (N,H,W,C), ``labels`` int64 (N,) (-1 = unconditional)
    and ``meta`` (a JSON string) — loadable by ``genmodel train --data samples.npz``."""
    n = len(images)
    lab = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if lab.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {lab.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, images=images.astype(np.uint8), labels=lab, meta=np.array(json.dumps(meta))
        )
    return Path(path)


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile uint8 (N,H,W) or (N,H,W,3) images into one image with ``pad`` px gaps."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid: no images")
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = images.shape[1:3]
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad, *images.shape[3:])
    grid = np.full(shape, 128, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) :][:, :w] = im
    return grid


def save_png(path: str | Path, image: np.ndarray, scale: int = 1) -> Path:
    """Save a uint8 image as PNG (nearest-neighbour upscaled by ``scale``), atomically."""
    from PIL import Image

    im = Image.fromarray(image)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return Path(path)
