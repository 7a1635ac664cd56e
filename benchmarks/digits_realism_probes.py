"""Which realism statistic holds synthetic digits back? Variants of one procedural set, each
changed one way, to train synthetic-only on and score on the validation digits (issue #16).

Reads a `digits_mnist`-style dataset, frames it as the classifier sees it, and writes one
samples file per variant under ``--out`` (``NAME.npz``: images, labels):

    base           the digits as rendered
    blur05/07      Gaussian blur sigma 0.5 / 0.7 px, each image's ink re-saturated (99.5th
                   percentile to white): MNIST's share of mid-tone ink
    erode_blur05   thinner strokes: 2 x 2 grey erosion, then blur05
    prop6/prop9    a writer's proportions: the waist moves (t -> t + a t (1 - t) over the ink
                   height, |a| <= 0.6 / 0.9) and the top widens or narrows against the bottom
                   (|b| <= 0.5 / 0.8)
    aspkeep        digits whose ink aspect lies outside their class's 2.5-97.5 % range in the
                   real *training* part removed (the validation digits set nothing here)
    keep_hand      ... only the hand font's outliers removed
    keep_printed   ... only the printed fonts' outliers removed
    aspwidthkeep   aspkeep, then stroke-width outliers too (ink / skeleton length, same range)
    pen            (with ``--pen``) the spec re-rendered with a pen that has dynamics: the
                   template's spline is the path the writer intends, the pen a damped spring
                   chasing a target that runs along it (natural frequency 8-20 per unit of
                   path, damping 0.5-0.9, per stroke), so corners round off and curves are cut
                   short as in fast writing; a prototype patched into the hand, not a setting

Then, per variant, validation only (the test digits stay unseen)::

    python benchmarks/digits_realism_probes.py --procedural out/digits_mnist --out out/probes
    python benchmarks/digits_tstr.py --procedural out/digits_mnist --rows pixelcnn \\
        --pixelcnn-samples out/probes/blur05.npz --seeds 5 --epochs 2 \\
        --jitter shear=15,elastic=0.8,elastic_sigma=4 --threads 2 --validation-only --no-track

(the ``pixelcnn`` row is the samples-only row: it trains on whatever samples file it is given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

INK = 60  # grey level above which a pixel counts for a digit's ink box (aspect)
WARP_INK = 25  # ... and for the box the proportion warp spans (faint ends included)


def resaturated(images: np.ndarray, q: float = 99.5) -> np.ndarray:
    """Each image scaled so its brightest ink (percentile ``q``) is white, as MNIST's is."""
    top = np.percentile(images.reshape(len(images), -1), q, axis=1)[:, None, None]
    return np.clip(images / np.maximum(top, 1e-3), 0.0, 1.0)


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    return resaturated(np.stack([ndimage.gaussian_filter(i, sigma) for i in images]))


