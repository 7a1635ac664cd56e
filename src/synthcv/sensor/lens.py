"""Brown–Conrady lens distortion (OpenCV's k1, k2, p1, p2) and everything it moves.

A distorted image is made the way BlenderProc makes one: render a pinhole image on a canvas
large enough to hold the pre-image of every output pixel, then sample it through the inverse
model. Geometric labels never go through pixels twice: points (keypoints, gaze points) are
distorted analytically with :func:`distort_pixels`; label maps (ids, depth, normals, parts)
and amodal silhouettes are resampled nearest-neighbour through the same map as the RGB
(bilinear), so every label matches the distorted geometry.

Model, on normalised coordinates ``x = (u - cx) / fx``, ``y = (v - cy) / fy``, ``r² = x² + y²``::

    x_d = x (1 + k1 r² + k2 r⁴) + 2 p1 x y + p2 (r² + 2 x²)
    y_d = y (1 + k1 r² + k2 r⁴) + p1 (r² + 2 y²) + 2 p2 x y
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fixed-point iterations of the inverse model (OpenCV's ``undistortPoints`` uses 5 by
#: default; strong barrel distortion near the corners needs more).
UNDISTORT_ITERATIONS = 60
#: Inverse-model residual (normalised units) above which a point counts as not invertible.
UNDISTORT_TOLERANCE = 1e-9
#: Margin of the pinhole canvas beyond the pre-image of the output frame, pixels (bilinear
#: sampling reads one pixel on each side).
CANVAS_PAD = 2
#: The canvas may grow to at most this many times the output's side on each side.
MAX_CANVAS_GROWTH = 2.0


@dataclass(frozen=True)
class Distortion:
    k1: float = 0.0
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.k1 == 0 and self.k2 == 0 and self.p1 == 0 and self.p2 == 0

    def coefficients(self) -> list[float]:
        """OpenCV's order (k1, k2, p1, p2), as recorded in ``samples.parquet``."""
        return [self.k1, self.k2, self.p1, self.p2]


class DistortionError(ValueError):
    """The distortion folds the image over itself inside the frame (no inverse there)."""


def distort_normalized(
    x: np.ndarray, y: np.ndarray, d: Distortion
) -> tuple[np.ndarray, np.ndarray]:
    r2 = x * x + y * y
    radial = 1 + d.k1 * r2 + d.k2 * r2 * r2
    xd = x * radial + 2 * d.p1 * x * y + d.p2 * (r2 + 2 * x * x)
    yd = y * radial + d.p1 * (r2 + 2 * y * y) + 2 * d.p2 * x * y
    return xd, yd


