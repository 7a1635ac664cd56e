"""How often does `synthcv monitor` find real drift, and how often does it cry wolf?

Reference: 1,000 digits of the real training part. Undrifted batches: random subsets of the
700 validation digits (the same distribution, never in the reference). Drifted batches: the
same subsets after one realistic change — darker / low-contrast capture, blur, heavier or
thinner strokes, rotation, a class-prior shift — and, as a natural drift, subsets of the 1,000
test digits (the heavier-stroke end of the file). Prints the alarm rate per drift type and
batch size; the undrifted row is the false-alarm rate (issue #17: at most 5 % over at least
50 batches).

    .venv/bin/python benchmarks/drift_detection.py --batches 50 --sizes 50,200
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce


def drift(kind: str, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """One realistic change of a batch of real digits."""
    x = images.astype(np.float64)
    if kind == "darker, low contrast":
        return (x * 0.6 + 10).astype(np.uint8), labels
    if kind == "blur":
        return np.stack([ndimage.gaussian_filter(i, 1.0) for i in x]).astype(np.uint8), labels
    if kind == "heavier strokes":
        return np.stack([ndimage.grey_dilation(i, size=(2, 2)) for i in images]), labels
    if kind == "thinner strokes":
        return np.stack([ndimage.grey_erosion(i, size=(2, 1)) for i in images]), labels
    if kind == "rotation 20-30°":
        angles = rng.uniform(20, 30, len(x)) * rng.choice([-1, 1], len(x))
        out = [ndimage.rotate(i, a, reshape=False, order=1) for i, a in zip(x, angles, strict=True)]
        return np.clip(np.stack(out), 0, 255).astype(np.uint8), labels
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=50, help="batches per drift type and size")
    p.add_argument("--sizes", default="50,200", help="comma-separated batch sizes")
    p.add_argument("--reference-n", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--embedding", default="auto", help="auto | pixels | none")
    p.add_argument("--permutations", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/drift_detection"))
    args = p.parse_args(argv)
    announce()

    from synthcv.monitor import detect_drift
    from synthcv.realdata import load_mnist8000, validation_part

    train_x, train_y = load_mnist8000("train")
    test_x, test_y = load_mnist8000("test")
    val = validation_part(len(train_x), "val")
    rest = validation_part(len(train_x), "train")
    rng = np.random.default_rng(0)
    ref_idx = rng.choice(rest, args.reference_n, replace=False)
    ref_x, ref_y = train_x[ref_idx], train_y[ref_idx]
    val_x, val_y = train_x[val], train_y[val]

    emb = None
    if args.embedding == "auto":
        from synthcv.cli.compare import _cache_dir
        from synthcv.tasks.compare import reference_embedding

        emb = reference_embedding(_cache_dir(), None, 0, progress=False)
    elif args.embedding == "pixels":
        from synthcv.tasks.compare import pixel_embedding

        emb = pixel_embedding()
    ref_e = None if emb is None else emb(ref_x)

    kinds = ["none (undrifted)", "darker, low contrast", "blur", "heavier strokes",
             "thinner strokes", "rotation 20-30°", "class prior (half 1s)",
             "test digits (natural)"]  # fmt: skip
    ones = np.nonzero(val_y == 1)[0]
    results = []
    t0 = time.perf_counter()
    for size in [int(s) for s in args.sizes.split(",")]:
        for kind in kinds:
            alarms, named = 0, {}
            for b in range(args.batches):
                brng = np.random.default_rng([size, b])
                if kind == "test digits (natural)":
                    idx = brng.choice(len(test_x), size, replace=False)
                    bx, by = test_x[idx], test_y[idx]
                elif kind == "class prior (half 1s)":
                    idx = np.concatenate(
                        [brng.choice(ones, size // 2), brng.choice(len(val), size - size // 2)]
                    )
                    bx, by = val_x[idx], val_y[idx]
                else:
                    idx = brng.choice(len(val), size, replace=False)
                    bx, by = val_x[idx], val_y[idx]
                    if kind != "none (undrifted)":
                        bx, by = drift(kind, bx, by, brng)
                r = detect_drift(
                    ref_x,
                    bx,
                    reference_labels=ref_y,
                    current_labels=by,
                    reference_embedding=ref_e,
                    current_embedding=None if emb is None else emb(bx),
                    alpha=args.alpha,
                    permutations=args.permutations,
                    seed=b,
                )
                alarms += r.drifted
                for f in r.drifted_features:
                    named[f.feature] = named.get(f.feature, 0) + 1
            top = sorted(named.items(), key=lambda kv: -kv[1])[:3]
            results.append(
                {"size": size, "drift": kind, "alarm_rate": alarms / args.batches, "top": top}
            )
            print(f"n={size:4d}  {kind:24s} alarms {alarms:3d}/{args.batches}  "
                  f"most named: {', '.join(f'{k} ({v})' for k, v in top)}", flush=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "seconds": round(seconds, 1),
        "batches": args.batches,
        "alpha": args.alpha,
        "embedding": args.embedding,
        "reference_n": args.reference_n,
    }
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": results}, indent=2))
    print(f"{seconds:.0f} s; wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
