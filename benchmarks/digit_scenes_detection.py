"""What are synthetic digit scenes worth to a detector on real ones? COCO AP on real scenes.

One command, one table: bbox AP / AP50 and instance-segmentation (segm) AP on the real digit
scenes' test set (composed from the 1,000 MNIST *test* digits only), mean ± 95% t-interval
over seeds, beside the same figures on a validation split carved from the real training scenes
(the only figures any choice was made on). Rows, every one with the same number of gradient
steps (``--steps`` of ``--batch``):

    real                 scenes from all 7,000 real training digits
    real-small           scenes from 100 real training digits (10 per class)
    synthetic            synthcv 3D digit scenes only (examples/digit_scenes.yaml)
    synthetic→real-small pre-train on synthetic for half the steps, fine-tune on real-small
    real-small+synthetic real-small and synthetic, ``--synthetic-share`` of every batch
                         synthetic (default half)
    real-small+fitted    real-small and scenes of digits drawn from templates fitted to
                         real-small's own 100 digits (``--fitted``, written by
                         benchmarks/digits_fitted_strokes.py --pick scenes): no real digit
                         beyond real-small's; ``--fitted-share`` of every batch fitted,
                         ``--fitted-synthetic-share`` synthetic, the rest real-small
    procedural-scenes    synthcv's single procedural digits (examples/digits_mnist.yaml, the
                         classification benchmark's synthetic digits; ``--procedural``), laid
                         out by the real scenes' composer: scenes that differ from the real
                         ones only in their digits; no real digit
    real-small+procedural-scenes
                         real-small and those scenes, ``--procedural-share`` of every batch
                         (default a quarter)

Targets from the issue: synthetic AP50 ≥ 0.9 × real AP50; real-small+synthetic ≥ real.

Data is made on first use under ``--data`` (real scenes: ``synthcv realdata digit-scenes``;
synthetic: ``synthcv generate examples/digit_scenes.yaml``) and reused afterwards.

Examples::

    python benchmarks/digit_scenes_detection.py     # the issue's five rows, 3 seeds, 600 steps
    python benchmarks/digit_scenes_detection.py --rows real,synthetic --seeds 1 --steps 300
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

#: the issue's five rows: the default table
ISSUE_ROWS = [
    "real",
    "real-small",
    "synthetic",
    "synthetic→real-small",
    "real-small+synthetic",
]
#: rows that need a second source of digits (--fitted, --procedural): run when named
SECOND_SOURCE_ROWS = ["real-small+fitted", "procedural-scenes", "real-small+procedural-scenes"]
ROWS = [*ISSUE_ROWS, *SECOND_SOURCE_ROWS]
ALIASES = {"synthetic->real-small": "synthetic→real-small"}
REPO = Path(__file__).resolve().parents[1]
#: the seed of real-small's 100 source digits and of its scenes (the fitted row's scenes too;
#: benchmarks/digits_fitted_strokes.py --pick scenes fits the same 100)
REAL_SMALL_SEED = 3
#: the layout seed of the procedural digits' scenes (real 2, real-small 3, test 1)
PROCEDURAL_SCENES_SEED = 4
#: the geometric warps of every documented run (chosen on validation, README "Benchmarks")
DEFAULT_JITTER = "shear=15,elastic=1.5,elastic_sigma=4"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rows",
        default=",".join(ISSUE_ROWS),
        help=f"comma-separated rows to run (default the issue's five; also {SECOND_SOURCE_ROWS})",
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=600, help="gradient steps per row")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2, help="evaluation points along the steps")
    p.add_argument("--data", type=Path, default=Path("out/bench/digit_scenes"))
    p.add_argument("--out", type=Path, default=Path("out/bench/digit_scenes_detection"))
    p.add_argument("--real-scenes", type=int, default=2000)
    p.add_argument("--test-scenes", type=int, default=500)
    p.add_argument("--synthetic", type=int, default=2000, help="synthetic scenes to render")
    p.add_argument(
        "--spec",
        type=Path,
        default=REPO / "examples" / "digit_scenes.yaml",
        help="the synthetic scenes' spec (rendered once into DATA/synthetic; use another --data "
        "for another spec)",
    )
    p.add_argument("--mnist", type=Path, default=None, help="mnist-real-8000.npz")
    p.add_argument("--workers", type=int, default=2, help="render workers")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--jitter",
        default=DEFAULT_JITTER,
        help="geometric warps for every row, moving boxes and masks with the pixels (keys: "
        "shift, rotate, scale, shear, elastic, elastic_sigma; unset keys: shift 2 px, rotate "
        f"10°, scale 0.1); default: the README table's {DEFAULT_JITTER!r}; 'none' for no warps",
    )
    p.add_argument(
        "--synthetic-share",
        type=float,
        default=0.5,
        help="share of every batch drawn from synthetic in the real-small+synthetic row "
        "(choose it on --validation-only runs)",
    )
    p.add_argument(
        "--fitted",
        type=Path,
        default=None,
        help="digits drawn from templates fitted to real-small's 100 (an .npz; "
        "benchmarks/digits_fitted_strokes.py --pick scenes --only-fitted): the "
        "real-small+fitted row composes them into DATA/fitted_small",
    )
    p.add_argument("--fitted-share", type=float, default=0.5, help="real-small+fitted row")
    p.add_argument(
        "--fitted-synthetic-share",
        type=float,
        default=0.0,
        help="share of synthetic scenes in the real-small+fitted row (the rest real-small)",
    )
    p.add_argument(
        "--procedural",
        type=Path,
        default=None,
        help="synthcv's single digits for the procedural-scenes rows: a dataset directory "
        "rendered from examples/digits_mnist.yaml (framed as the classification harness frames "
        "them) or an .npz of images and labels; composed into DATA/procedural_scenes",
    )
    p.add_argument(
        "--procedural-share",
        type=float,
        default=0.25,
        help="share of every batch from the procedural scenes in real-small+procedural-scenes",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue interrupted rows from their checkpoints (a resumed row's seconds cover "
        "only the rest and are marked)",
    )
    p.add_argument("--track", action="store_true", help="log every run to MLflow")
    p.add_argument(
        "--validation-only",
        action="store_true",
        help="score on the validation split only (for tuning: the test scenes stay unseen)",
    )
    args = p.parse_args(argv)
    if not 0.0 < args.synthetic_share < 1.0:
        p.error(f"--synthetic-share must lie strictly between 0 and 1, got {args.synthetic_share}")
    if not 0.0 < args.fitted_share < 1.0 or args.fitted_synthetic_share < 0.0:
        p.error("--fitted-share must lie strictly between 0 and 1, --fitted-synthetic-share ≥ 0")
    if args.fitted_share + args.fitted_synthetic_share >= 1.0:
        p.error("--fitted-share + --fitted-synthetic-share must leave a share for real-small")
    if "real-small+fitted" in args.rows and args.fitted is None:
        p.error("the real-small+fitted row needs --fitted DIGITS.npz")
    if not 0.0 < args.procedural_share < 1.0:
        p.error(f"--procedural-share must lie in (0, 1), got {args.procedural_share}")
    if "procedural-scenes" in args.rows and args.procedural is None:
        p.error("the procedural-scenes rows need --procedural DIR (or DIGITS.npz)")
    proc = args.procedural
    if proc is not None and not (proc.is_file() or (proc / "manifest.json").is_file()):
        p.error(f"--procedural {proc}: neither an .npz file nor a synthcv dataset directory")
    announce()
    return args


def prepare(args: argparse.Namespace) -> dict[str, Path]:
    """The four datasets, made once: real train / real-small / real test scenes, synthetic."""
    from synthcv.digit_scenes import compose_digit_scenes

    args.data.mkdir(parents=True, exist_ok=True)
    paths = {
        "real": args.data / "real_train",
        "real_small": args.data / "real_small",
        "real_test": args.data / "real_test",
        "synthetic": args.data / "synthetic",
    }
    made = [
        ("real", "train", args.real_scenes, 2, None),
        ("real_small", "train", args.real_scenes, REAL_SMALL_SEED, 100),
        ("real_test", "test", args.test_scenes, 1, None),
    ]
    for key, split, count, seed, n_source in made:
        if not (paths[key] / "annotations.json").is_file():
            print(f"[data] composing {count} real {split} scenes → {paths[key]}")
            compose_digit_scenes(
                paths[key], split, count, seed=seed, n_source=n_source, mnist_path=args.mnist
            )
    if args.fitted is not None:
        paths["fitted"] = _fitted_scenes(args)
    if args.procedural is not None:
        paths["procedural"] = _procedural_scenes(args)
    from synthcv.spec import load_spec

    spec = load_spec(args.spec).with_count(args.synthetic)
    manifest = paths["synthetic"] / "manifest.json"
    if not manifest.is_file():
        from synthcv.pipeline import generate

        print(f"[data] rendering {args.synthetic} scenes of {args.spec} → {manifest.parent}")
        generate(spec, paths["synthetic"], workers=args.workers)
    elif json.loads(manifest.read_text())["spec_hash"] != spec.spec_hash:
        sys.exit(
            f"error: {manifest.parent} was rendered from another spec than {args.spec} "
            f"(--synthetic {args.synthetic}); give this spec its own --data"
        )
    return paths


def _fitted_scenes(args: argparse.Namespace) -> Path:
    """Scenes of the fitted digits, laid out as real-small's (same count, layout and seed)."""
    return _composed_scenes(args, args.fitted, args.data / "fitted_small", REAL_SMALL_SEED)


