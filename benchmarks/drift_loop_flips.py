"""Which undrifted digits do a drift's candidates lose, and are they the same every time?

Reads the saved candidates of one drift (``loop-<drift>/batches/*/candidate.pt``) from one or
more `benchmarks/drift_loop.py` outputs that share a champion and a split, and lists, for
the production pool's and the held-out half's undrifted digits, each candidate's flips against
the champion (lost: the champion right, the candidate wrong; gained: the reverse), how many of
the candidates lose each digit, the champion's probability of the true class and its margin
(top minus runner-up) there, and the digit's ink (mean intensity) as a percentile among its
class. It trains nothing: it explains a broad change, it does not choose anything.

    .venv/bin/python benchmarks/drift_loop_flips.py --drift blur \
        --from out/bench/drift_loop_epochs4 out/bench/drift_loop_frozenbn --picture /tmp/f.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="runs", type=Path, nargs="+", required=True)
    p.add_argument("--drift", default="blur", help="the loop-<drift> folder's name")
    p.add_argument("--picture", type=Path, help="PNG of every digit a candidate lost")
    args = p.parse_args(argv)
    announce()
    import drift_loop as dl  # beside this file (sys.path above)
    import torch

    from synthcv.tasks.classifier_io import load_classifier
    from synthcv.tasks.train import to_tensor

    champions = {(r / "champion.pt").read_bytes() for r in args.runs}
    if len(champions) != 1:
        sys.exit("error: the runs were started from different champions; flips would not compare")
    champion = load_classifier(str(args.runs[0] / "champion.pt"))[0].eval()
    candidates = {}
    for r in args.runs:
        for c in sorted((r / f"loop-{args.drift}" / "batches").glob("*/candidate.pt")):
            candidates[r.name] = load_classifier(str(c))[0].eval()
    if not candidates:
        sys.exit(f"error: no loop-{args.drift}/batches/*/candidate.pt under {args.runs}")
    split = {
        json.loads((r / "drift_loop.json").read_text()).get("split", "file") for r in args.runs
    }
    if len(split) != 1:
        sys.exit(f"error: the runs halved the test digits differently ({sorted(split)})")
    splits = dl.digit_splits(split.pop())

    def probs(model, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(to_tensor(x, 1)), 1).numpy()

    lost_images = []
    for part in ("pool", "held"):
        x, y = splits[part]
        pc = probs(champion, x)
        right = pc.argmax(1) == y
        ranked = np.sort(pc, 1)
        margin = ranked[:, -1] - ranked[:, -2]
        ink = np.asarray(x, np.float32).reshape(len(x), -1).mean(1)
        lost: Counter[int] = Counter()
        print(f"\n{part} ({len(y)} undrifted digits; the champion gets {int(right.sum())} right)")
        for name, model in candidates.items():
            pred = probs(model, x).argmax(1)
            gone = np.flatnonzero(right & (pred != y))
            won = np.flatnonzero(~right & (pred == y))
            lost.update(gone.tolist())
            said = ", ".join(f"#{i} {y[i]}→{pred[i]}" for i in gone) or "none"
            print(f"  {name}: lost {len(gone)} ({said}); gained {len(won)}")
        print("  | digit | label | lost by | champion p(true) | champion margin | ink percentile |")
        print("  |---|---|---|---|---|---|")
        for i, n in sorted(lost.items(), key=lambda t: (-t[1], t[0])):
            same = ink[y == y[i]]
            pct = 100 * float((same < ink[i]).mean())
            print(
                f"  | #{i} | {y[i]} | {n} of {len(candidates)} | {pc[i, y[i]]:.2f} | "
                f"{margin[i]:.2f} | {pct:.0f} |"
            )
            lost_images.append(np.asarray(x[i], np.float32))
        q = np.quantile(margin[right], [0.01, 0.05])
        print(f"  the champion's margin where it is right: 1 % {q[0]:.2f}, 5 % {q[1]:.2f}")
    if args.picture and lost_images:
        from PIL import Image

        row = np.concatenate([np.pad(im, 2, constant_values=64) for im in lost_images], 1)
        img = Image.fromarray(row.clip(0, 255).astype(np.uint8))
        img.resize((row.shape[1] * 4, row.shape[0] * 4), Image.NEAREST).save(args.picture)
        print(f"\nwrote {args.picture} (the lost digits, pool first, in the tables' order)")


if __name__ == "__main__":
    main()
