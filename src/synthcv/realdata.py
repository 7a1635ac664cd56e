"""Loaders for the real digit data the project measures itself against.

Real data never downloads: the 8,000 MNIST digits ship as one ``.npz`` beside the repository,
and sklearn's bundled ``load_digits`` is the offline fallback for tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from synthcv.fileio import read_images_npz

MNIST_ENV_VAR = "SYNTHCV_MNIST"
MNIST_RELATIVE = Path("..") / "shared" / "data" / "mnist" / "mnist-real-8000.npz"
MNIST_TRAIN_COUNT = 7000
VALIDATION_FRACTION = 0.1
"""The experiments' default validation share (``part: val``): 700 of the 7,000 training digits."""

Split = Literal["train", "test", "all"]


def validation_part(n: int, part: str, fraction: float = VALIDATION_FRACTION) -> np.ndarray:
    """Indexes of the ``part`` ('train' or 'val') of ``n`` items: a fixed, seed-independent
    draw, so the validation split never moves between runs and never meets the training part.
    """
    order = np.random.default_rng(20261129).permutation(n)
    k = max(1, round(n * fraction)) if n > 1 else 0
    idx = order[:k] if part == "val" else order[k:]
    return np.sort(idx)


def _repo_root() -> Path:
    # src/synthcv/realdata.py -> repo root is two levels above the package directory.
    return Path(__file__).resolve().parents[2]


def mnist8000_candidates(path: str | Path | None = None) -> list[Path]:
    """Paths tried, in order, to find ``mnist-real-8000.npz`` (explicit, env var, searched)."""
    if path is not None:
        return [Path(path)]
    env = os.environ.get(MNIST_ENV_VAR)
    if env:
        return [Path(env)]
    cands: list[Path] = []
    for base in [Path.cwd(), *Path.cwd().parents, _repo_root()]:
        cand = base / MNIST_RELATIVE
        if cand not in cands:
            cands.append(cand)
    return cands


def find_mnist8000(path: str | Path | None = None) -> Path:
    """Resolve the npz location; raise FileNotFoundError naming every path tried."""
    cands = mnist8000_candidates(path)
    for cand in cands:
        if cand.is_file():
            return cand
    how = (
        "explicit path"
        if path is not None
        else (f"${MNIST_ENV_VAR}" if os.environ.get(MNIST_ENV_VAR) else "search")
    )
    tried = "\n  ".join(str(c) for c in cands)
    raise FileNotFoundError(
        f"mnist-real-8000.npz not found ({how}); tried:\n  {tried}\n"
        f"Pass a path or set {MNIST_ENV_VAR}=/path/to/mnist-real-8000.npz"
    )


def load_mnist8000(
    split: Split = "all", path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load the 8,000 real MNIST digits as ``(images uint8 (N,28,28), labels int64 (N,))``.

    The split is fixed and documented so every experiment compares on the same images:
    ``train`` = the first 7,000 samples of the file, ``test`` = the last 1,000, ``all`` = 8,000.
    The path is ``path`` if given, else ``$SYNTHCV_MNIST``, else
    ``../shared/data/mnist/mnist-real-8000.npz`` searched from the current directory upwards
    and from the repository root.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_mnist8000: split must be 'train', 'test' or 'all', got {split!r}")
    file = find_mnist8000(path)
    images, labels = read_images_npz(file, labels_required=True)
    assert labels is not None
    if images.ndim != 3:
        raise ValueError(
            f"{file}: expected images uint8 (N,28,28) and labels (N,), got "
            f"{images.dtype} {images.shape} and {labels.shape}"
        )
    if split == "train":
        return images[:MNIST_TRAIN_COUNT], labels[:MNIST_TRAIN_COUNT]
    if split == "test":
        return images[MNIST_TRAIN_COUNT:], labels[MNIST_TRAIN_COUNT:]
    return images, labels


SKLEARN_DIGITS_TEST_COUNT = 297


def load_sklearn_digits(split: Split = "all") -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled 8x8 digits as ``(images uint8 (N,8,8), labels int64 (N,))``.

    The 17 grey levels 0..16 are scaled to 0..255 (``round(v * 255 / 16)``) so the data is
    8-bit like every other source; it still only takes 17 distinct values. Split: the first
    1,500 samples are ``train``, the last 297 ``test``. Needs scikit-learn (an ImportError
    says so when it is missing).
    """
    if split not in ("train", "test", "all"):
        raise ValueError(
            f"load_sklearn_digits: split must be 'train', 'test' or 'all', got {split!r}"
        )
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_sklearn_digits needs scikit-learn (pip install scikit-learn)"
        ) from exc
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    n_train = len(images) - SKLEARN_DIGITS_TEST_COUNT
    if split == "train":
        return images[:n_train], labels[:n_train]
    if split == "test":
        return images[n_train:], labels[n_train:]
    return images, labels