def undistort_normalized(
    xd: np.ndarray, yd: np.ndarray, d: Distortion
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The undistorted points whose distortion is ``(xd, yd)``, and a per-point flag of
    convergence (False where the model has no inverse: beyond a fold)."""
    x, y = xd.astype(np.float64).copy(), yd.astype(np.float64).copy()
    for _ in range(UNDISTORT_ITERATIONS):  # OpenCV's fixed point, then Newton-free polish
        r2 = x * x + y * y
        radial = 1 + d.k1 * r2 + d.k2 * r2 * r2
        dx = 2 * d.p1 * x * y + d.p2 * (r2 + 2 * x * x)
        dy = d.p1 * (r2 + 2 * y * y) + 2 * d.p2 * x * y
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x = (xd - dx) / radial
            y = (yd - dy) / radial
    with np.errstate(invalid="ignore", over="ignore"):
        fx, fy = distort_normalized(x, y, d)
        err = np.hypot(fx - xd, fy - yd)
        # a fold: the radial factor must stay positive and increasing along the ray
        r2 = x * x + y * y
        slope = 1 + 3 * d.k1 * r2 + 5 * d.k2 * r2 * r2  # d(r·radial)/dr
        ok = np.isfinite(err) & (err < UNDISTORT_TOLERANCE * (1 + np.hypot(xd, yd))) & (slope > 0)
    return x, y, ok


def distort_pixels(uv: np.ndarray, K: np.ndarray, d: Distortion) -> np.ndarray:
    """Pinhole pixel coordinates (N, 2) → distorted pixel coordinates (same convention)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    xd, yd = distort_normalized(x, y, d)
    return np.stack([xd * K[0, 0] + K[0, 2], yd * K[1, 1] + K[1, 2]], axis=1)


def undistort_pixels(uv: np.ndarray, K: np.ndarray, d: Distortion) -> tuple[np.ndarray, np.ndarray]:
    """Distorted pixel coordinates (N, 2) → pinhole ones, and the convergence flag per point."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    xd = (uv[:, 0] - K[0, 2]) / K[0, 0]
    yd = (uv[:, 1] - K[1, 2]) / K[1, 1]
    x, y, ok = undistort_normalized(xd, yd, d)
    return np.stack([x * K[0, 0] + K[0, 2], y * K[1, 1] + K[1, 2]], axis=1), ok


@dataclass(frozen=True)
class LensMap:
    """Where each output (distorted) pixel comes from in the pinhole canvas."""

    distortion: Distortion
    width: int  # output
    height: int
    margins: tuple[int, int, int, int]  # canvas pixels left, top, right, bottom of the output
    src_x: np.ndarray  # (H, W) canvas x of each output pixel centre
    src_y: np.ndarray

    @property
    def canvas_size(self) -> tuple[int, int]:
        left, top, right, bottom = self.margins
        return self.width + left + right, self.height + top + bottom


def lens_map(K: np.ndarray, width: int, height: int, d: Distortion, where: str = "") -> LensMap:
    """The canvas an output frame of ``width × height`` with intrinsics ``K`` needs, and the
    source coordinate of every output pixel in it. Raises :class:`DistortionError` when some
    output pixel has no pre-image (the distortion folds inside the frame)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    src, ok = undistort_pixels(np.stack([xs.ravel(), ys.ravel()], axis=1), K, d)
    if not ok.all():
        bad = int(np.argmin(ok))
        raise DistortionError(
            f"{where}distortion k1={d.k1:g}, k2={d.k2:g}, p1={d.p1:g}, p2={d.p2:g} folds the "
            f"image inside the frame (output pixel ({bad % width}, {bad // width}) has no "
            "undistorted pre-image): use smaller coefficients"
        )
    left = max(0, int(np.ceil(-src[:, 0].min())) + CANVAS_PAD)
    top = max(0, int(np.ceil(-src[:, 1].min())) + CANVAS_PAD)
    right = max(0, int(np.ceil(src[:, 0].max() - (width - 1))) + CANVAS_PAD)
    bottom = max(0, int(np.ceil(src[:, 1].max() - (height - 1))) + CANVAS_PAD)
    if max(left, right) > MAX_CANVAS_GROWTH * width or max(top, bottom) > (
        MAX_CANVAS_GROWTH * height
    ):
        raise DistortionError(
            f"{where}distortion k1={d.k1:g}, k2={d.k2:g}, p1={d.p1:g}, p2={d.p2:g} needs a "
            f"pinhole render more than {1 + 2 * MAX_CANVAS_GROWTH:g}× the image's size to fill "
            "the frame: use smaller coefficients"
        )
    return LensMap(
        distortion=d,
        width=width,
        height=height,
        margins=(left, top, right, bottom),
        src_x=(src[:, 0] + left).reshape(height, width),
        src_y=(src[:, 1] + top).reshape(height, width),
    )


def remap_nearest(array: np.ndarray, lm: LensMap) -> np.ndarray:
    """Label maps (ids, depth, normals, masks): each output pixel takes the canvas pixel
    nearest to its source point, so values are never mixed across an edge."""
    h, w = array.shape[:2]
    xi = np.clip(np.floor(lm.src_x + 0.5).astype(np.int64), 0, w - 1)
    yi = np.clip(np.floor(lm.src_y + 0.5).astype(np.int64), 0, h - 1)
    return array[yi, xi]


def remap_bilinear(image: np.ndarray, lm: LensMap) -> np.ndarray:
    """Images: bilinear interpolation of the canvas at each source point (float64 out; points
    past the edge take the edge)."""
    from scipy.ndimage import map_coordinates

    img = np.asarray(image, dtype=np.float64)
    coords = [lm.src_y, lm.src_x]
    if img.ndim == 2:
        return map_coordinates(img, coords, order=1, mode="nearest")
    return np.stack(
        [
            map_coordinates(img[..., c], coords, order=1, mode="nearest")
            for c in range(img.shape[2])
        ],
        axis=-1,
    )
