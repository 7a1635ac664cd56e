"""People: render rate against the rigid tabletop on both backends, and the render-domain gap
of a person keypoint model between tiny and Cycles.

Two parts, each a table:

``throughput``: samples/s of ``synthcv generate`` (1 worker, every output written) at 256² for
``examples/people.yaml`` and ``examples/tabletop.yaml`` on tiny and on Cycles (the same
``--cycles-samples`` for both), and the ratio people / tabletop measured in the same run.

``gap``: ``benchmarks/people_keypoints.yaml`` (or ``--spec``) rendered twice, same scenes,
with tiny and with Cycles (``--train`` scenes to train on, ``--test`` other scenes to score
on). One keypoint model (detection + COCO's 17 person keypoints, ``synthcv.tasks``) is trained
on each renderer's images with a recipe fixed before any run (no choice is made on any score),
and each is scored with COCO's OKS keypoint AP on both renderers' test images. The gap is
in-domain AP minus cross-domain AP. A validation split carved from each training set is
reported beside it.

Beside each model the part says *why* its keypoint AP is what it is, on each test set: the mean
OKS of its best-scoring person per true person, the share of persons whose prediction fits
better with left and right exchanged (a model that cannot tell a person's front from its back),
and the mean OKS that the true keypoints keep when snapped to the centre of their stride-4
heatmap cell (the head's resolution limit; 1.0 = no limit).

Examples::

    ./run python benchmarks/people.py throughput
    ./run python benchmarks/people.py gap --train 800 --test 200 --steps 1500
    ./run python benchmarks/people.py gap --spec benchmarks/people_keypoints_near.yaml \
        --train 5334 --steps 4500 --trained-on cycles --data out/bench/people_near \
        --out out/bench/people_near_cycles4500
    ./run python benchmarks/people.py gap --spec benchmarks/people_keypoints_near.yaml \
        --data out/bench/people_near --out out/bench/people_near_results
    ./run python benchmarks/people.py all
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

os.environ.setdefault("SYNTHCV_TRACKING", "0")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("part", choices=["throughput", "gap", "all"])
    p.add_argument("--count", type=int, default=12, help="throughput: samples per cell")
    p.add_argument("--cycles-samples", type=int, default=16, help="Cycles path-tracing samples")
    p.add_argument("--train", type=int, default=800, help="gap: training scenes per renderer")
    p.add_argument("--test", type=int, default=200, help="gap: test scenes per renderer")
    p.add_argument("--steps", type=int, default=1500, help="gap: gradient steps per model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument(
        "--flip", type=float, default=0.0, help="gap: left-right mirror probability (train.flip)"
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        help="gap: resamples of the test scenes for the gap's 95%% interval (0: none)",
    )
    p.add_argument(
        "--trained-on",
        default="tiny,cycles",
        help="gap: which renderers' models to train or score (comma-separated)",
    )
    for backend in ("tiny", "cycles"):
        p.add_argument(
            f"--checkpoint-{backend}",
            type=Path,
            default=None,
            help=f"gap: score this {backend}-trained model.pt instead of training one (no "
            f"{backend} training scenes rendered; its validation figure is its own run's)",
        )
    p.add_argument("--workers", type=int, default=2, help="gap: render workers")
    p.add_argument(
        "--spec",
        type=Path,
        default=REPO / "benchmarks" / "people_keypoints.yaml",
        help="gap: the people spec (people_keypoints_near.yaml: one person, nearer)",
    )
    p.add_argument("--data", type=Path, default=Path("out/bench/people"))
    p.add_argument("--out", type=Path, default=Path("out/bench/people_results"))
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue interrupted training runs from their checkpoints (their seconds then "
        "cover only the rest)",
    )
    args = p.parse_args(argv)
    announce()
    return args


def _spec(path: Path, backend: str, args: argparse.Namespace, **over: Any) -> Any:
    from synthcv.spec import load_spec

    spec = load_spec(path)
    renderer = {"backend": backend}
    if backend == "cycles":
        renderer["samples"] = args.cycles_samples
    data = {**spec.resolved(), "renderer": renderer, **over}
    data.pop("written_paths", None)
    return load_spec(data, asset_root=path.parent)


def throughput(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from synthcv.pipeline import generate

    rows = {}
    tmp = Path(tempfile.mkdtemp(prefix="synthcv-people-bench-"))
    try:
        for name in ("tabletop", "people"):
            for backend in ("tiny", "cycles"):
                image = {"width": 256, "height": 256, "channels": 3}
                spec = _spec(REPO / "examples" / f"{name}.yaml", backend, args, image=image)
                warm = tmp / f"{name}-{backend}-warm"
                generate(spec.with_count(2), warm, workers=1, progress=False)  # caches, imports
                out = tmp / f"{name}-{backend}"
                t0 = time.perf_counter()
                generate(spec.with_count(args.count), out, workers=1, progress=False)
                rate = args.count / (time.perf_counter() - t0)
                rows[(name, backend)] = rate
                print(f"  {name:9s} {backend:7s} {rate:6.2f} samples/s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "| backend | tabletop samples/s | people samples/s | people / tabletop |",
        "|---|---|---|---|",
    ]
    for backend in ("tiny", "cycles"):
        t, p = rows[("tabletop", backend)], rows[("people", backend)]
        lines.append(f"| {backend} | {t:.2f} | {p:.2f} | {p / t:.2f} |")
    return "\n".join(lines), {f"{n}/{b}": r for (n, b), r in rows.items()}


def _render_sets(args: argparse.Namespace) -> dict[str, Path]:
    from synthcv.pipeline import generate

    spec_path = args.spec
    paths = {}
    for backend in ("tiny", "cycles"):
        for split, count, seed in (("train", args.train, 21), ("test", args.test, 22)):
            key = f"{backend}_{split}"
            trained = backend in args.trained_on.split(",")
            if split == "train" and (not trained or getattr(args, f"checkpoint_{backend}")):
                continue  # no model to train on these scenes
            path = args.data / key
            paths[key] = path
            spec = _spec(spec_path, backend, args, seed=seed).with_count(count)
            manifest = path / "manifest.json"
            if manifest.is_file():
                made = json.loads(manifest.read_text())
                if made["spec_hash"] == spec.spec_hash and made["count"] == count:
                    continue  # the same spec, count and renderer options: reuse it
                print(f"[data] {path} holds another spec or count: re-rendering")
            print(f"[data] rendering {count} {split} scenes with {backend} → {path}", flush=True)
            generate(spec, path, workers=args.workers, overwrite=manifest.is_file())
    return paths


@functools.cache
def _test_set(path: Path) -> Any:
    """A test dataset as an InstanceSet, loaded once per run (scoring, diagnostics and the
    bootstrap all read it)."""
    from synthcv.tasks.coco_data import load_synthcv

    return load_synthcv(path, label_map={"box": None})


def _keypoint_diagnostics(model_path: Path, data: Path) -> dict[str, float]:
    """people_keypoint_diagnosis's figures (mean OKS, left-right swaps, the grid's own OKS) of
    the checkpoint at ``model_path`` on the dataset at ``data``."""
    from people_keypoint_diagnosis import keypoint_diagnostics

    from synthcv.tasks.detector_io import load_checkpoint

    return keypoint_diagnostics(load_checkpoint(model_path), _test_set(data))


def _gap_interval(model_path: Path, paths: dict[str, Path], resamples: int) -> dict[str, Any]:
    """95% percentile intervals of one model's (tiny − Cycles) keypoint AP, AP50 and box AP,
    resampling the test scenes with replacement and pairing each scene's two renders (the
    same scenes, so scene difficulty cancels)."""
    import numpy as np

    from synthcv.tasks.detector_io import load_checkpoint
    from synthcv.tasks.detector_train import evaluate, predict
    from synthcv.tasks.instances import InstanceSet

    model = load_checkpoint(model_path)
    sets = {b: _test_set(paths[f"{b}_test"]) for b in ("tiny", "cycles")}
    preds = {b: predict(model, d) for b, d in sets.items()}
    n = len(sets["tiny"])
    assert n == len(sets["cycles"]), "the two test sets hold different scene counts"
    rng = np.random.default_rng(0)
    keys = ("keypoints.AP", "keypoints.AP50", "bbox.AP")
    diffs: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        scores = {}
        for b, d in sets.items():
            sub = InstanceSet(
                [d.images[i] for i in pick],
                [d.targets[i] for i in pick],
                d.categories,
                image_ids=np.arange(n),
                keypoint_names=d.keypoint_names,
            )
            scores[b] = evaluate(model, sub, [preds[b][i] for i in pick])
        for k in keys:
            diffs[k].append(scores["tiny"][k] - scores["cycles"][k])
    return {
        k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in diffs.items()
    }


def _score_checkpoint(model_path: Path, paths: dict[str, Path]) -> dict[str, Any]:
    """A given model's COCO figures and diagnostics on both test sets (``val`` left blank:
    its validation figure belongs to the run that trained it)."""
    from people_keypoint_diagnosis import keypoint_diagnostics

    from synthcv.tasks.detector_io import load_checkpoint
    from synthcv.tasks.detector_train import evaluate

    print(f"[score] {model_path} (given, not trained here)", flush=True)
    model = load_checkpoint(model_path)
    out: dict[str, Any] = {"val": {"kp_AP": float("nan"), "kp_AP50": float("nan")}}
    for split in ("tiny_test", "cycles_test"):
        data = _test_set(paths[split])
        r = evaluate(model, data, full=True)
        out[split] = {
            "kp_AP": r["keypoints.AP"],
            "kp_AP50": r["keypoints.AP50"],
            "bbox_AP": r["bbox.AP"],
            **keypoint_diagnostics(model, data, r["predictions"]),
        }
    out["checkpoint"] = str(model_path)
    return out


def gap(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from synthcv.tasks.experiment import run_experiment

    paths = _render_sets(args)
    epochs = 5
    results: dict[str, Any] = {}
    directions = [b for b in ("tiny", "cycles") if b in args.trained_on.split(",")]
    for train_on in directions:
        given = getattr(args, f"checkpoint_{train_on}")
        if given is not None:
            results[train_on] = _score_checkpoint(given, paths)
            continue

        def src(key: str, part: str | None = None) -> dict[str, Any]:
            s: dict[str, Any] = {"kind": "dataset", "path": str(paths[key])}
            s["label_map"] = {"box": None}
            if part:
                s["part"] = part
            return s

        cfg = {
            "name": f"people_keypoints_{train_on}",
            "tasks": ["detection", "keypoints"],
            "categories": ["person"],
            "seeds": list(range(args.seeds)),
            "data": {
                "train": src(f"{train_on}_train", "train"),
                "val": src(f"{train_on}_train", "val"),
                "tiny_test": src("tiny_test"),
                "cycles_test": src("cycles_test"),
            },
            "train": {
                "sources": {"train": 1.0},
                "epochs": epochs,
                "steps_per_epoch": max(1, args.steps // epochs),
                "batch_size": args.batch,
                "lr": args.lr,
                "photometric": True,
                "flip": args.flip,
            },
            "eval": ["val", "tiny_test", "cycles_test"],
            "model": {"width": 32, "input_size": 160},
            "log_model": False,
        }
        t0 = time.time()
        print(f"[train] on {train_on} ({args.steps} steps of {args.batch})", flush=True)
        res = run_experiment(
            cfg, out=args.out / f"train_{train_on}", tracking=False, resume=args.resume
        )
        s = res["summary"]
        results[train_on] = {
            split: {
                "kp_AP": s.get(f"{split}/keypoints.AP"),
                "kp_AP50": s.get(f"{split}/keypoints.AP50"),
                "bbox_AP": s.get(f"{split}/bbox.AP"),
            }
            for split in ("val", "tiny_test", "cycles_test")
        }
        results[train_on]["seconds"] = round(time.time() - t0, 1)
        results[train_on]["resumed"] = res["resumed"]
        model = args.out / f"train_{train_on}" / "model.pt"
        for split in ("tiny_test", "cycles_test"):
            results[train_on][split].update(_keypoint_diagnostics(model, paths[split]))

    for train_on in directions if args.bootstrap else ():
        model = getattr(args, f"checkpoint_{train_on}") or (
            args.out / f"train_{train_on}" / "model.pt"
        )
        print(f"[bootstrap] {train_on}-trained model: {args.bootstrap} resamples", flush=True)
        results[train_on]["gap_interval"] = _gap_interval(model, paths, args.bootstrap)

    def m(v: Any) -> float:
        return float(v["mean"]) if isinstance(v, dict) else float(v)

    lines = [
        "| trained on | val kp AP | tiny test kp AP | Cycles test kp AP | gap (in − cross) | "
        "tiny test bbox AP | Cycles test bbox AP |",
        "|---|---|---|---|---|---|---|",
    ]
    for train_on, other in (("tiny", "cycles"), ("cycles", "tiny")):
        if train_on not in results:
            continue
        r = results[train_on]
        own, cross = m(r[f"{train_on}_test"]["kp_AP"]), m(r[f"{other}_test"]["kp_AP"])
        lines.append(
            f"| {train_on} | {m(r['val']['kp_AP']) * 100:.1f} | "
            f"{m(r['tiny_test']['kp_AP']) * 100:.1f} | {m(r['cycles_test']['kp_AP']) * 100:.1f} | "
            f"{(own - cross) * 100:+.1f} | {m(r['tiny_test']['bbox_AP']) * 100:.1f} | "
            f"{m(r['cycles_test']['bbox_AP']) * 100:.1f} |"
        )
    for train_on in directions:
        iv = results[train_on].get("gap_interval")
        if iv:
            lines.append(
                f"\n{train_on}-trained, tiny − Cycles, 95% paired bootstrap over test scenes: "
                + ", ".join(f"{k} [{lo * 100:+.1f}, {hi * 100:+.1f}]" for k, (lo, hi) in iv.items())
            )
    lines += [
        "",
        "| trained on | test set | kp AP50 | mean OKS | persons fitted better left-right "
        "exchanged | OKS of the truth snapped to the stride-4 grid |",
        "|---|---|---|---|---|---|",
    ]
    for train_on in directions:
        for split in ("tiny_test", "cycles_test"):
            d = results[train_on][split]
            lines.append(
                f"| {train_on} | {split} | {m(d['kp_AP50']) * 100:.1f} | {d['mean_oks']:.2f} | "
                f"{d['lr_swapped'] * 100:.0f}% | {d['grid_oks']:.2f} |"
            )
    return "\n".join(lines), results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    tables, raw = [], {}
    if args.part in ("throughput", "all"):
        print("[throughput] 256², 1 worker, every output written")
        table, raw["throughput"] = throughput(args)
        tables.append(table)
    if args.part in ("gap", "all"):
        table, raw["gap"] = gap(args)
        tables.append(table)
    meta = {
        "command": " ".join([sys.executable, *sys.argv]) if argv is None else argv,
        "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    (args.out / f"{args.part}.json").write_text(
        json.dumps({"meta": meta, **raw}, indent=2, default=str)
    )
    print()
    for t in tables:
        print(t)
        print()
    print(f"machine: {meta['machine']}\ncommand: {meta['command']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
