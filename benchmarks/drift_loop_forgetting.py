"""Where does a `synthcv loop` candidate forget, and could the gate have seen it?

Reads a `benchmarks/drift_loop.py` output (its champion and every batch's candidate) and
compares each candidate with the champion digit by digit on three unchanged real sets:

    val    the 700 validation digits of the training writers (the gate's broad set)
    pool   the production pool's 500 test digits, unchanged (the writers the batches came from)
    held   the other 500 test digits, unchanged (held out: the benchmark's broad figure)

(the halving is the drift_loop run's own ``--split``: file order or random)

For each: accuracy of both, the digits the candidate lost and gained, and the exact McNemar
p-value of that split (a paired test: the two models answer the same digits). The gate is
blind to a loss that shows only where it does not look. Nothing here chooses anything.

    .venv/bin/python benchmarks/drift_loop_forgetting.py --from out/bench/drift_loop_wise
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: under 'no difference' each discordant digit is a coin
    flip between the two models."""
    return float(binomtest(lost, lost + gained, 0.5).pvalue) if lost + gained else 1.0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="src", type=Path, required=True, help="drift_loop.py --out")
    args = p.parse_args(argv)
    announce()
    spec = importlib.util.spec_from_file_location(
        "drift_loop", Path(__file__).with_name("drift_loop.py")
    )
    dl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dl)

    from synthcv.tasks.classifier_io import load_classifier
    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.train import evaluate

    champion_path = args.src / "champion.pt"
    candidates = sorted(args.src.glob("loop-*/batches/*/candidate.pt"))
    if not champion_path.is_file() or not candidates:
        raise SystemExit(f"error: {args.src} holds no champion.pt and candidates of drift_loop.py")
    champion = load_classifier(champion_path)[0]
    split = json.loads((args.src / "drift_loop.json").read_text()).get("split", "file")
    splits = dl.digit_splits(split)
    print(
        "| candidate (drift) | set | champion % | candidate % | lost | gained | McNemar p |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    totals: dict[str, list[int]] = {name: [0, 0] for name in ("val", "pool", "held")}
    for path in candidates:
        model = load_classifier(path)[0]
        drift = path.parents[2].name.removeprefix("loop-")
        for name in ("val", "pool", "held"):
            data = ArraySet(*splits[name])
            before = evaluate(champion, data)["correct"]
            after = evaluate(model, data)["correct"]
            lost, gained = int(np.sum(before & ~after)), int(np.sum(~before & after))
            totals[name][0] += lost
            totals[name][1] += gained
            print(
                f"| {drift} | {name} | {100 * before.mean():.1f} | {100 * after.mean():.1f} | "
                f"{lost} | {gained} | {mcnemar_exact(lost, gained):.3f} |"
            )
    for name, (lost, gained) in totals.items():
        print(
            f"all candidates on {name}: lost {lost}, gained {gained} "
            f"(exact McNemar p = {mcnemar_exact(lost, gained):.4f})"
        )


if __name__ == "__main__":
    main()
