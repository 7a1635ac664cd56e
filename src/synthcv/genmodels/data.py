"""Image sources for the generative models, all returned as uint8 (N, C, H, W) + int64 labels.

Sources (``--data``):
- ``mnist8000``: the 8,000 real digits; train = first 7,000, test = last 1,000.
- ``mnist6300``: the same, with the experiments' fixed validation part (700 of the 7,000,
  ``part: val``, :func:`synthcv.realdata.validation_part`) left out of train, so a model used
  as a data source never sees the digits its downstream choices are tuned on; test = last 1,000.
- ``sklearn-digits``: sklearn's 8x8 digits scaled to 0..255; train = first 1,500, test = rest.
- ``PATH.npz``: ``images`` (N,H,W) or (N,H,W,C) uint8 and optional ``labels`` (e.g. written by
  ``genmodel sample``); test = the last ``max(1, N // 8)`` images.
- ``DATASET_DIR``: a synthcv dataset (``synthcv.open_dataset``); image = the ``rgb`` modality
  (grayscale when the spec asks ``channels: 1``), label = the 0-based label of
  :mod:`synthcv.targets` (-1 if no labelled object is visible); test = the last
  ``max(1, N // 8)`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from synthcv.realdata import (
    MNIST_TRAIN_COUNT,
    load_mnist8000,
    load_sklearn_digits,
    validation_part,
)
from synthcv.targets import target_label

if TYPE_CHECKING:  # loading data needs no torch; only the augmentation below does
    import torch


@dataclass
class ImageData:
    """One split of a source: images uint8 (N,C,H,W), labels int64 (N,) (-1 = none)."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    source: str
    class_names: list[str] = field(default_factory=list)

    def levels_array(self, levels: int) -> np.ndarray:
        """Quantize to ``levels`` (2: threshold at 128; 256: unchanged) as int64."""
        if levels == 256:
            return self.images.astype(np.int64)
        if levels == 2:
            return (self.images >= 128).astype(np.int64)
        return np.floor(self.images.astype(np.float64) * levels / 256.0).astype(np.int64)


def _holdout(n: int, split: str) -> slice:
    k = max(1, n // 8)
    if split == "train":
        return slice(0, n - k)
    if split == "test":
        return slice(n - k, n)
    return slice(0, n)


def _to_nchw(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return np.moveaxis(images, -1, 1)
    raise ValueError(f"{where}: images must be (N,H,W) or (N,H,W,1|3), got {images.shape}")


def _load_npz(path: Path, split: str) -> ImageData:
    from synthcv.fileio import read_images_npz

    images, labels = read_images_npz(path, labels_required=False)
    if len(images) == 0:
        raise ValueError(f"{path}: 'images' holds no images")
    if labels is None:
        labels = np.full(len(images), -1, np.int64)
    sl = _holdout(len(images), split)
    ncls = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    return ImageData(_to_nchw(images, str(path))[sl], labels[sl], ncls, str(path))


def _load_dataset_dir(path: Path, split: str) -> ImageData:
    from synthcv.format import open_dataset

    ds = open_dataset(path)
    n = len(ds)
    if n == 0:
        raise ValueError(f"{path}: dataset has no samples")
    idx = range(n)[_holdout(n, split)]
    images, labels = [], []
    for i in idx:
        s = ds[i]
        rgb = s.get("rgb")
        if rgb is None:
            raise ValueError(
                f"{path}: sample {i} has no 'rgb' image (is the modality switched off?)"
            )
        images.append(np.asarray(rgb, dtype=np.uint8))
        labels.append(target_label(s.get("objects") or []))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{path}: images differ in shape {sorted(shapes)}; use one size")
    classes = [c["name"] for c in ds.classes]
    arr = _to_nchw(np.stack(images), str(path))
    return ImageData(arr, np.asarray(labels, np.int64), len(classes), str(path), classes)


def _without_validation_part(
    images: np.ndarray, labels: np.ndarray, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """The training digits minus the fixed validation part (``all`` keeps the test digits)."""
    keep = validation_part(MNIST_TRAIN_COUNT, "train")
    if split == "all":
        keep = np.concatenate([keep, np.arange(MNIST_TRAIN_COUNT, len(images))])
    return images[keep], labels[keep]


def center_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Central ``size`` x ``size`` crop of (N,C,H,W) images (small fast test problems)."""
    h, w = images.shape[2:]
    if size > min(h, w) or size < 1:
        raise ValueError(f"crop {size} does not fit images of {h}x{w}")
    t, left = (h - size) // 2, (w - size) // 2
    return images[:, :, t : t + size, left : left + size]


def load_images(
    source: str | Path,
    split: str = "train",
    crop: int | None = None,
    limit: int | None = None,
    mnist_path: str | Path | None = None,
) -> ImageData:
    """Load one split of ``source`` (see the module docstring for the sources and splits)."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    src = str(source)
    if src in ("mnist8000", "mnist6300"):
        im, lab = load_mnist8000(split, mnist_path)  # type: ignore[arg-type]
        if src == "mnist6300" and split != "test":
            im, lab = _without_validation_part(im, lab, split)
        data = ImageData(im[:, None], lab, 10, src, [str(d) for d in range(10)])
    elif src == "sklearn-digits":
        im, lab = load_sklearn_digits(split)  # type: ignore[arg-type]
        data = ImageData(im[:, None], lab, 10, src, [str(d) for d in range(10)])
    else:
        p = Path(src)
        if p.suffix == ".npz" and p.is_file():
            data = _load_npz(p, split)
        elif p.is_dir():
            data = _load_dataset_dir(p, split)
        else:
            raise FileNotFoundError(
                f"--data {src!r}: not 'mnist8000', 'mnist6300', 'sklearn-digits', an .npz file or"
                " a dataset "
                "directory"
            )
    if crop:
        data.images = np.ascontiguousarray(center_crop(data.images, crop))
    if limit is not None:
        data.images, data.labels = data.images[:limit], data.labels[:limit]
    if len(data.images) == 0:
        raise ValueError(
            f"--data {src}: no images in its {split} split (the test split holds out 1 in 8"
            " images, at least one: give at least 2)"
        )
    return data


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate every image by its own random integer offset in [-max_shift, max_shift] per axis.

    Uncovered pixels repeat the nearest edge pixel (on zero-bordered digits: zero fill), so the
    shifted images keep the exact grey levels of the data — a likelihood-safe augmentation for
    small training sets. Offsets come from ``generator``, which makes the batch reproducible.
    """
    import torch

    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, n, 1), generator=generator)
    rows = (torch.arange(h) - dy).clamp_(0, h - 1)  # (N, H): source row of every output row
    cols = (torch.arange(w) - dx).clamp_(0, w - 1)
    batch = torch.arange(n)[:, None, None]
    return x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
