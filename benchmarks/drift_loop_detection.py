"""Does `synthcv loop` win back what drift costs a *detector*, without losing what it knew?

Champion: a detector (detection head, ``width`` 32, 128 px) trained on real digit scenes — the
training part of 2,000 scenes composed from the 7,000 real MNIST training digits — registered
as version 1 of one registry per drift, so every drift starts from the same champion. The
loop's reference (monitor and replay) is that training part; its gate's broad set is the
validation part (200 scenes), which no training saw. Production batches: 300 of the first 500
real *test* scenes (other writers, composed from the 1,000 test digits) after one realistic
change — a darker, low-contrast capture; blur; digits 1.4–1.9 times larger (scenes composed at
scale 2.2–3.0 instead of 0.8–2.2) — or unchanged. The targeted synthetic scenes are rendered
from ``examples/digit_scenes.yaml`` by the loop. Held out, reported once per row: the other 500
test scenes after the same change (AP50 before / after) and unchanged (the broad figure). No
choice in this script was made on a test figure.

A control separates what the *targeted* data buys from what any further training buys: the same
fine-tune (replay share, steps, learning rate, seed) on as many scenes rendered from the
champion's base spec with no overlay, scored on the same held-out sets.

    ./run python benchmarks/drift_loop_detection.py --out out/bench/drift_loop_detection
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

REPO = Path(__file__).resolve().parents[1]
DRIFTS = ["darker / low contrast", "blur", "larger digits", "unchanged"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/bench/drift_loop_detection"))
    p.add_argument("--drifts", default=";".join(DRIFTS), help="';'-separated drift names")
    p.add_argument("--steps", type=int, default=600, help="champion: gradient steps of 16")
    p.add_argument("--batch-size", type=int, default=300, help="images per production batch")
    p.add_argument("--targeted", type=int, default=800, help="targeted scenes per loop pass")
    p.add_argument("--probe-count", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="render workers")
    p.add_argument("--mnist", type=Path, default=None, help="mnist-real-8000.npz")
    args = p.parse_args(argv)
    announce()
    return args


def drifted(kind: str, images: list[np.ndarray]) -> list[np.ndarray]:
    """One pixel-level change of real scenes (boxes unchanged); "larger digits" and
    "unchanged" change nothing here (larger digits are composed so)."""
    if kind == "darker / low contrast":
        return [(im.astype(np.float64) * 0.45 + 10).astype(np.uint8) for im in images]
    if kind == "blur":
        out = []
        for im in images:
            f = ndimage.gaussian_filter(im.astype(np.float64), (1.3, 1.3, 0)[: im.ndim])
            out.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
        return out
    return list(images)


def prepare(args: argparse.Namespace) -> dict[str, Path]:
    """Real scenes (train part, validation part, test, larger test) as COCO sets, made once."""
    from synthcv.digit_scenes import compose_digit_scenes
    from synthcv.realdata import validation_part
    from synthcv.tasks.coco_data import load_coco, to_coco_files

    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    made = {
        "real_all": ("train", 2000, 2, {}),
        "test": ("test", 1000, 1, {}),
        "test_larger": ("test", 1000, 4, {"scale": (2.2, 3.0), "digits": (1, 4)}),
    }
    for key, (split, count, seed, kw) in made.items():
        if not (data / key / "annotations.json").is_file():
            print(f"[data] composing {count} real {split} scenes → {data / key}", flush=True)
            compose_digit_scenes(data / key, split, count, seed=seed, mnist_path=args.mnist, **kw)
    paths = {k: data / k / "annotations.json" for k in made}
    everything = load_coco(data / "real_all", paths["real_all"], name="real")
    for part in ("train", "val"):
        if not (data / f"real_{part}" / "annotations.json").is_file():
            idx = validation_part(len(everything), part)
            to_coco_files(everything.take(idx, name=f"real_{part}"), data / f"real_{part}")
        paths[f"real_{part}"] = data / f"real_{part}" / "annotations.json"
    return paths


def train_champion(args: argparse.Namespace, paths: dict[str, Path]) -> Path:
    """The #15 real-row recipe with the detection head alone (the loop gates on boxes)."""
    from synthcv.tasks.experiment import run_experiment

    out = args.out / "champion"
    if (out / "model.pt").is_file():
        return out / "model.pt"
    cfg = {
        "name": "drift_loop_detection_champion",
        "tasks": ["detection"],
        "categories": [str(d) for d in range(10)],
        "seeds": [0],
        "data": {
            "real_train": {"kind": "coco", "annotations": str(paths["real_train"])},
            "real_val": {"kind": "coco", "annotations": str(paths["real_val"])},
        },
        "train": {
            "sources": {"real_train": 1.0},
            "epochs": 2,
            "steps_per_epoch": args.steps // 2,
            "batch_size": 16,
            "lr": 3e-3,
            "photometric": True,
            "jitter": {"shear": 15, "elastic": 1.5, "elastic_sigma": 4},
        },
        "eval": ["real_val"],
        "model": {"width": 32, "input_size": 128},
        "log_model": False,
    }
    print(f"[champion] training on {paths['real_train'].parent}", flush=True)
    run_experiment(cfg, out=out, tracking=False)
    return out / "model.pt"


