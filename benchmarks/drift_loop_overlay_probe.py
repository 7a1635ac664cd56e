"""Would a different targeted set have forgotten less? Re-render one drift's overlay with a
field replaced, fine-tune the champion on it with the loop's own config, and score it.

Reuses a `benchmarks/drift_loop.py` output: the drift's overlay, augmentation and render seed
(``loop-<drift>/batches/*``), its loop config and batch. Each ``--set PATH=JSON`` replaces
one field of the overlay whole (``$patch: replace``); the set is rendered once under --out,
then fine-tuned with ``finetune.seed`` 0..N-1. Printed per seed: the gain on the drifted batch
and the loss on the production pool's undrifted digits (the gate's data), and, deciding
nothing, the held-out half's recovery and broad loss.

    .venv/bin/python benchmarks/drift_loop_overlay_probe.py --from out/bench/drift_loop_frozenbn \
        --drift blur --set 'objects.defaults.asset.stroke={"uniform": [-0.02, 0.05]}' \
        --out /tmp/blur_stroke --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce


def replaced(overlay: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """``overlay`` with each ``PATH=JSON`` field replaced whole."""
    for item in sets:
        path, _, value = item.partition("=")
        if not path or not value:
            sys.exit(f"error: --set {item!r}: expected PATH=JSON")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            sys.exit(f"error: --set {path}: the value is not JSON ({exc})")
        node = overlay
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = {"$patch": "replace", **parsed} if isinstance(parsed, dict) else parsed
    return overlay


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="src", type=Path, required=True, help="drift_loop.py --out")
    p.add_argument("--drift", default="blur", help="the loop-<drift> folder's name")
    p.add_argument("--set", dest="sets", action="append", default=[], help="PATH=JSON")
    p.add_argument("--out", type=Path, required=True, help="where the targeted set is rendered")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    announce()
    import drift_loop as dl  # beside this file (sys.path above)

    from synthcv.loop.config import load_loop_config
    from synthcv.loop.model_kinds import Classification
    from synthcv.pipeline.runner import generate
    from synthcv.tasks.classifier_io import load_classifier

    src, out = args.src.resolve(), args.out.resolve()
    champion = load_classifier(str(src / "champion.pt"))[0]
    split = json.loads((src / "drift_loop.json").read_text()).get("split", "file")
    splits = dl.digit_splits(split)
    (dec_x, dec_y), (held_x, held_y) = splits["pool"], splits["held"]
    os.chdir(src)
    work = next(Path(f"loop-{args.drift}/batches").iterdir())
    cfg = load_loop_config(f"loop-{args.drift}.yaml")
    overlay = replaced(yaml.safe_load((work / "overlay.yaml").read_text()), args.sets)
    t0 = time.perf_counter()
    generate(overlay, out, count=cfg.targeted.count, progress=False, on_empty="allow")
    print(f"rendered {cfg.targeted.count} in {time.perf_counter() - t0:.0f} s", flush=True)
    targeted = dl.targeted_set(work, cfg, rendered=out)  # the pass's augmentation and seed
    kind = next(k for k in dl.DRIFTS if dl.drift_slug(k) == args.drift)
    batch = np.load(f"batch-{args.drift}.npz")
    drifted_held = dl.drift_draws(kind, dec_x, held_x, len(batch["labels"]))[2]
    before = {
        "batch": dl.acc(champion, batch["images"], batch["labels"]),
        "pool": dl.acc(champion, dec_x, dec_y),
        "held": dl.acc(champion, held_x, held_y),
        "held_drift": dl.acc(champion, drifted_held, held_y),
    }
    drop = before["held"] - before["held_drift"]
    for s in range(args.seeds):
        c = cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update={"seed": s})})
        model = Classification().finetune(c, champion, targeted)
        gain = dl.acc(model, drifted_held, held_y) - before["held_drift"]
        row = {
            "seed": s,
            "batch_gain": 100 * (dl.acc(model, batch["images"], batch["labels"]) - before["batch"]),
            "pool_loss": 100 * (before["pool"] - dl.acc(model, dec_x, dec_y)),
            "held_recovered_pct": 100 * gain / drop if drop > 0 else float("nan"),
            "held_broad_loss": 100 * (before["held"] - dl.acc(model, held_x, held_y)),
        }
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}))
    print(f"`{' '.join([sys.executable, *sys.argv])}`")


if __name__ == "__main__":
    main()
