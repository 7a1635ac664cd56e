"""Why the rotation row of `drift_loop.py` stops near half of its drop: the region, the
rendered digits, or the fine-tune recipe?

Reuses a `benchmarks/drift_loop.py` output (its champion, rotation batch, loop config and
targeted set) and fine-tunes the champion with the loop's own settings on:

    region   the loop's targeted set (yaw uniform over the batch's whole span)
    oracle   the same overlay with yaw drawn from the drift's own angles (±25…40°, 1° steps),
             2,000 renders: what a perfect region would give
    real     2,000 *real* training-part digits under the benchmark's rotation: the ceiling of
             any rendered set under this recipe
    budget   the loop's targeted set with replay 0.5, 4 epochs, or both: a larger targeted
             share or more steps, and what they cost on the decision data

Each reports, per fine-tune seed: batch gain and pool loss (the decision data), recovery of
the drop and broad loss on the held-out half and on the 700 validation digits (the training
writers, unseen by champion and candidates) after the same rotation. Nothing here is chosen.

    .venv/bin/python benchmarks/drift_loop_rotation.py --from out/bench/drift_loop_pressure_distill
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

PARTS = ("region", "oracle", "real", "budget")
BUDGETS = {
    "replay 0.5": {"replay": 0.5},
    "epochs 4": {"epochs": 4},
    "replay 0.5 + epochs 4": {"replay": 0.5, "epochs": 4},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="src", type=Path, required=True, help="drift_loop.py --out")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--seeds", type=int, default=3, help="fine-tune seeds 0..N-1 per variant")
    args = p.parse_args(argv)
    announce()
    import drift_loop as dl  # beside this file (sys.path above)

    from synthcv.loop.config import load_loop_config
    from synthcv.loop.model_kinds import Classification
    from synthcv.tasks.classifier_io import load_classifier
    from synthcv.tasks.compare import load_compare_source
    from synthcv.tasks.data import ArraySet

    t_start = time.perf_counter()
    src = args.src.resolve()
    work = next((src / "loop-rotation/batches").iterdir())
    cfg = load_loop_config(src / "loop-rotation.yaml")
    kind = Classification()
    champion = load_classifier(str(src / "champion.pt"))[0]
    split = json.loads((src / "drift_loop.json").read_text()).get("split", "file")
    splits = dl.digit_splits(split)
    (vx, vy), (px, py), (hx, hy) = splits["val"], splits["pool"], splits["held"]
    batch = np.load(src / "batch-rotation.npz")
    hdx = dl.drift_draws("rotation", px, hx, len(batch["labels"]))[2]
    vdx = dl.apply_drift("rotation", vx, np.random.default_rng(dl.DRIFTS.index("rotation")))
    base = {
        "batch": dl.acc(champion, batch["images"], batch["labels"]),
        "pool": dl.acc(champion, px, py),
        "held": dl.acc(champion, hx, hy),
        "held_drift": dl.acc(champion, hdx, hy),
        "val": dl.acc(champion, vx, vy),
        "val_drift": dl.acc(champion, vdx, vy),
    }
    print("champion", json.dumps(base), flush=True)

    def loop_set():
        return dl.targeted_set(work, cfg)

    def oracle_set():
        out = src / "rotation-oracle"
        overlay = yaml.safe_load((work / "overlay.yaml").read_text())
        angles = [float(a) for a in np.arange(25, 40.5, 1.0)]
        overlay["objects"]["pose"]["yaw"] = {
            "$patch": "replace",
            "choice": [-a for a in angles] + angles,
        }
        out.mkdir(exist_ok=True)
        (out / "overlay.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
        if not (out / "targeted" / "manifest.json").exists():
            synthcv = Path(sys.executable).with_name("synthcv")
            cmd = [synthcv, "generate", out / "overlay.yaml", "--out", out / "targeted"]
            subprocess.run([*map(str, cmd), "--count", str(cfg.targeted.count)], check=True)
        return dl.targeted_set(work, cfg, rendered=out / "targeted")

    def real_set():
        train = load_compare_source(cfg.reference, None, 0, cfg.mnist)
        pick = np.random.default_rng(99).permutation(len(train))[: cfg.targeted.count]
        images = dl.apply_drift("rotation", train.images[pick], np.random.default_rng(98))
        return ArraySet(images, train.labels[pick], name="real rotated")

    variants: list[tuple[str, object, dict]] = []
    parts = args.parts.split(",")
    if "region" in parts:
        variants.append(("region", loop_set, {}))
    if "oracle" in parts:
        variants.append(("oracle", oracle_set, {}))
    if "real" in parts:
        variants.append(("real", real_set, {}))
    if "budget" in parts:
        variants += [(f"budget: {n}", loop_set, u) for n, u in BUDGETS.items()]
    rows = []
    for name, make, update in variants:
        data = make()
        for s in range(args.seeds):
            c = cfg.model_copy(
                update={"finetune": cfg.finetune.model_copy(update={**update, "seed": s})}
            )
            m = kind.finetune(c, champion, data)
            row = {
                "variant": name,
                "seed": s,
                "batch_gain": dl.acc(m, batch["images"], batch["labels"]) - base["batch"],
                "pool_loss": base["pool"] - dl.acc(m, px, py),
                "held_recovered": (dl.acc(m, hdx, hy) - base["held_drift"])
                / (base["held"] - base["held_drift"]),
                "held_broad_loss": base["held"] - dl.acc(m, hx, hy),
                "val_recovered": (dl.acc(m, vdx, vy) - base["val_drift"])
                / (base["val"] - base["val_drift"]),
                "val_broad_loss": base["val"] - dl.acc(m, vx, vy),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    keys = ("batch_gain", "pool_loss", "held_recovered", "held_broad_loss", "val_recovered")
    print(
        "\nmeans over seeds, in points or % of the drop:\n| variant | batch gain | pool loss "
        "| held-out recovered | held-out broad loss | validation recovered |\n"
        "|---|---|---|---|---|---|"
    )
    for name, _, _ in variants:
        rr = [r for r in rows if r["variant"] == name]
        print(
            f"| {name} | "
            + " | ".join(f"{100 * np.mean([r[k] for r in rr]):.1f}" for k in keys)
            + " |"
        )
    result = {
        "base": base,
        "rows": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
        "command": " ".join([sys.executable, *sys.argv]),
    }
    (src / "drift_loop_rotation.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
