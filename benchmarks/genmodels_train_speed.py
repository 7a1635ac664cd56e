"""Training speed of a Gated PixelCNN on this CPU: fp32 vs bf16 autocast vs bf16 + compile.

Times full training steps (forward, backward, Adam) on random 28x28 8-bit batches, the same
model, batch and threads for every mode, and prints images/s with the speed-up over fp32 eager
measured in the same run. One warm-up step is the epoch's smaller last batch, as in training.
bf16 pays on CPUs with AMX tiles (``amx_bf16`` in /proc/cpuinfo);
elsewhere expect it to be slower.

    .venv/bin/python benchmarks/genmodels_train_speed.py --channels 64 --layers 8 --threads 2
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
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=4, help="untimed steps (compile happens here)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--last-batch",
        type=int,
        default=7000 % 64,
        help="one warm-up step on this many images: the smaller last batch of an epoch on the"
        " 7,000 training digits, which makes torch.compile recompile for varying batch sizes"
        " as it does in training (0 = every batch full)",
    )
    args = ap.parse_args()
    announce()

    import torch

    from synthcv.genmodels.registry import build_model
    from synthcv.genmodels.train import accumulate_gradients, resolve_precision, training_loss

    torch.set_num_threads(args.threads)
    dil = ([1, 2, 1, 4] * args.layers)[: args.layers - 1]
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch_size, 1, 28, 28), generator=gen)
    results = {}
    for mode in ("fp32", "bf16", "bf16+compile"):
        model = build_model(
            "gated-pixelcnn", (1, 28, 28), 256, channels=args.channels, layers=args.layers,
            dilations=dil,
        )  # fmt: skip
        precision = "bf16" if mode.startswith("bf16") else "fp32"
        model, loss_fn = training_loss(model, precision, compile="compile" in mode)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                t0, warm = time.perf_counter(), time.perf_counter() - t0
            xb = x[: args.last_batch] if i == 1 and args.last_batch else x
            opt.zero_grad(set_to_none=True)
            accumulate_gradients(loss_fn, xb, None, None, len(xb))
            opt.step()
        dt = time.perf_counter() - t0
        results[mode] = args.steps * args.batch_size / dt
        print(f"{mode:>13}: {results[mode]:7.1f} images/s  (warm-up {warm:.1f} s)", flush=True)
    base = results["fp32"]
    print(
        f"Gated PixelCNN {args.channels} ch x {args.layers} layers, batch {args.batch_size}, "
        f"{args.threads} threads; baseline fp32 eager {base:.1f} images/s"
    )
    for mode, v in results.items():
        print(f"  {mode:>13}: {v / base:.2f}x fp32")
    print(f"precision 'auto' resolves to {resolve_precision('auto')} on this machine")


if __name__ == "__main__":
    main()