def _composed_scenes(args: argparse.Namespace, digits: Path, path: Path, seed: int) -> Path:
    """``path``: scenes of ``digits`` (an .npz) in the real layout, composed once; scenes
    composed earlier from other digits are refused (their annotations record the file's sha)."""
    from synthcv.digit_scenes import compose_digit_scenes
    from synthcv.fileio import sha256_file

    ann = path / "annotations.json"
    if not ann.is_file():
        print(f"[data] composing {args.real_scenes} scenes of {digits} → {path}")
        compose_digit_scenes(path, count=args.real_scenes, seed=seed, digits_npz=digits)
    elif json.loads(ann.read_text())["info"]["digits_sha256"] != sha256_file(digits):
        sys.exit(f"error: {path} was composed from other digits than {digits}")
    return path


def _procedural_scenes(args: argparse.Namespace) -> Path:
    """Scenes of synthcv's single procedural digits, laid out by the real composer.

    A dataset directory is first framed exactly as the classification harness reads it
    (``kind: dataset``: MNIST's 20-px fit and centre of mass, the silhouette as ink) and written
    to DATA/procedural_digits.npz, so both benchmarks see the same digits."""
    import numpy as np

    from synthcv.fileio import atomic_path, write_json_atomic

    digits = args.procedural
    if digits.is_dir():
        digits = args.data / "procedural_digits.npz"
        manifest = json.loads((args.procedural / "manifest.json").read_text())
        stamp = args.data / "procedural_digits.source.json"
        source = {"path": str(args.procedural), "manifest_digest": manifest["manifest_digest"]}
        fresh = digits.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == source
        if not fresh:
            from synthcv.tasks.data import load_source

            print(f"[data] framing the digits of {args.procedural} → {digits}")
            arr = load_source({"kind": "dataset", "path": str(args.procedural)}, name="procedural")
            with atomic_path(digits) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, images=arr.images, labels=arr.labels)
            write_json_atomic(stamp, source)
    return _composed_scenes(args, digits, args.data / "procedural_scenes", PROCEDURAL_SCENES_SEED)


