"""What a camera model is worth: digits in low light, and denoisers trained on rendered pairs.

One synthetic dataset, ``examples/digits_lowlight.yaml`` (digits_mnist's digits through a
randomized camera: 0 to -7 EV with auto ISO, shot and read noise, camera shake, JPEG; with
``outputs.pairs``), gives both training sets: its ``clean`` images (the digits before the
sensor, exactly digits_mnist's renders) and its ``rgb`` images (after the sensor).

The deployment cameras are degraded copies of the real digits, made with the same sensor code
and the settings in :data:`CAMERAS`; the real digits' own values are taken as the encoded
image. ``night`` (a small sensor at -6 to -3 EV, auto ISO, 4,000 e⁻ full well, 3 e⁻ read
noise, JPEG 70-90) was fixed before any model was trained. ``dark`` (-8 to -6 EV, 2,000 e⁻,
JPEG 50-80) was added after a smoke run (300 digits, one epoch, validation only) showed
``night`` costing the real-trained model under 2 points, a figure that was wrong (that run's
degraded validation copy held all 7,000 training digits, fixed since); it reaches beyond the
synthetic training range (down to -7 EV, 2,000 e⁻). Neither was tuned on a result.
Validation: the 700 real validation-part digits (clean and degraded copies); test: the 1,000
real test digits, scored once (``--validation-only`` leaves them out).

Table 1, classification (SmallCNN, same steps for every row, mean ± 95% t-interval over seeds):
accuracy on clean and degraded real digits, trained on real-6300, on clean synthetic and on
sensor-randomized synthetic digits.

Table 2, denoising (PSNR / SSIM): a DnCNN trained on the dataset's (rgb, clean) pairs against
non-local means, total variation (weight chosen on the synthetic validation pairs) and wavelet
shrinkage, on held-out synthetic pairs and on the degraded real test digits against their
clean originals ("real digits with added noise").

    .venv/bin/python benchmarks/sensor_digits.py --count 6000 --seeds 3 --epochs 8 \\
        --denoise-steps 1500 --out out/bench/sensor_digits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "digits_lowlight.yaml"
STEPS_PER_EPOCH = 110  # as digits_tstr: ≈ one pass over 7,000 images at batch 64
#: The deployment cameras (see the module docstring for when each was fixed; never tuned).
CAMERAS = {
    "night": {
        "exposure_ev": (-6.0, -3.0),
        "full_well": 4000.0,
        "read_noise": 3.0,
        "jpeg_quality": (70, 90),
    },
    "dark": {
        "exposure_ev": (-8.0, -6.0),
        "full_well": 2000.0,
        "read_noise": 3.0,
        "jpeg_quality": (50, 80),
    },
}
ROWS = {
    "real-6300": "real6300",
    "synthetic clean": "synth_clean",
    "synthetic + sensor": "synth_sensor",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("out/bench/sensor_digits"))
    p.add_argument("--data", type=Path, help="the digits_lowlight dataset (default: OUT/data)")
    p.add_argument("--count", type=int, default=6000, help="synthetic digits to generate")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--denoise-steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--validation-only", action="store_true", help="never read the test digits")
    p.add_argument("--skip-classify", action="store_true")
    p.add_argument("--skip-denoise", action="store_true")
    args = p.parse_args(argv)
    announce()
    return args


def deployment_camera(images: np.ndarray, camera: dict[str, Any], seed: int) -> np.ndarray:
    """Real digits (uint8 (N, 28, 28)) as a deployment camera records them."""
    from synthcv.scene import Camera
    from synthcv.sensor.params import BASE_ISO, Noise, SensorParams
    from synthcv.sensor.photometric import apply_photometric

    rng = np.random.default_rng(seed)
    k = Camera.intrinsics_from_fov(images.shape[2], images.shape[1], 30.0)
    depth = np.zeros(images.shape[1:], np.float32)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        ev = float(rng.uniform(*camera["exposure_ev"]))
        lo, hi = camera["jpeg_quality"]
        params = SensorParams(
            exposure_ev=ev,
            iso=BASE_ISO * 2.0**-ev,
            noise=Noise(camera["full_well"], camera["read_noise"], 12),
            jpeg_quality=int(rng.integers(lo, hi + 1)),
            seed=int(rng.integers(0, 2**63)),
        )
        out[i] = apply_photometric(img, depth, k, params)
    return out


def real_sets(out: Path, validation_only: bool) -> dict[str, tuple[Path, np.ndarray]]:
    """Degraded copies of the real val (and test) digits as samples files by camera
    (``val_night``, ...), with the clean originals (for the denoising table)."""
    from synthcv.realdata import validation_part
    from synthcv.tasks.data import load_source

    parts = {"val": {"kind": "mnist", "split": "train", "part": "val"}}
    if not validation_only:
        parts["test"] = {"kind": "mnist", "split": "test"}
    made = {}
    for name, source in parts.items():
        real = load_source(source)
        if source.get("part"):  # the experiments' fixed cut: 700 of the 7,000 training digits
            real = real.take(validation_part(len(real), source["part"], 0.1))
        for k, (cam_name, camera) in enumerate(CAMERAS.items()):
            degraded = deployment_camera(real.images, camera, seed=1000 + 10 * len(name) + k)
            path = out / f"real_{name}_{cam_name}.npz"
            np.savez_compressed(path, images=degraded, labels=real.labels)
            made[f"{name}_{cam_name}"] = (path, real.images)
    return made


def classify(args: argparse.Namespace, data: Path, night: dict[str, Any]) -> list[dict[str, Any]]:
    from synthcv.tasks.experiment import run_experiment

    sources: dict[str, Any] = {
        "real6300": {"kind": "mnist", "split": "train", "part": "train"},
        "synth_clean": {
            "kind": "dataset",
            "path": str(data),
            "match_domain": None,
            "modality": "clean",
        },
        "synth_sensor": {"kind": "dataset", "path": str(data), "match_domain": None},
        "real_val": {"kind": "mnist", "split": "train", "part": "val"},
    }
    evals = ["real_val"]
    if any(k.startswith("test_") for k in night):
        sources["real_test"] = {"kind": "mnist", "split": "test"}
        evals.append("real_test")
    for key, (path, _) in night.items():
        sources[f"real_{key}"] = {"kind": "samples", "path": str(path)}
        evals.append(f"real_{key}")
    cache: dict[str, Any] = {}
    rows = []
    for row, source in ROWS.items():
        cfg = {
            "name": f"sensor_digits/{row}",
            "recipe": "train",
            "seeds": list(range(args.seeds)),
            "data": {k: v for k, v in sources.items() if k == source or k in evals},
            "train": {
                "sources": {source: 1.0},
                "epochs": args.epochs,
                "steps_per_epoch": STEPS_PER_EPOCH,
                "batch_size": 64,
                "jitter": True,
            },
            "eval": evals,
            "threads": args.threads,
        }
        t0 = time.time()
        print(f"[run] {row}", flush=True)
        res = run_experiment(
            cfg,
            out=args.out / "classify" / row.replace(" ", "_").replace("+", "plus"),
            tracking=False,
            cache=cache,
        )
        rows.append(
            {
                "row": row,
                "seconds": round(time.time() - t0, 1),
                **{e: res["summary"][e] for e in evals},
            }
        )
    return rows


def denoise_table(args: argparse.Namespace, data: Path, night: dict[str, Any]) -> dict[str, Any]:
    from synthcv.tasks import denoise as dn

    noisy, clean = dn.load_pairs(data)
    tr, va = dn.split_pairs(len(noisy), 0.1, seed=0)
    val = (noisy[va], clean[va])
    t0 = time.time()
    model, history = dn.train_denoiser(
        noisy[tr], clean[tr], steps=args.denoise_steps, batch_size=32, patch=28, seed=0, val=val
    )
    seconds = time.time() - t0
    tv_weight, _ = dn.choose_tv_weight(*val)
    methods = {**dn.classical_methods(tv_weight), "DnCNN (learned)": lambda x: dn.denoise(model, x)}
    out: dict[str, Any] = {
        "n_train": len(tr),
        "n_val": len(va),
        "train_seconds": round(seconds, 1),
        "best_step": dn.best_step(history),
        "tv_weight": tv_weight,
        "synthetic_val": dn.evaluate(methods, *val),
    }
    for key, entry in night.items():
        out[f"real_{key}"] = dn.evaluate(methods, *_pairs(entry))
    return out


def _pairs(entry: tuple[Path, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    with np.load(entry[0]) as d:
        return d["images"], entry[1]


def _fmt(s: dict[str, float]) -> str:
    from synthcv.tasks.stats import fmt_ci

    return fmt_ci(s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import synthcv

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or args.out / "data"
    t0 = time.time()
    synthcv.generate(synthcv.load_spec(SPEC), data, count=args.count, workers=args.workers)
    gen_seconds = time.time() - t0
    night = real_sets(args.out, args.validation_only)
    results: dict[str, Any] = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "spec": str(SPEC.relative_to(ROOT)),
        "count": args.count,
        "generate_seconds": round(gen_seconds, 1),
        "cameras": CAMERAS,
    }
    lines = [f"# sensor_digits ({results['machine']})", "", f"`{results['command']}`", ""]
    if not args.skip_classify:
        rows = classify(args, data, night)
        results["classification"] = rows
        cols = [c for c in rows[0] if c.startswith("real_")]
        lines += ["| trained on | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {r['row']} | " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
        lines.append("")
    if not args.skip_denoise:
        dt = denoise_table(args, data, night)
        results["denoising"] = dt
        sets = ["synthetic_val"] + [s for s in dt if s.startswith("real_")]
        lines += [
            "| method | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |",
            "|---" * (len(sets) + 1) + "|",
        ]
        for i, r in enumerate(dt[sets[0]]):
            cells = [f"{dt[s][i]['psnr']:.2f} / {dt[s][i]['ssim']:.3f}" for s in sets]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"DnCNN: {dt['n_train']} train pairs, {dt['train_seconds']} s, checkpoint "
            f"of step {dt['best_step']} and TV weight {dt['tv_weight']:g} chosen on the "
            "synthetic validation pairs.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (args.out / "results.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
