"""Interpretable per-image features for drift monitoring.

A drift report is only useful if it says *what* changed in words an engineer can act on
(darker, blurrier, thicker strokes, smaller objects), so every feature here is one number per
image with a plain meaning, computed the same way for a reference and a current set.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Feature name -> what it measures (shown in reports).
FEATURES: dict[str, str] = {
    "brightness": "mean intensity, 0..1",
    "contrast": "standard deviation of intensity, 0..1",
    "sharpness": "variance of the Laplacian over the intensity variance (lower: blurrier; "
    "unchanged by exposure)",
    "noise": "noise standard deviation, 0..1 (Immerkaer's estimator)",
    "dark_fraction": "share of pixels at or below 2/255 (under-exposure, black background)",
    "bright_fraction": "share of pixels at or above 253/255 (over-exposure, saturated ink)",
    "foreground_fraction": "share of pixels above the image's min-max midpoint (ink, objects)",
    "foreground_extent": "larger side of the foreground's box, as a share of the image side",
    "foreground_x": "foreground centroid x, as a share of the width",
    "foreground_y": "foreground centroid y, as a share of the height",
    "foreground_level": "mean intensity of the foreground, 0..1 (exposure of the objects)",
    "background_level": "median intensity of the rest, 0..1 (the paper's or background's "
    "level: faint stroke edges do not move it)",
    "foreground_angle": "slant of the foreground's principal axis from vertical, degrees "
    "(clockwise positive)",
}
COLOUR_FEATURES: dict[str, str] = {
    "red": "mean red, 0..1",
    "green": "mean green, 0..1",
    "blue": "mean blue, 0..1",
    "saturation": "mean HSV saturation, 0..1",
}

_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_NOISE_MASK = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def _as_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 (N,H,W), (N,H,W,C) or (N,C,H,W) with C in (1, 3) -> float (N,H,W,C) in 0..1."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images: expected (N,H,W[,C]) with 1 or 3 channels, got {x.shape}")
    if x.shape[1] < 3 or x.shape[2] < 3:
        raise ValueError(f"images: need at least 3x3 pixels, got {x.shape[1]}x{x.shape[2]}")
    return x.astype(np.float64) / 255.0


def image_features(images: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Every feature of every image: name -> (N,) float64. Colour ones only for RGB.

    ``images`` is one uint8 array (N,H,W[,C]) or a sequence of images of any sizes (a folder
    of photos): each size is computed as one stack and the results put back in order."""
    if isinstance(images, np.ndarray):
        return _stack_features(images)
    if not len(images):
        raise ValueError("images: got none")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(_as_nhwc(np.asarray(im)[None]).shape[1:], []).append(i)
    parts = {
        k: _stack_features(np.stack([np.asarray(images[i]) for i in idx]))
        for k, idx in groups.items()
    }
    names = set.intersection(*(set(f) for f in parts.values()))
    out = {n: np.empty(len(images)) for n in FEATURES | COLOUR_FEATURES if n in names}
    for k, idx in groups.items():
        for n in out:
            out[n][idx] = parts[k][n]
    return out


def _stack_features(images: np.ndarray) -> dict[str, np.ndarray]:
    x = _as_nhwc(images)
    _, h, w, c = x.shape
    grey = x.mean(axis=-1)
    out: dict[str, np.ndarray] = {
        "brightness": grey.mean(axis=(1, 2)),
        "contrast": grey.std(axis=(1, 2)),
    }
    lap = ndimage.convolve(grey, _LAPLACIAN[None], mode="reflect")  # per image: kernel depth 1
    # divided by the intensity variance: a darker capture scales both by the same factor², so
    # only blur (and noise) move it, and "blurrier" is not confused with "darker"
    var = grey.var(axis=(1, 2))
    out["sharpness"] = np.where(var > 1e-12, lap.var(axis=(1, 2)) / np.maximum(var, 1e-12), 0.0)
    # Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M| over the interior
    resid = ndimage.convolve(grey, _NOISE_MASK[None])[:, 1:-1, 1:-1]
    out["noise"] = np.sqrt(np.pi / 2) * np.abs(resid).sum(axis=(1, 2)) / (6 * (w - 2) * (h - 2))
    out["dark_fraction"] = (grey <= 2 / 255).mean(axis=(1, 2))
    out["bright_fraction"] = (grey >= 253 / 255).mean(axis=(1, 2))
    lo, hi = grey.min(axis=(1, 2)), grey.max(axis=(1, 2))
    fg = grey > ((lo + hi) / 2)[:, None, None]
    fg &= (hi - lo)[:, None, None] > 1e-6  # a flat image has no foreground
    out["foreground_fraction"] = fg.mean(axis=(1, 2))
    rows, cols = fg.any(axis=2), fg.any(axis=1)
    has = rows.any(axis=1)
    first_r, last_r = rows.argmax(axis=1), h - 1 - rows[:, ::-1].argmax(axis=1)
    first_c, last_c = cols.argmax(axis=1), w - 1 - cols[:, ::-1].argmax(axis=1)
    extent = np.maximum((last_r - first_r + 1) / h, (last_c - first_c + 1) / w)
    out["foreground_extent"] = np.where(has, extent, 0.0)
    yy, xx = np.mgrid[:h, :w]
    mass = np.maximum(fg.sum(axis=(1, 2)), 1)
    out["foreground_x"] = np.where(has, (fg * xx).sum(axis=(1, 2)) / mass / max(w - 1, 1), 0.5)
    out["foreground_y"] = np.where(has, (fg * yy).sum(axis=(1, 2)) / mass / max(h - 1, 1), 0.5)
    out["foreground_level"] = np.where(has, (grey * fg).sum(axis=(1, 2)) / mass, 0.0)
    rest = np.where(fg, np.nan, grey).reshape(len(grey), -1)
    with warnings.catch_warnings():  # an image that is all foreground has no background: 0
        warnings.simplefilter("ignore", RuntimeWarning)
        out["background_level"] = np.nan_to_num(np.nanmedian(rest, axis=1), nan=0.0)
    # principal axis from the second central moments; y points down, so a "/" leans clockwise
    cx = (fg * xx).sum(axis=(1, 2)) / mass
    cy = (fg * yy).sum(axis=(1, 2)) / mass
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    mu20, mu02 = (fg * dx * dx).sum(axis=(1, 2)), (fg * dy * dy).sum(axis=(1, 2))
    mu11 = (fg * dx * dy).sum(axis=(1, 2))
    angle = np.degrees(0.5 * np.arctan2(-2 * mu11, mu02 - mu20))
    out["foreground_angle"] = np.where(has, angle, 0.0)
    if c == 3:
        out["red"], out["green"], out["blue"] = (x[..., k].mean(axis=(1, 2)) for k in range(3))
        mx, mn = x.max(axis=-1), x.min(axis=-1)
        sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-12), 0.0)
        out["saturation"] = sat.mean(axis=(1, 2))
    return out