def proportions(images: np.ndarray, waist: float, taper: float, seed: int = 0) -> np.ndarray:
    """A random low-order warp per digit: waist height and top-versus-bottom width."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : images.shape[1], 0 : images.shape[2]].astype(np.float64)
    out = np.empty_like(images)
    for k, im in enumerate(images):
        ys, xs = np.nonzero(im > WARP_INK / 255)
        top, height = ys.min(), max(ys.max() - ys.min(), 1)
        cx = (xs.min() + xs.max()) / 2
        a, b = rng.uniform(-waist, waist), rng.uniform(-taper, taper)
        t = np.clip((rows - top) / height, 0.0, 1.0)
        src_r = top + height * ((rows - top) / height + a * t * (1 - t))
        src_c = cx + (cols - cx) / (1 + b * (0.5 - t))
        out[k] = ndimage.map_coordinates(im, [src_r, src_c], order=1, mode="constant")
    return out


def aspects(images: np.ndarray) -> np.ndarray:
    """Ink-box width / height per image."""
    out = []
    for im in images:
        r, c = np.nonzero(im > INK)
        out.append((c.max() - c.min() + 1) / (r.max() - r.min() + 1))
    return np.array(out)


def stroke_widths(images: np.ndarray) -> np.ndarray:
    """Ink mass over skeleton length (px): the mean stroke width."""
    from skimage.morphology import skeletonize

    x = images.astype(np.float32) / 255
    return np.array([i.sum() / max(int(skeletonize(i > 0.5).sum()), 1) for i in x])


def dynamic_pen(omega: tuple[float, float], zeta: tuple[float, float]) -> Any:
    """A replacement for the hand's spline: the pen, a damped spring, chases a target moving
    at unit speed along the spline; each stroke draws its frequency and damping from a seed
    made of its points (so a glyph is the same every time it is built)."""
    import zlib

    from synthcv.assets import handwriting

    spline = handwriting._catmull_rom

    def trajectory(points: np.ndarray) -> np.ndarray:
        path = spline(points)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        if arc[-1] <= 1e-9:
            return path
        rng = np.random.default_rng(zlib.crc32(np.round(points, 6).tobytes()))
        w, z = rng.uniform(*omega), rng.uniform(*zeta)
        dt = 0.2 / w
        n = int(np.ceil(arc[-1] / dt)) + 1
        s = np.minimum(np.arange(n) * dt, arc[-1])
        target = np.c_[np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])]
        pos = path[0].copy()
        vel = (path[1] - path[0]) / max(arc[1], 1e-9)
        out = [pos.copy()]
        for i in range(1, n + int(1.0 / (z * w * dt))):  # then it comes to rest
            vel = vel + (w * w * (target[min(i, n - 1)] - pos) - 2 * z * w * vel) * dt
            pos = pos + vel * dt
            out.append(pos.copy())
            if i >= n - 1 and np.linalg.norm(vel) < 0.05:
                break
        return np.asarray(out)

    return trajectory


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procedural", type=Path, required=True, help="synthcv digits dataset")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mnist", default=None, help="mnist-real-8000.npz path")
    p.add_argument("--pen", metavar="SPEC", help="also render SPEC with the dynamic pen")
    p.add_argument("--pen-count", type=int, default=10000)
    args = p.parse_args(argv)
    announce()
    from synthcv.realdata import load_mnist8000, validation_part
    from synthcv.tasks.data import load_synthcv_dataset

    ds = load_synthcv_dataset(args.procedural, progress=False)
    x, y = ds.images, ds.labels
    hand = np.asarray(ds.factors["glyph.font"]) == "hand"
    rx, ry = load_mnist8000("train", args.mnist)
    part = validation_part(len(ry), "train")
    rx, ry = rx[part], ry[part]
    args.out.mkdir(parents=True, exist_ok=True)

    def save(name: str, images: np.ndarray, labels: np.ndarray) -> None:
        if images.dtype != np.uint8:
            images = np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)
        np.savez_compressed(args.out / f"{name}.npz", images=images, labels=labels)
        flat = images.reshape(len(images), -1) / 255
        ink, mid = (flat > 0.1).sum(1).mean(), ((flat > 0.1) & (flat < 0.9)).sum(1).mean()
        print(f"{name:13s} {len(images):6d} digits, ink {ink:5.1f} px, mid-tone {mid:5.1f} px")

    f = x.astype(np.float32) / 255
    save("base", x, y)
    save("blur05", blurred(f, 0.5), y)
    save("blur07", blurred(f, 0.7), y)
    eroded = np.stack([ndimage.grey_erosion(i, size=(2, 2)) for i in f])
    save("erode_blur05", blurred(eroded, 0.5), y)
    save("prop6", proportions(f, 0.6, 0.5), y)
    save("prop9", proportions(f, 0.9, 0.8), y)
    real_a, synth_a = aspects(rx), aspects(x)
    lo = np.array([np.percentile(real_a[ry == c], 2.5) for c in range(10)])
    hi = np.array([np.percentile(real_a[ry == c], 97.5) for c in range(10)])
    outlier = (synth_a < lo[y]) | (synth_a > hi[y])
    save("aspkeep", x[~outlier], y[~outlier])
    save("keep_hand", x[~(outlier & hand)], y[~(outlier & hand)])
    save("keep_printed", x[~(outlier & ~hand)], y[~(outlier & ~hand)])
    real_w = stroke_widths(rx)
    kept_x, kept_y = x[~outlier], y[~outlier]
    w = stroke_widths(kept_x)
    ok = (w >= np.percentile(real_w, 2.5)) & (w <= np.percentile(real_w, 97.5))
    save("aspwidthkeep", kept_x[ok], kept_y[ok])
    if args.pen:  # the tiny backend forks its workers: they inherit the patched hand
        import synthcv
        from synthcv.assets import handwriting

        handwriting._catmull_rom = dynamic_pen((8.0, 20.0), (0.5, 0.9))
        rendered = args.out / "pen_dataset"
        synthcv.generate(args.pen, rendered, count=args.pen_count, workers=2, progress=False)
        pen = load_synthcv_dataset(rendered, progress=False)
        save("pen", pen.images, pen.labels)
    print(
        f"real training part: ink aspect median {np.median(real_a):.2f}, stroke width median "
        f"{np.median(real_w):.2f} px; procedural: {np.median(synth_a):.2f}, "
        f"{np.median(stroke_widths(x[:3000])):.2f} px"
    )


if __name__ == "__main__":
    main()