def loop_config(
    args: argparse.Namespace,
    paths: dict[str, Path],
    champion_path: Path,
    slug: str,
    batch_dir: Path,
) -> Any:
    """One drift's loop: its own registry and output, the champion, the real reference and
    broad set, the batch written as COCO."""
    from synthcv.loop.config import LoopConfig

    return LoopConfig.model_validate(
        {
            "name": f"scenes-loop-{slug}",
            "out": str(args.out / f"loop-{slug}"),
            "champion": {
                "registry_name": f"scenes-{slug}",
                "bootstrap": str(champion_path),
                "spec": str(REPO / "examples" / "digit_scenes.yaml"),
            },
            "reference": str(paths["real_train"]),
            "current": str(batch_dir / "annotations.json"),
            "monitor": {"n": 500, "alpha": 0.05},
            "targeted": {
                "count": args.targeted,
                "probe_count": args.probe_count,
                "workers": args.workers,
            },
            "finetune": {"epochs": 2, "lr": 1e-3, "batch_size": 16, "replay": 0.8},
            "gate": {"broad": str(paths["real_val"]), "metric": "AP50", "tolerance": 0.5},
        }
    )


def untargeted_control(args: argparse.Namespace, cfg: Any, champion_path: Path) -> Any:
    """The loop's fine-tune (``cfg.finetune``: replay share, steps, lr, seed) on scenes of the
    champion's base spec with no overlay: what any further training on synthetic scenes buys."""
    from synthcv.loop.model_kinds import Detection
    from synthcv.pipeline.runner import generate
    from synthcv.tasks.detector_io import load_checkpoint

    out = args.out / "control"
    kind = Detection("AP50")
    if (out / "candidate.pt").is_file():
        return kind.load(out / "candidate.pt")
    spec = {"extends": str(REPO / "examples" / "digit_scenes.yaml"), "seed": 424242}
    print(f"[control] rendering {args.targeted} untargeted scenes; fine-tuning", flush=True)
    generate(spec, out / "untargeted", count=args.targeted, workers=args.workers, progress=False)
    data = kind.load_rendered(out / "untargeted", cfg, [])
    model = kind.finetune(cfg, load_checkpoint(champion_path), data)
    kind.save(model, out / "candidate.pt")
    return model


