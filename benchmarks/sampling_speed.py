"""Cached vs naive sampling speed of a class-conditional Gated PixelCNN on 28x28 digits.

Both samplers run on the same model with the same seed in the same process; the report gives
images/s of each, the speed-up, whether the images are identical, and the wall time for
``--n-big`` (default 1,000) class-conditional samples with the cached sampler.

    nice -n 10 .venv/bin/python benchmarks/sampling_speed.py --n-compare 8 --n-big 1000

Without ``--run`` a randomly initialized model with the benchmark architecture is used (the
speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="genmodel run dir (gated-pixelcnn)")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--n-compare", type=int, default=8, help="images for the naive/cached pair")
    ap.add_argument("--n-big", type=int, default=1000, help="cached class-conditional samples")
    ap.add_argument("--batch-size", type=int, default=None, help="cached sampler batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    announce()

    import torch
    from rich.console import Console
    from rich.table import Table

    from synthcv.genmodels import build_model, load_checkpoint, num_params

    torch.set_num_threads(args.threads)
    console = Console()
    if args.run:
        model, _ = load_checkpoint(args.run / "checkpoint.pt")
    else:
        model = build_model(
            "gated-pixelcnn",
            (1, args.size, args.size),
            256,
            args.classes,
            seed=args.seed,
            channels=args.channels,
            layers=args.layers,
        )
    model.eval()
    ncls = max(model.num_classes, 1)
    cond = (torch.arange(args.n_compare) % ncls) if model.num_classes else None
    console.print(f"model {model.model_name} {model.image_shape} params {num_params(model):,}")

    t0 = time.perf_counter()
    cached = model.sample(args.n_compare, cond=cond, seed=args.seed, cached=True, progress=True)
    t_cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = model.sample(args.n_compare, cond=cond, seed=args.seed, cached=False, progress=True)
    t_naive = time.perf_counter() - t0
    same = (cached == naive).float().mean().item()

    big_cond = (torch.arange(args.n_big) % ncls) if model.num_classes else None
    t0 = time.perf_counter()
    model.sample(args.n_big, cond=big_cond, seed=args.seed + 1, batch_size=args.batch_size,
                 progress=True)  # fmt: skip
    t_big = time.perf_counter() - t0

    table = Table(title=f"sampling {args.size}x{args.size}, {args.threads} threads")
    for col in ("sampler", "images", "seconds", "images/s"):
        table.add_column(col, justify="right")
    n = args.n_compare
    table.add_row("naive", str(n), f"{t_naive:.2f}", f"{n / t_naive:.3f}")
    table.add_row(
        "cached", str(args.n_compare), f"{t_cached:.2f}", f"{args.n_compare / t_cached:.3f}"
    )
    table.add_row("cached", str(args.n_big), f"{t_big:.2f}", f"{args.n_big / t_big:.3f}")
    console.print(table)
    console.print(f"speed-up cached/naive (same n, same seed): {t_naive / t_cached:.1f}x")
    console.print(f"identical dimensions cached vs naive: {100 * same:.4f}%")
    cond_txt = "class-conditional" if model.num_classes else "unconditional"
    console.print(f"{args.n_big} {cond_txt} samples with the cached sampler: {t_big:.1f} s")


if __name__ == "__main__":
    main()
