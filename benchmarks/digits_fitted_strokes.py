"""Is the shape repertoire the whole gap? Write digits from the skeletons of a few real ones.

A diagnostic for issue #16, not a generator setting. It writes two samples files (images,
labels; 28 x 28, framed as MNIST: ink fitted to 20 px, centre of mass in the middle), both
drawn by the *same* pen and rasteriser, so they differ only in where the strokes come from:

    hand.npz       the built-in hand's templates (``--repertoire``, default 2), each sample a
                   new ``style`` and ``wobble``
    fitted.npz     templates fitted to ``--real N`` real *training-part* digits (a balanced
                   draw, N / 10 a class): each digit's skeleton (scikit-image), traced into
                   strokes between its ends and junctions, simplified to a template's density
                   of control points, with its own pen width (ink area / skeleton length);
                   then drawn exactly as the hand draws a template (the same wander, width,
                   bend, pen and slant)

Train synthetic-only on each and score the validation digits (the test digits stay unseen)::

    python benchmarks/digits_fitted_strokes.py --out out/fitted --real 100
    python benchmarks/digits_tstr.py --rows pixelcnn --pixelcnn-samples out/fitted/fitted.npz \\
        --seeds 5 --epochs 2 --jitter shear=15,elastic=0.8,elastic_sigma=4 --threads 2 \\
        --validation-only --no-track

Read ``fitted`` against the ``real-100`` row: the same N labelled real digits, used as data or
used as stroke templates. The fitted set carries real information, so it is not procedural.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce
from digit_scenes_detection import REAL_SMALL_SEED

FITTED_REPERTOIRE = 99  # where the fitted templates are put for hand_outline to draw
SUPERSAMPLE = 4


def trace_skeleton(skel: np.ndarray) -> list[np.ndarray]:
    """Pixel paths (row, col) between the skeleton's ends and junctions; a closed loop without
    either is walked once around."""
    pts = {tuple(p) for p in np.argwhere(skel)}

    def neighbours(p):
        r, c = p
        return [
            (r + dr, c + dc)
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
            if (dr or dc) and (r + dr, c + dc) in pts
        ]

    degree = {p: len(neighbours(p)) for p in pts}
    nodes = {p for p, d in degree.items() if d != 2}
    seen_edges: set[frozenset] = set()
    paths = []

    def walk(start, nxt):
        path, prev, cur = [start, nxt], start, nxt
        while cur not in nodes:
            step = [q for q in neighbours(cur) if q != prev and q not in path[-3:]]
            if not step:
                break
            prev, cur = cur, step[0]
            path.append(cur)
            if cur == start:
                break
        return path

    for n in nodes:
        for q in neighbours(n):
            path = walk(n, q)
            key = frozenset([path[0], path[-1], path[1], path[-2]])
            if key in seen_edges:
                continue
            seen_edges.add(key)
            paths.append(np.array(path, dtype=np.float64))
    visited = {tuple(p) for path in paths for p in path.astype(int)}
    for p in pts - visited - nodes:  # loops with no end or junction (an "0")
        if p in visited:
            continue
        q = neighbours(p)[0]
        path = walk(p, q)
        visited |= set(path)
        paths.append(np.array(path, dtype=np.float64))
    return paths


def fit_template(image: np.ndarray) -> tuple[list, float] | None:
    """A hand template (strokes of one piece each, unit ink height, y up) and a pen width
    fitted to one real digit; None if it has no usable skeleton."""
    from PIL import Image
    from shapely.geometry import LineString
    from skimage.morphology import skeletonize

    big = np.asarray(
        Image.fromarray(image).resize((28 * SUPERSAMPLE,) * 2, Image.Resampling.BILINEAR)
    )
    ink = big > 100
    if ink.sum() < 20:
        return None
    skel = skeletonize(ink)
    rows = np.nonzero(ink.any(1))[0]
    height = float(rows[-1] - rows[0] + 1)
    top = float(rows[0])
    strokes = []
    for path in trace_skeleton(skel):
        if len(path) < 3:
            continue
        xy = np.stack([path[:, 1], top + height - path[:, 0]], axis=1) / height  # y up
        line = LineString(xy).simplify(0.035)
        coords = [tuple(map(float, c)) for c in line.coords]
        if line.length < 0.06:  # skeleton spurs
            continue
        strokes.append([coords])
    if not strokes:
        return None
    pen = float(ink.sum()) / max(float(skel.sum()), 1.0) / height
    return strokes, float(np.clip(pen, 0.06, 0.25))


def draw(geom, shear_deg: float) -> np.ndarray:
    """A shapely region → 28 x 28 uint8, MNIST's framing: ink fitted into 20 x 20 (aspect
    kept), centre of mass moved to (14, 14), anti-aliased by supersampling."""
    from PIL import Image, ImageDraw
    from scipy import ndimage
    from shapely import affinity

    geom = affinity.skew(geom, xs=shear_deg, origin=(0, 0))
    x0, y0, x1, y1 = geom.bounds
    s = 20.0 / max(x1 - x0, y1 - y0)
    big = 28 * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(canvas)

    def to_px(coords):
        return [
            ((4 + (x - x0) * s) * SUPERSAMPLE, (4 + (y1 - y) * s) * SUPERSAMPLE) for x, y in coords
        ]

    for poly in getattr(geom, "geoms", [geom]):
        d.polygon(to_px(poly.exterior.coords), fill=255)
        for hole in poly.interiors:
            d.polygon(to_px(hole.coords), fill=0)
    img = np.asarray(canvas.resize((28, 28), Image.Resampling.BOX), dtype=np.float64)
    cy, cx = ndimage.center_of_mass(img)
    img = ndimage.shift(img, (14 - cy - 0.5, 14 - cx - 0.5), order=1)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_set(
    n: int,
    templates: dict,
    rng: np.random.Generator,
    repertoire: int,
    flourish: float = 0.0,
    fitted_pen: bool = True,
):
    from synthcv.assets import handwriting as hw

    images, labels = np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.int64)
    for i in range(n):
        c = i % 10
        style = int(rng.integers(0, 1_000_000))
        wobble = float(rng.uniform(0.04, 0.2))  # examples/digits_mnist.yaml's range
        shear = float(np.clip(rng.normal(8, 12), -20, 35))  # digits_hand.yaml's slant
        pen = hw.PEN_WIDTH
        if repertoire == FITTED_REPERTOIRE and fitted_pen:
            pen = templates[str(c)][style % len(templates[str(c)])][1]
        geom = hw.hand_outline(
            str(c), style, wobble, pen=pen, repertoire=repertoire, flourish=flourish
        )
        images[i], labels[i] = draw(geom, shear), c
    return images, labels


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--real", type=int, default=100, help="real training digits to fit")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--repertoire", type=int, default=2, help="the hand's, for hand.npz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--flourish", type=float, default=0.0, help="the hand's stroke-end dynamics (both sets)"
    )
    p.add_argument(
        "--pen",
        choices=("fitted", "hand"),
        default="fitted",
        help="pen width of the fitted set: each real digit's own (ink / skeleton), or the hand's",
    )
    p.add_argument(
        "--pick",
        choices=("balanced", "scenes"),
        default="balanced",
        help="which real digits to fit: a balanced draw from the 6,300 training-part digits "
        "(classification), or exactly the 100 of the digit scenes' real-small set "
        "(synthcv.digit_scenes.source_subset of the 7,000 training digits, seed 3)",
    )
    p.add_argument("--only-fitted", action="store_true", help="skip hand.npz")
    args = p.parse_args(argv)
    announce()
    from synthcv.assets import handwriting as hw
    from synthcv.realdata import load_mnist8000, validation_part
    from synthcv.tasks.data import balanced_subset

    tx, ty = load_mnist8000("train")
    if args.pick == "scenes":
        from synthcv.digit_scenes import source_subset

        pick = source_subset(ty, args.real, REAL_SMALL_SEED)
    else:
        part = validation_part(len(tx), "train")
        tx, ty = tx[part], ty[part]
        pick = balanced_subset(ty, args.real, args.seed)
    fitted: dict[str, list] = {str(c): [] for c in range(10)}
    for i in pick:
        t = fit_template(tx[i].squeeze())
        if t is not None:
            fitted[str(int(ty[i]))].append(t)
    print("fitted templates per class:", {c: len(v) for c, v in fitted.items()})
    # hand_outline draws TEMPLATES[char][variant]: the fitted ones go after the hand's own,
    # in a repertoire of their own that picks only them
    # the hand's own repertoires keep their template counts: appending the fitted templates
    # must not let a hand repertoire draw them (a repertoire that lists no count for a digit
    # takes every template of TEMPLATES)
    for rep in list(hw.REPERTOIRES):
        hw.REPERTOIRES[rep] = {c: hw.hand_variants(c, rep) for c in hw.TEMPLATES}
    offsets = {}
    for c, ts in fitted.items():
        offsets[c] = len(hw.TEMPLATES[c])
        hw.TEMPLATES[c] = hw.TEMPLATES[c] + [strokes for strokes, _ in ts]
    hw.REPERTOIRES[FITTED_REPERTOIRE] = {}
    original_variant = hw.hand_variant

    def fitted_variant(char: str, style: int, repertoire: int = hw.DEFAULT_REPERTOIRE) -> int:
        if repertoire == FITTED_REPERTOIRE:
            return offsets[char] + int(style) % len(fitted[char])
        return original_variant(char, style, repertoire)

    hw.hand_variant = fitted_variant
    args.out.mkdir(parents=True, exist_ok=True)
    sets = [("fitted", FITTED_REPERTOIRE)] + (
        [] if args.only_fitted else [("hand", args.repertoire)]
    )
    for name, rep in sets:
        rng = np.random.default_rng(args.seed + 1)
        images, labels = render_set(
            args.count, fitted, rng, rep, args.flourish, fitted_pen=args.pen == "fitted"
        )
        np.savez_compressed(args.out / f"{name}.npz", images=images, labels=labels)
        print(f"wrote {args.out / name}.npz: {len(images)} digits")
    sheet = np.vstack(
        [np.hstack(list(np.load(args.out / f"{n}.npz")["images"][:20])) for n, _ in sets]
    )
    from PIL import Image

    Image.fromarray(sheet).save(args.out / "sheet.png")


if __name__ == "__main__":
    main()
