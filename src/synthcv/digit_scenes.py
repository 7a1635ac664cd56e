"""Real digit scenes: several real MNIST digits per image, as a COCO detection/segmentation set.

The real counterpart of a multi-digit synthetic spec (``examples/digit_scenes.yaml``): a model
trained on rendered scenes is measured on scenes made of real handwriting. The digits come
from ONE split of ``mnist-real-8000.npz`` (:func:`synthcv.realdata.load_mnist8000`): train scenes
only from the first 7,000 digits, test scenes only from the last 1,000, never mixed.

Layout of one image (``size`` × ``size``, grayscale, written as an 8-bit PNG):

- background: dark (base level uniform in [0, 30]) with a linear gradient of random direction
  (amplitude up to 25 grey levels) and Gaussian noise (sigma uniform in [2, 8]);
- ``digits`` = (lo, hi): the number of digits is drawn uniformly in lo..hi;
- each digit: a source digit drawn uniformly from the split (or the ``n_source`` subset), resized
  (bilinear) from 28 px to a side of ``28 × scale × size / 128`` px with ``scale`` uniform in
  the given range (22–62 px at 128 px for the default (0.8, 2.2)), ink brightness multiplied by
  a gain uniform in [0.75, 1], placed uniformly with its whole 28-px frame inside the image;
- overlap: digits may touch, but a digit whose ink box has IoU > ``max_iou`` (0.2) with an
  earlier one is redrawn (new place, up to 50 tries, then the digit is left out): rejection
  sampling, so ``num_digits`` can be below the drawn number in crowded images;
- composition with ``max()``: ink stays ink where digits touch;
- labels: the mask of a digit is its resized ink, pixels > 0.25 × 255 before the gain (masks of
  touching digits may overlap); the box is tight around the mask; category names "0".."9"
  (ids 1..10); masks are stored as compressed RLE.

Factors: per image ``num_digits``, ``background`` (base level), ``noise`` (sigma); per object
``scale``, ``source_index`` (the digit's row in the npz file: < 7000 for train, ≥ 7000 for
test) and ``gain``. Image ``i`` is a pure function of (``seed``, ``i``, the parameters), so
the same call writes the same bytes. ``n_source`` limits the source digits to a class-balanced
subset of N drawn with ``seed`` (the "real-small" setting, e.g. 100).

The same layout composes any other digits (``digits_npz``: an ``.npz`` of grey square images
and labels 0..9, e.g. a generative model's samples or digits drawn from templates fitted to a
few real ones), so a second source of digits reaches a detector in exactly the real scenes'
form and the two differ only in their digits.

A layer-1 module: it writes the COCO JSON itself (``synthcv.tasks.coco_data.load_coco`` reads it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import atomic_dir, sha256_file, write_json_atomic
from synthcv.realdata import MNIST_TRAIN_COUNT, find_mnist8000, load_mnist8000

__all__ = ["compose_digit_scenes", "source_subset"]

INK_THRESHOLD = 0.25 * 255
MAX_TRIES = 50


def source_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indexes of ``n`` digits, classes as equal as possible, drawn with ``seed``: every
    class's first digit of a seeded permutation, then every class's second, ..."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    perm = np.random.default_rng([seed, 7]).permutation(len(labels))
    rank = np.zeros(len(labels), np.int64)  # rank of each drawn digit within its class
    seen: dict[int, int] = {}
    for pos, i in enumerate(perm):
        c = int(labels[i])
        rank[pos] = seen.get(c, 0)
        seen[c] = rank[pos] + 1
    order = np.lexsort((np.arange(len(perm)), rank))  # by rank, then by draw order
    return np.sort(perm[order[:n]])


def _read_digits(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Grey digits and their labels 0..9 from an ``.npz``; every problem names the file."""
    from synthcv.fileio import read_images_npz

    if not file.is_file():
        raise ValueError(f"{file}: no such file (digits_npz)")
    images, labels = read_images_npz(file, labels_required=True)
    assert labels is not None
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise ValueError(
            f"{file}: images must be grey squares uint8 (N, S, S) with N ≥ 1, got {images.shape}"
        )
    labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise ValueError(
            f"{file}: labels must be digits 0..9; labels[{bad[0]}] is {labels[bad[0]]} "
            f"({bad.size} outside)"
        )
    return images, labels


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _resize(digit: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32)


def _scene(
    i: int,
    seed: int,
    size: int,
    digits: tuple[int, int],
    scale: tuple[float, float],
    max_iou: float,
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    rng = np.random.default_rng([seed, i])
    base = float(rng.uniform(0, 30))
    angle = rng.uniform(0, 2 * np.pi)
    amp = float(rng.uniform(0, 25))
    sigma = float(rng.uniform(2, 8))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp -= ramp.min()
    canvas = base + amp * ramp + rng.normal(0, sigma, (size, size))
    canvas = np.clip(canvas, 0, 255).astype(np.float32)
    objects: list[dict[str, Any]] = []
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(digits[0], digits[1] + 1))):
        src = int(pool[rng.integers(len(pool))])
        s = float(rng.uniform(*scale))
        side = max(8, min(size, round(28 * s * size / 128)))
        gain = float(rng.uniform(0.75, 1.0))
        patch = _resize(images[src], side)
        ink = patch > INK_THRESHOLD
        if not ink.any():
            continue
        ys, xs = np.nonzero(ink)
        iy0, iy1, ix0, ix1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        for _try in range(MAX_TRIES):
            x0 = int(rng.integers(0, size - side + 1))
            y0 = int(rng.integers(0, size - side + 1))
            box = (x0 + ix0, y0 + iy0, ix1 - ix0, iy1 - iy0)
            if all(_iou(box, b) <= max_iou for b in boxes):
                break
        else:
            continue
        region = canvas[y0 : y0 + side, x0 : x0 + side]
        np.maximum(region, patch * gain, out=region)
        mask = np.zeros((size, size), bool)
        mask[y0 : y0 + side, x0 : x0 + side] = ink
        boxes.append(box)
        objects.append(
            {
                "label": int(labels[src]),
                "bbox": [float(v) for v in box],
                "mask": mask,
                "scale": s,
                "source_index": src,
                "gain": gain,
            }
        )
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    factors = {"num_digits": len(objects), "background": base, "noise": sigma}
    return image, objects, factors