def row_config(row: str, args: argparse.Namespace, paths: dict[str, Path]) -> dict[str, Any]:
    steps_per_epoch = max(1, args.steps // args.epochs)

    def coco(key: str, part: str | None = None) -> dict[str, Any]:
        src: dict[str, Any] = {"kind": "coco", "annotations": str(paths[key] / "annotations.json")}
        if part:
            src["part"] = part
        return src

    data = {
        "real": coco("real", "train"),
        "real_small": coco("real_small", "train"),
        "synthetic": {"kind": "dataset", "path": str(paths["synthetic"])},
        **({"fitted": coco("fitted")} if "fitted" in paths else {}),
        **({"procedural": coco("procedural")} if "procedural" in paths else {}),
        "real_val": coco("real", "val"),  # tuning happened here, never on real_test
        "real_test": coco("real_test"),
    }
    if args.validation_only:
        del data["real_test"]
    stage = {
        "epochs": args.epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": args.batch,
        "lr": args.lr,
    }
    if args.jitter and args.jitter != "none":
        stage["jitter"] = {
            k.strip(): float(v)
            for k, v in (kv.split("=", 1) for kv in args.jitter.split(",") if kv.strip())
        }
    sources = {
        "real": {"real": 1.0},
        "real-small": {"real_small": 1.0},
        "synthetic": {"synthetic": 1.0},
        "synthetic→real-small": {"synthetic": 1.0},
        "real-small+synthetic": {
            "real_small": 1.0 - args.synthetic_share,
            "synthetic": args.synthetic_share,
        },
        "real-small+fitted": {
            "real_small": 1.0 - args.fitted_share - args.fitted_synthetic_share,
            "fitted": args.fitted_share,
            **({"synthetic": args.fitted_synthetic_share} if args.fitted_synthetic_share else {}),
        },
        "procedural-scenes": {"procedural": 1.0},
        "real-small+procedural-scenes": {
            "real_small": 1.0 - args.procedural_share,
            "procedural": args.procedural_share,
        },
    }[row]
    cfg: dict[str, Any] = {
        "name": f"digit_scenes_{row}",
        "tasks": ["detection", "instance_segmentation"],
        "seeds": list(range(args.seeds)),
        "data": data,
        "categories": [str(d) for d in range(10)],
        "train": {**stage, "sources": sources},
        "eval": ["real_val"] if args.validation_only else ["real_val", "real_test"],
        "model": {"width": args.width, "input_size": 128},
        "log_model": False,
    }
    if row == "synthetic→real-small":
        half = max(1, args.epochs // 2)
        cfg["recipe"] = "finetune"
        cfg["reference"] = "real_val"
        cfg["train"]["epochs"] = half
        cfg["finetune"] = {
            **stage,
            "epochs": args.epochs - half,
            "sources": {"real_small": 1.0},
            "lr": args.lr / 2,
        }
    return cfg


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [ALIASES.get(r.strip(), r.strip()) for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        print(f"unknown rows {bad}; choose from {ROWS}", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from synthcv.tasks.experiment import run_experiment
    from synthcv.tasks.stats import fmt_ci

    paths = prepare(args)
    args.out.mkdir(parents=True, exist_ok=True)
    cache: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    for row in rows:
        cfg = row_config(row, args, paths)
        t0 = time.time()
        print(f"[run] {row} ({args.seeds} seeds × {args.steps} steps of {args.batch})")
        res = run_experiment(
            cfg,
            out=args.out / row.replace("→", "-to-"),
            tracking=args.track,
            cache=cache,
            experiment="digit_scenes_detection",
            resume=args.resume,
        )
        prefix = "finetune/" if cfg.get("recipe") == "finetune" else ""
        label = row
        if row == "real-small+synthetic":
            label = f"{row} ({args.synthetic_share:g} synthetic)"
        if row == "real-small+fitted":
            label = (
                f"{row} ({args.fitted_share:g} fitted, {args.fitted_synthetic_share:g} synthetic)"
            )
        if row == "real-small+procedural-scenes":
            label = f"{row} ({args.procedural_share:g} procedural)"
        seconds: Any = round(time.time() - t0, 1)
        if res["resumed"]:
            seconds = f"{seconds} (resumed)"
        entry: dict[str, Any] = {"row": row, "label": label, "seconds": seconds}
        for split in ("real_val", "real_test"):
            for metric in ("bbox.AP", "bbox.AP50", "segm.AP"):
                key = f"{prefix}{split}/{metric}"
                entry[f"{split}/{metric}"] = res["summary"].get(key)
                entry[f"{split}/{metric}/per_seed"] = res["per_seed"].get(key)
        results.append(entry)
        t = entry["real_test/bbox.AP50"]
        print(f"      test AP50 {fmt_ci(t) if t else '—'}  ({entry['seconds']} s)")
    table = _table(results)
    meta = {
        "command": " ".join([sys.executable, *sys.argv]) if argv is None else argv,
        "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    (args.out / "results.json").write_text(
        json.dumps(_finite({"meta": meta, "rows": results}), indent=2)
    )
    (args.out / "table.md").write_text(table + "\n")
    print()
    print(table)
    print(f"\nmachine: {meta['machine']}\ncommand: {meta['command']}")
    return 0


def _table(results: list[dict[str, Any]]) -> str:
    from synthcv.tasks.stats import fmt_ci

    def cell(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        return fmt_ci(v) if v else "—"

    lines = [
        "| row | test bbox AP | test AP50 | test segm AP | val bbox AP | val AP50 | s/row |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.get('label', r['row'])} | {cell(r, 'real_test/bbox.AP')} | "
            f"{cell(r, 'real_test/bbox.AP50')} | "
            f"{cell(r, 'real_test/segm.AP')} | {cell(r, 'real_val/bbox.AP')} | "
            f"{cell(r, 'real_val/bbox.AP50')} | {r['seconds']} |"
        )
    by = {r["row"]: r for r in results}

    def mean(row: str, key: str) -> float | None:
        v = by.get(row, {}).get(key)
        return v["mean"] if v else None

    real = mean("real", "real_test/bbox.AP50")
    syn = mean("synthetic", "real_test/bbox.AP50")
    mix = mean("real-small+synthetic", "real_test/bbox.AP50")
    if real and syn is not None:
        ok = "met" if syn >= 0.9 * real else "not met"
        lines.append(f"\nsynthetic AP50 / real AP50 = {syn / real:.3f} (target ≥ 0.9: {ok})")
    if real and mix is not None:
        ok = "met" if mix >= real else "not met"
        lines.append(
            f"real-small+synthetic AP50 − real AP50 = {mix - real:+.3f} (target ≥ 0: {ok})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
