"""Why is person keypoint AP low? Training-set size, flips and steps, measured on validation.

``benchmarks/people.py gap`` measures the render-domain gap with a keypoint model whose AP was
too low to tell a gap from noise. This command asks why, on tiny-rendered scenes of
``benchmarks/people_keypoints_near.yaml`` only, and never on a test set: every figure is on
validation scenes rendered with their own seed (41), or on the model's own training scenes.

For each run ``SIZE:FLIP[:STEPS]`` (training scenes, ``train.flip`` probability, gradient steps
of 16) one model (detection + COCO's 17 keypoints, ``width: 32``, input 160, photometric
jitter, seed 0: the recipe of ``people.py gap``) is trained and reported with:

- keypoint AP on the first 150 of its own training scenes beside validation keypoint AP / AP50
  and box AP (a large difference is overfitting: more scenes, not more steps, is the lever);
- the mean OKS of the best-scoring prediction per true person, and the share of persons whose
  prediction fits better with left and right exchanged (front and back confused);
- the mean OKS the true keypoints keep when snapped to the centres of their stride-4 heatmap
  cells: the limit the head's grid alone sets (1.0 = none).

Training sets are seeds 21 (up to 600 scenes) and 31 (more); data and checkpoints are reused
from ``--data`` / ``--out`` when present.

Example::

    ./run python benchmarks/people_keypoint_diagnosis.py --runs 600:0,4800:0,4800:0.5,4800:0:4500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

os.environ.setdefault("SYNTHCV_TRACKING", "0")
REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "benchmarks" / "people_keypoints_near.yaml"
VAL_SEED, VAL_COUNT, TRAIN_FIT = 41, 200, 150


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", default="600:0,4800:0", help="SIZE:FLIP[:STEPS], comma-separated")
    p.add_argument("--steps", type=int, default=1500, help="default gradient steps per run")
    p.add_argument("--workers", type=int, default=2, help="render workers")
    p.add_argument("--data", type=Path, default=Path("out/bench/people_kp_diag"))
    p.add_argument("--out", type=Path, default=Path("out/bench/people_kp_diag_results"))
    args = p.parse_args(argv)
    announce()
    return args


def _render(name: str, seed: int, count: int, root: Path, workers: int) -> Path:
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec

    data = {**load_spec(SPEC).resolved(), "seed": seed}
    data.pop("written_paths", None)
    spec = load_spec(data, asset_root=SPEC.parent).with_count(count)
    path = root / name
    manifest = path / "manifest.json"
    if manifest.is_file():
        made = json.loads(manifest.read_text())
        if made["spec_hash"] == spec.spec_hash and made["count"] == count:
            return path
    print(f"[data] rendering {count} scenes (seed {seed}) → {path}", flush=True)
    generate(spec, path, workers=workers, overwrite=manifest.is_file(), progress=False)
    return path


def _train(train: Any, steps: int, flip: float, checkpoint: Path) -> Any:
    import torch

    from synthcv.tasks.detector import DenseDetector
    from synthcv.tasks.detector_io import load_checkpoint, save_checkpoint
    from synthcv.tasks.detector_train import DetFitConfig, fit

    if checkpoint.is_file():
        return load_checkpoint(checkpoint)
    torch.manual_seed(0)
    model = DenseDetector(
        len(train.categories),
        ("detection", "keypoints"),
        train.num_keypoints,
        width=32,
        categories=train.categories,
        keypoint_names=train.keypoint_names,
        input_size=160,
    )
    cfg = DetFitConfig(epochs=5, steps_per_epoch=steps // 5, batch_size=16, lr=3e-3, flip=flip)
    t0 = time.time()
    fit(model, [train], None, cfg, 0)
    print(f"[train] {checkpoint.name}: {time.time() - t0:.0f} s", flush=True)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, checkpoint)
    return model


def keypoint_diagnostics(model: Any, data: Any, preds: list[Any] | None = None) -> dict[str, float]:
    """Mean OKS of the best-scoring prediction per true person, the share of persons fitted
    better left-right exchanged, and the mean OKS of the true keypoints snapped to the
    centres of the model's stride cells (what the heatmap grid alone costs)."""
    import numpy as np

    from synthcv.oks import COCO_PERSON_SIGMAS
    from synthcv.people.keypoints import COCO_FLIP_PAIRS
    from synthcv.tasks.detector_train import predict

    preds = predict(model, data) if preds is None else preds
    k2 = (2 * np.asarray(COCO_PERSON_SIGMAS)) ** 2
    swap = list(range(17))
    for a, b in COCO_FLIP_PAIRS:
        swap[a], swap[b] = b, a

    def oks(pk: np.ndarray, gk: np.ndarray, area: float) -> float:
        vis = gk[:, 2] > 0
        d2 = ((pk[:, :2] - gk[:, :2]) ** 2).sum(1)
        return float(np.exp(-d2 / (2 * area * k2))[vis].mean())

    model_oks, swapped, grid_oks = [], [], []
    for t, p in zip(data.targets, preds, strict=True):
        for i in range(len(t)):
            gk, area = t.keypoints[i], float(t.masks[i].sum())
            if not (gk[:, 2] > 0).any() or area == 0:
                continue
            cell = gk.copy()
            cell[:, :2] = (np.floor(gk[:, :2] / model.stride) + 0.5) * model.stride
            grid_oks.append(oks(cell, gk, area))
            if len(p):
                pk = p.keypoints[int(np.argmax(p.scores))]
                model_oks.append(oks(pk, gk, area))
                swapped.append(oks(pk[swap], gk, area) > model_oks[-1])
    return {
        "mean_oks": float(np.mean(model_oks)) if model_oks else float("nan"),
        "lr_swapped": float(np.mean(swapped)) if swapped else float("nan"),
        "grid_oks": float(np.mean(grid_oks)) if grid_oks else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from synthcv.tasks.coco_data import load_synthcv
    from synthcv.tasks.detector_train import evaluate
    from synthcv.tasks.instances import InstanceSet

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    runs = []
    for item in args.runs.split(","):
        parts = item.split(":")
        runs.append(
            (int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) > 2 else args.steps)
        )
    val = load_synthcv(
        _render("val", VAL_SEED, VAL_COUNT, args.data, args.workers), label_map={"box": None}
    )
    rows = []
    for size, flip, steps in runs:
        seed = 21 if size <= 600 else 31
        train_dir = _render(f"train_{size}", seed, size, args.data, args.workers)
        train = load_synthcv(train_dir, label_map={"box": None})
        ckpt = args.out / f"model_{size}_flip{flip:g}_steps{steps}.pt"
        model = _train(train, steps, flip, ckpt)
        fit_part = InstanceSet(
            train.images[:TRAIN_FIT],
            train.targets[:TRAIN_FIT],
            train.categories,
            keypoint_names=train.keypoint_names,
        )
        own = evaluate(model, fit_part)
        v = evaluate(model, val, full=True)  # its predictions feed the diagnostics too
        rows.append(
            {
                "size": size,
                "flip": flip,
                "steps": steps,
                "train_kp_AP": own["keypoints.AP"],
                "val_kp_AP": v["keypoints.AP"],
                "val_kp_AP50": v["keypoints.AP50"],
                "val_bbox_AP": v["bbox.AP"],
                **keypoint_diagnostics(model, val, v["predictions"]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diagnosis.json").write_text(json.dumps(rows, indent=1))
    print()
    print(
        "| training scenes | flip | steps | kp AP, own training scenes | val kp AP (AP50) | "
        "val box AP | val mean OKS | persons fitted better left-right exchanged | "
        "OKS of the truth on the stride-4 grid |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']:,} | {r['flip']:g} | {r['steps']:,} | {r['train_kp_AP'] * 100:.1f} | "
            f"{r['val_kp_AP'] * 100:.1f} ({r['val_kp_AP50'] * 100:.1f}) | "
            f"{r['val_bbox_AP'] * 100:.1f} | {r['mean_oks']:.2f} | {r['lr_swapped'] * 100:.0f}% | "
            f"{r['grid_oks']:.2f} |"
        )
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
