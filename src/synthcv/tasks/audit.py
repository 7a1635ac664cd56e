"""Audit a model a user already has on a synthcv dataset, metric by factor.

The bias-discovery use of synthetic data: render a sweep (one factor stepped, everything else
held), run the model over it, and read "down to which light level / size / angle does my
detector work?" off one metric row per swept value. Any model that returns COCO-style
predictions can be audited:

- a synthcv experiment output directory (its ``model.pt``) or a ``model.pt`` checkpoint;
- an MLflow model URI (``runs:/ID/model``, ``models:/NAME/1``) holding a synthcv detector;
- a TorchScript file whose ``forward(x)`` takes (N, C, S, S) float images in [0, 1] and returns
  (N, D, 6) rows ``x, y, w, h, score, class index`` in input pixels (what
  :func:`synthcv.tasks.detector_io.export_torchscript` writes; its categories and input size
  travel inside the file, otherwise the dataset's categories and the file's own size are used);
- ``module:function``: ``function(images)`` takes a list of (H, W, 3) uint8 arrays and returns,
  per image, a list of dicts ``{"bbox": [x, y, w, h], "score": s, "category": name}`` (or
  ``"category_id"``: 1-based index into the dataset's categories), optionally with
  ``"segmentation"`` (COCO RLE) and ``"keypoints"`` ([x, y, v] * K).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import write_text_atomic
from synthcv.tasks.instances import InstanceSet, Predictions

Predictor = Callable[[InstanceSet], list[Predictions]]


@dataclass
class AuditModel:
    """A loaded model: what it predicts with, and what it can be scored on."""

    predict: Predictor
    iou_types: list[str]
    describe: str
    categories: list[str] | None = None


def load_model(ref: str, score_threshold: float = 0.05) -> AuditModel:
    """Resolve a MODEL argument (see the module docstring) into an :class:`AuditModel`."""
    p = Path(ref)
    if p.is_dir():
        ckpt = p / "model.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{p}: no model.pt (is it a synthcv experiment output?)")
        return from_detector(_load_checkpoint(ckpt), f"checkpoint {ckpt}", score_threshold)
    if p.is_file():
        from synthcv.tasks.detector_io import CHECKPOINT_KIND

        if _is_checkpoint(p, CHECKPOINT_KIND):
            return from_detector(_load_checkpoint(p), f"checkpoint {p}", score_threshold)
        return _from_torchscript(p, score_threshold)
    if ref.startswith(("runs:/", "models:/", "mlflow-artifacts:", "file:")):
        return _from_mlflow(ref, score_threshold)
    if ":" in ref and not ref.startswith("/"):
        return _from_function(ref)
    raise FileNotFoundError(
        f"MODEL {ref!r}: not a file, directory, MLflow model URI or module:function"
    )


def _is_checkpoint(p: Path, kind: str) -> bool:
    import torch

    from synthcv.tasks.detector_io import is_torchscript

    if is_torchscript(p):
        return False
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(obj, dict) and obj.get("kind") == kind


def _load_checkpoint(p: Path) -> Any:
    from synthcv.tasks.detector_io import load_checkpoint

    return load_checkpoint(p)


def from_detector(model: Any, describe: str, score_threshold: float = 0.05) -> AuditModel:
    """A synthcv detector (a :class:`DenseDetector` in memory) as an :class:`AuditModel`."""
    from synthcv.tasks.detector_train import iou_types, predict

    def run(data: InstanceSet) -> list[Predictions]:
        return predict(model, data, score_threshold=score_threshold)

    return AuditModel(run, iou_types(model), describe, list(model.categories))


def _from_mlflow(uri: str, score_threshold: float) -> AuditModel:
    from synthcv.tasks.detector import DenseDetector
    from synthcv.tracking import load_logged_torch_model

    model = load_logged_torch_model(uri)
    if not isinstance(model, DenseDetector):
        raise ValueError(
            f"{uri}: an MLflow model of type {type(model).__name__}; audit reads synthcv "
            "detectors from MLflow (wrap anything else as module:function)"
        )
    return from_detector(model.eval(), f"MLflow model {uri}", score_threshold)


def _from_torchscript(p: Path, score_threshold: float) -> AuditModel:
    import torch

    from synthcv.tasks.detector_io import load_torchscript
    from synthcv.tasks.detector_train import letterbox, to_image_pixels

    try:
        module, meta = load_torchscript(p)
    except Exception as exc:
        raise ValueError(
            f"{p}: neither a synthcv checkpoint nor a TorchScript file ({exc})"
        ) from None
    size = int(meta.get("input_size", 128))
    channels = int(meta.get("in_channels", 3))

    @torch.no_grad()
    def run(data: InstanceSet) -> list[Predictions]:
        lb = letterbox(data, size, channels)
        preds: list[Predictions] = []
        for i in range(0, len(data), 32):
            rows = module(lb.images[i : i + 32].float() / 255.0)
            if rows.ndim != 3 or rows.shape[-1] != 6:
                raise ValueError(
                    f"{p}: forward returned shape {tuple(rows.shape)}, expected (N, D, 6) rows "
                    "x, y, w, h, score, class"
                )
            for j, r in enumerate(rows.numpy()):
                r = r[r[:, 4] >= score_threshold]
                pred = Predictions(r[:, :4], r[:, 4], r[:, 5].round().astype(np.int64))
                preds.append(
                    to_image_pixels(pred, float(lb.scales[i + j]), data.images[i + j].shape)
                )
        return preds

    return AuditModel(run, ["bbox"], f"TorchScript {p}", meta.get("categories"))


def _from_function(ref: str) -> AuditModel:
    mod_name, _, fn_name = ref.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a user's module beside the data, as python -m does
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"MODEL {ref!r}: cannot load {fn_name} from {mod_name} ({exc})") from None
    kinds: set[str] = {"bbox"}

    def run(data: InstanceSet) -> list[Predictions]:
        out = fn(list(data.images))
        if len(out) != len(data):
            raise ValueError(f"{ref}: returned {len(out)} results for {len(data)} images")
        preds = []
        for k, (dets, img) in enumerate(zip(out, data.images, strict=True)):
            preds.append(_from_dicts(dets, data.categories, img.shape[:2], f"{ref}: image {k}"))
            if preds[-1].masks is not None:
                kinds.add("segm")
            if preds[-1].keypoints is not None:
                kinds.add("keypoints")
        return preds

    model = AuditModel(run, [], f"function {ref}")
    model.iou_types = kinds  # type: ignore[assignment]  # filled as predictions arrive
    return model


def _from_dicts(
    dets: list[dict[str, Any]], categories: list[str], shape: tuple[int, ...], where: str
) -> Predictions:
    from pycocotools import mask as mask_utils

    boxes, scores, labels, masks, kps = [], [], [], [], []
    index = {c: i for i, c in enumerate(categories)}
    for j, d in enumerate(dets):
        try:
            if "category" in d:
                labels.append(index[str(d["category"])])
            else:
                labels.append(int(d["category_id"]) - 1)
            boxes.append([float(v) for v in d["bbox"]])
            scores.append(float(d["score"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}, detection {j}: {exc!r}; expected bbox, score and category"
            ) from None
        if "segmentation" in d:
            rle = dict(d["segmentation"])
            if isinstance(rle.get("counts"), str):
                rle["counts"] = rle["counts"].encode("ascii")
            masks.append(mask_utils.decode(rle).astype(bool))
        if "keypoints" in d:
            kps.append(np.asarray(d["keypoints"], np.float32).reshape(-1, 3))
    p = Predictions(np.array(boxes, np.float32), np.array(scores), np.array(labels))
    if masks and len(masks) == len(dets):
        p.masks = np.stack(masks)
    if kps and len(kps) == len(dets):
        p.keypoints = np.stack(kps)
    return p


def default_factors(data: InstanceSet) -> list[str]:
    """The swept value when the dataset is a sweep, else every per-image factor."""
    if "sweep.value" in data.factors:
        return ["sweep.value"]
    return sorted(data.factors)


def audit(
    model_ref: str,
    dataset: str | Path,
    out: str | Path | None = None,
    factors: list[str] | None = None,
    bins: int = 5,
    binning: str = "quantile",
    score_threshold: float = 0.3,
    kpt_sigmas: list[float] | None = None,
) -> dict[str, Any]:
    """Overall COCO metrics and metric-by-factor rows of ``model_ref`` on ``dataset`` (a synthcv
    dataset directory); writes ``audit.json``, ``audit.md`` and a metric-vs-factor plot per
    factor into ``out`` when given. Swept values each get their own row whatever ``bins``."""
    from synthcv.format import open_dataset
    from synthcv.tasks.coco_data import load_synthcv
    from synthcv.tasks.evaluation import coco_evaluate, instance_slices

    model = load_model(model_ref)
    # classes the model was never taught (the boxes beside a person model's people) are left
    # out of the scoring, as COCO scores only the categories it is given
    ignored: list[str] = []
    if model.categories:
        ignored = [
            c["name"] for c in open_dataset(dataset).classes if c["name"] not in model.categories
        ]
    data = load_synthcv(
        dataset, categories=model.categories, label_map=dict.fromkeys(ignored) or None
    )
    preds = model.predict(data)
    kinds = sorted(model.iou_types, key=["bbox", "segm", "keypoints"].index)
    overall = coco_evaluate(data, preds, iou_types=kinds, kpt_sigmas=kpt_sigmas)
    names = factors or default_factors(data)
    steps = len(np.unique(data.factors["sweep.value"])) if "sweep.value" in names else 0
    try:
        rows = instance_slices(
            data,
            preds,
            names,
            bins=max(bins, steps),
            binning=binning,  # type: ignore[arg-type]
            score_threshold=score_threshold,
        )
    except KeyError as exc:  # an unknown factor: the message lists the known ones
        raise ValueError(f"{dataset}: {exc.args[0]}") from None
    metrics = {
        f"{k}.{m}": float(v)
        for k in kinds
        for m, v in overall[k].items()
        if isinstance(v, int | float)
    }
    result = {
        "model": model.describe,
        "ignored_classes": ignored,
        "dataset": str(dataset),
        "images": len(data),
        "metrics": metrics,
        "slices": rows,
    }
    if out is not None:
        _write(result, Path(out), names)
    return result


def _write(result: dict[str, Any], out: Path, factors: list[str]) -> None:
    from synthcv.tasks import plots

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "audit.json", json.dumps(result, indent=2, default=float))
    write_text_atomic(out / "audit.md", audit_markdown(result) + "\n")
    for f in factors:
        rows = [r for r in result["slices"] if r["factor"] == f]
        if rows and any(r.get("n_images") for r in rows):
            plots.metric_vs_factor(rows, f, "ap50", out / f"ap50_vs_{_safe(f)}.png")
        if rows:
            plots.metric_vs_factor(rows, f, "recall", out / f"recall_vs_{_safe(f)}.png")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def audit_markdown(result: dict[str, Any]) -> str:
    m = result["metrics"]
    lines = [
        f"# Audit of {result['model']} on {result['dataset']} ({result['images']} images)",
        "",
        " · ".join(f"{k} {100 * v:.1f}" for k, v in m.items() if k.endswith(("AP", "AP50"))),
        "",
        *(
            [f"Not scored (the model has no such class): {', '.join(ignored)}", ""]
            if (ignored := result.get("ignored_classes"))
            else []
        ),
        "| factor | slice | images | objects | AP50 (95%) | recall (95%) |",
        "|---|---|---|---|---|---|",
    ]

    def ci(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "—"
        return f"{100 * v:.1f} [{100 * r[key + '_lo']:.1f}, {100 * r[key + '_hi']:.1f}]"

    for r in result["slices"]:
        lines.append(
            f"| {r['factor']} | {r['slice']} | {r.get('n_images', '—')} | "
            f"{r.get('n_objects', '—')} | {ci(r, 'ap50')} | {ci(r, 'recall')} |"
        )
    return "\n".join(lines)