def compose_digit_scenes(
    out: str | os.PathLike[str],
    split: str = "train",
    count: int = 1000,
    size: int = 128,
    digits: tuple[int, int] = (2, 6),
    scale: tuple[float, float] = (0.8, 2.2),
    max_iou: float = 0.2,
    seed: int = 0,
    n_source: int | None = None,
    mnist_path: str | os.PathLike[str] | None = None,
    digits_npz: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``count`` real-digit scenes as COCO into ``out`` (``images/NNNNNN.png`` and
    ``annotations.json``), published whole; returns ``out``. Layout: module docstring.

    ``digits_npz`` composes the same scenes from any other digits instead of MNIST's (an
    ``.npz`` of ``images`` uint8 (N, H, W) and ``labels`` 0..9: generated samples, digits drawn
    from fitted templates), so a second source of digits can be compared with the real ones
    under one layout; ``split`` and ``mnist_path`` are then unused and ``source_index`` is the
    row in that file.

    ``out`` must not exist or be empty. Raises ``ValueError`` naming a bad parameter (or the
    file and what is wrong with it) and ``FileNotFoundError`` naming every path tried when the
    MNIST file is missing.
    """
    from synthcv.format.codecs import write_png

    if split not in ("train", "test"):
        raise ValueError(f"split: got {split!r}, expected 'train' or 'test'")
    if count < 1:
        raise ValueError(f"count: got {count}, expected at least 1")
    if size < 32:
        raise ValueError(f"size: got {size}, expected at least 32 (pixels)")
    if not (1 <= digits[0] <= digits[1]):
        raise ValueError(f"digits: got {list(digits)}, expected [lo, hi] with 1 ≤ lo ≤ hi")
    if not (0 < scale[0] <= scale[1]):
        raise ValueError(f"scale: got {list(scale)}, expected [lo, hi] with 0 < lo ≤ hi")
    if not 0 <= max_iou <= 1:
        raise ValueError(f"max_iou: got {max_iou}, expected a number in [0, 1]")
    if n_source is not None and n_source < 1:
        raise ValueError(f"n_source: got {n_source}, expected at least 1")
    if digits_npz is not None:
        file = Path(digits_npz)
        images, labels = _read_digits(file)
        offset, where = 0, str(file)
    else:
        file = find_mnist8000(mnist_path)
        images, labels = load_mnist8000(split, file)  # type: ignore[arg-type]
        offset = 0 if split == "train" else MNIST_TRAIN_COUNT
        where = f"the {split} split"
    if n_source is not None and n_source > len(images):
        raise ValueError(f"n_source: got {n_source}, but {where} has {len(images)} digits")
    pool = source_subset(labels, n_source, seed) if n_source is not None else np.arange(len(images))
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    out = Path(out)
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        for i in range(count):
            img, objects, factors = _scene(
                i, seed, size, digits, scale, max_iou, images, labels, pool
            )
            rel = f"images/{i:06d}.png"
            write_png(tmp / rel, img)
            coco_images.append(
                {"id": i, "file_name": rel, "width": size, "height": size, **factors}
            )
            for o in objects:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i,
                        "category_id": o["label"] + 1,
                        "bbox": o["bbox"],
                        "area": int(o["mask"].sum()),
                        "iscrowd": 0,
                        "segmentation": _rle(o["mask"]),
                        "scale": o["scale"],
                        "source_index": o["source_index"] + offset,
                        "gain": o["gain"],
                    }
                )
        data = {
            "info": {
                "description": (
                    f"digit scenes composed from {file.name}"
                    if digits_npz is not None
                    else f"real MNIST digit scenes ({split} split)"
                ),
                "generator": "synthcv.digit_scenes.compose_digit_scenes",
                "split": "npz" if digits_npz is not None else split,
                "count": count,
                "size": size,
                "digits": list(digits),
                "scale": list(scale),
                "max_iou": max_iou,
                "seed": seed,
                "n_source": n_source,
                **(
                    {"digits_npz": file.name, "digits_sha256": sha256_file(file)}
                    if digits_npz is not None
                    else {"mnist_sha256": sha256_file(file)}
                ),
                "source_index": (
                    f"row of {file.name}"
                    if digits_npz is not None
                    else "row of mnist-real-8000.npz (train: < 7000, test: >= 7000)"
                ),
            },
            "licenses": [],
            "categories": [
                {"id": d + 1, "name": str(d), "supercategory": "digit"} for d in range(10)
            ],
            "images": coco_images,
            "annotations": annotations,
        }
        write_json_atomic(tmp / "annotations.json", data, indent=None)
    return out
