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

``--drifted-val`` adds a second held-out *drifted* set: the 700 validation digits (unseen by
the champion, which trains on the other 6,300) after each candidate's own drift, with paired
95 % intervals of the gain and of the gain minus half the drop (the recovery target), the
gain by stroke share (``foreground_fraction``) and the commonest confusions. Where the test
halves' drop is a handful of digits, this says whether a candidate recovers at all.

    .venv/bin/python benchmarks/drift_loop_forgetting.py --from out/bench/drift_loop_wise
    .venv/bin/python benchmarks/drift_loop_forgetting.py --from out/bench/drift_loop_thin \
        --drifted-val
"""

from __future__ import annotations

import argparse
import itertools
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
    p.add_argument(
        "--drifted-val",
        action="store_true",
        help="also score each candidate on the validation digits after its own drift",
    )
    args = p.parse_args(argv)
    announce()
    import drift_loop as dl  # beside this file (sys.path above)

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
    if args.drifted_val:
        drifted_val(dl, champion, candidates, splits["val"])


def drifted_val(dl, champion, candidates: list[Path], val: tuple[np.ndarray, np.ndarray]) -> None:
    """Each candidate against the champion on the validation digits after its own drift."""
    from collections import Counter

    from synthcv.monitor.features import image_features
    from synthcv.tasks.classifier_io import load_classifier

    kinds = {dl.drift_slug(k): k for k in dl.DRIFTS}
    vx, vy = val
    ci = dl.fmt_paired

    print(
        "\nThe validation digits after each candidate's drift (paired 95 % intervals, points):\n"
        "\n| drift | champion: undrifted → drifted | candidate | gain | gain − half the drop "
        "| broad change |\n|---|---:|---:|---|---|---|"
    )
    notes = []
    for path in candidates:
        slug = path.parents[2].name.removeprefix("loop-")
        kind = kinds.get(slug)
        if kind is None or kind in ("class prior", "undrifted"):
            continue  # a class-prior batch is a resample, not a change of the digits
        model = load_classifier(path)[0]
        hx = dl.apply_drift(kind, vx, np.random.default_rng(dl.DRIFTS.index(kind)))
        pred_c, pred_a = dl.predictions(champion, hx, vy), dl.predictions(model, hx, vy)
        before, after = (pred_c == vy).astype(float), (pred_a == vy).astype(float)
        base, broad = dl.correct(champion, vx, vy), dl.correct(model, vx, vy)
        f = dl.paired_figures(base, before, after, broad)
        print(
            f"| {kind} | {100 * base.mean():.1f} → {100 * before.mean():.1f} | "
            f"{100 * after.mean():.1f} | {ci(f['gain'])} | {ci(f['vs_half_drop'])} | "
            f"{ci(f['broad_change'])} |"
        )
        share = image_features(hx)["foreground_fraction"]
        edges = np.quantile(share, [0, 0.25, 0.5, 0.75, 1.0])
        parts = []
        for lo, hi in itertools.pairwise(edges):
            m = (share >= lo) & (share <= hi)
            parts.append(
                f"{lo:.3f}–{hi:.3f}: {100 * before[m].mean():.1f} → {100 * after[m].mean():.1f}"
            )

        def top(pred: np.ndarray) -> str:
            wrong = Counter(zip(vy[pred != vy].tolist(), pred[pred != vy].tolist(), strict=True))
            return ", ".join(f"{t}→{q} ×{n}" for (t, q), n in wrong.most_common(5))

        notes.append(
            f"- {kind}: by stroke share (quartiles), champion → candidate: {'; '.join(parts)}.\n"
            f"  champion's commonest errors {top(pred_c)}; candidate's {top(pred_a)}"
        )
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
