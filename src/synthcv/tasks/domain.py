"""Frame a synthetic object the way the real target dataset frames its objects.

Synthetic renders and real photos differ in *framing* as much as in appearance: MNIST digits are
cropped to their strokes, scaled to fit a 20×20 box (aspect kept) and placed so their centre of
mass sits at the centre of a 28×28 field. synthcv knows each object's exact instance mask, so
the same framing can be reproduced exactly instead of guessed from pixel intensities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from synthcv.format.codecs import to_gray_float as to_gray


@dataclass(frozen=True)
class MatchDomain:
    """Crop to the target object's mask, fit in ``box``×``box``, centre of mass at ``center``.

    ``fill="mask"`` paints the object's silhouette (MNIST strokes are uniformly bright);
    ``fill="intensity"`` keeps the rendered shading inside the mask, normalised so the
    object's brightest pixel is 255 — use it when appearance (and appearance augmentations)
    should reach the classifier. Defaults reproduce MNIST's framing (measured on the real
    digits: centre of mass at (14.0, 14.0) ± 0.3, height 20).
    """

    size: int = 28
    box: int = 20
    center: tuple[float, float] = (14.0, 14.0)
    fill: Literal["mask", "intensity"] = "mask"
    invert: bool = False

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from PIL import Image

        mask = np.asarray(mask, dtype=bool)
        if mask.shape != np.asarray(image).shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
        out = np.zeros((self.size, self.size), np.float32)
        if not mask.any():
            return out.astype(np.uint8)
        if self.fill == "mask":
            val = mask.astype(np.float32)
        elif self.fill == "intensity":
            g = to_gray(image)
            if self.invert:
                g = 1.0 - g
            inside = g[mask]
            lo, hi = float(inside.min()), float(inside.max())
            # Stretch the object's own range to [0.25, 1] so dark shading stays visible as ink.
            val = np.where(mask, 0.25 + 0.75 * (g - lo) / max(hi - lo, 1e-6), 0.0)
        else:
            raise ValueError(
                f"match_domain.fill: got {self.fill!r}, expected 'mask' or 'intensity'"
            )
        ys, xs = np.nonzero(mask)
        crop = val[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
        h, w = crop.shape
        scale = self.box / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = np.asarray(
            Image.fromarray(crop, mode="F").resize((nw, nh), Image.Resampling.BILINEAR),
            dtype=np.float32,
        ).clip(0.0, 1.0)
        total = float(resized.sum())
        if total <= 0:
            return out.astype(np.uint8)
        cy = float((resized.sum(axis=1) * np.arange(nh)).sum() / total)
        cx = float((resized.sum(axis=0) * np.arange(nw)).sum() / total)
        top = int(np.clip(round(self.center[0] - cy), 0, self.size - nh))
        left = int(np.clip(round(self.center[1] - cx), 0, self.size - nw))
        out[top : top + nh, left : left + nw] = resized
        return np.round(out * 255.0).astype(np.uint8)