def ap50(model: Any, data: Any) -> float:
    from synthcv.tasks.detector_train import evaluate

    return float(evaluate(model, data.aligned_to(model.categories))["bbox.AP50"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    os.environ["SYNTHCV_TRACKING"] = "1"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{args.out / 'mlflow.db'}")
    from synthcv.loop import run_loop
    from synthcv.tasks.coco_data import load_coco, to_coco_files
    from synthcv.tasks.detector_io import load_checkpoint

    t_start = time.perf_counter()
    paths = prepare(args)
    champion_path = train_champion(args, paths)
    champion = load_checkpoint(champion_path)

    def coco(key: str) -> Any:
        return load_coco(paths[key].parent, paths[key], name=key)

    clean_test = coco("test")
    held_clean = clean_test.take(np.arange(500, 1000), name="held_clean")
    broad_held = ap50(champion, held_clean)
    rows: list[dict[str, Any]] = []
    held_sets: dict[str, Any] = {}
    for kind in args.drifts.split(";"):
        slug = kind.split(" /")[0].replace(" ", "-")
        pool = coco("test_larger") if kind == "larger digits" else clean_test
        rng = np.random.default_rng(DRIFTS.index(kind))
        sel = np.sort(rng.permutation(500)[: args.batch_size])
        batch = pool.take(sel, name=f"batch-{slug}")
        batch = replace(batch, images=drifted(kind, batch.images))
        held = pool.take(np.arange(500, 1000), name=f"held-{slug}")
        held = replace(held, images=drifted(kind, held.images))
        batch_dir = args.out / f"batch-{slug}"
        if not (batch_dir / "annotations.json").is_file():
            to_coco_files(batch, batch_dir)
        held_sets[kind] = held
        cfg = loop_config(args, paths, champion_path, slug, batch_dir)
        t0 = time.perf_counter()
        print(f"[loop] {kind}", flush=True)
        decision = run_loop(cfg, lambda s: print("  " + s, flush=True))
        seconds = time.perf_counter() - t0
        work = Path(cfg.out) / "batches" / decision["key"]
        overlay = work / "overlay.yaml"
        row: dict[str, Any] = {
            "drift": kind,
            "outcome": decision["outcome"],
            "drifted_features": decision.get("drifted_features", []),
            "overlay": overlay.read_text() if overlay.is_file() else None,
            "seconds": round(decision.get("seconds", seconds), 1),
            "held_drift_before": ap50(champion, held),
            "held_broad_before": broad_held,
        }
        if "gate" in decision:
            g = decision["gate"]
            row["batch"] = [g["drifted_accuracy"]["champion"], g["drifted_accuracy"]["candidate"]]
            row["gate_broad"] = [g["broad_accuracy"]["champion"], g["broad_accuracy"]["candidate"]]
            candidate = load_checkpoint(work / "candidate.pt")
            row["held_drift_candidate"] = ap50(candidate, held)
            row["held_broad_candidate"] = ap50(candidate, held_clean)
        rows.append(row)
        print(json.dumps(row, indent=1, default=float), flush=True)
        (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=float))
    control = untargeted_control(args, cfg, champion_path)
    held_broad_control = ap50(control, held_clean)
    for row in rows:
        row["held_drift_control"] = ap50(control, held_sets[row["drift"]])
        row["held_broad_control"] = held_broad_control
    (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=float))
    print(table(rows))
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    def pct(v: Any) -> str:
        return "—" if v is None else f"{100 * v:.1f}"

    lines = [
        "| drift | outcome | batch AP50: champion → candidate | held-out drifted AP50: before → "
        "candidate | held-out broad AP50: before → candidate | untargeted control: held-out "
        "drifted / broad | gate broad (val) | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b, g = r.get("batch", [None, None]), r.get("gate_broad", [None, None])
        lines.append(
            f"| {r['drift']} | {r['outcome']} | {pct(b[0])} → {pct(b[1])} | "
            f"{pct(r['held_drift_before'])} → {pct(r.get('held_drift_candidate'))} | "
            f"{pct(r['held_broad_before'])} → {pct(r.get('held_broad_candidate'))} | "
            f"{pct(r.get('held_drift_control'))} / {pct(r.get('held_broad_control'))} | "
            f"{pct(g[0])} → {pct(g[1])} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
