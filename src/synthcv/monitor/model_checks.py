"""What a model's outputs say about a batch: prediction drift, calibration, accuracy by slice,
and a label-free estimate of how well it does.

- **Prediction drift**: the predicted class mix and the confidence (top probability) are tested
  like any other feature (same tests, same Holm correction), so a model that starts answering
  "1" to everything raises an alarm before anyone labels an image.
- **Calibration**: expected calibration error over ``ECE_BINS`` equal-width confidence bins
  (Guo et al. 2017) and the reliability diagram's bins, on each labelled set.
- **Accuracy by slice**: every recorded factor and every image feature, binned, with Wilson
  intervals, worst first.
- **Estimated accuracy** (CBPE-style, as NannyML does it): the reference's confidences are
  calibrated against its labels by isotonic regression, and the estimate is the mean calibrated
  confidence on the current batch. It assumes the model's mistakes change with confidence the
  same way on both sets (no concept shift), so it is reported as an *estimate*, beside the
  measured figure whenever labels exist. Calibrate on data the model did not train on: on its
  training set every confidence looks earned.

A detector's outputs get the same treatment, per detection instead of per image: its counts,
scores, sizes and predicted classes are drift rows; COCO AP / AP50 on each labelled set; the
**precision** of the detections it makes (score >= ``DETECTION_SCORE``; a true positive matches
an object of its class at IoU >= ``CALIBRATION_IOU``, greedily by score as COCOeval matches);
**detection calibration** — D-ECE (Küppers et al. 2020), the ECE above with "correct" read as
"true positive", so a score of 0.8 should be right 80 % of the time; and a label-free
**precision estimate** for the batch, CBPE-style from the reference's labelled detections. It
estimates precision only: the objects a detector misses leave no score behind, so recall (and
with it AP) has no label-free estimate here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

from synthcv.tasks.stats import wilson

ECE_BINS = 15


@dataclass
class Outputs:
    """One model's view of one set: class probabilities and (optionally) its embedding."""

    probs: np.ndarray  # (N, K)
    embedding: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)


def run_classifier(
    model: Any, images: np.ndarray | list[np.ndarray], batch_size: int = 256
) -> Outputs:
    """Softmax outputs (and ``model.embed`` features when it has them) for uint8 images; images
    of different sizes go through one at a time."""
    import torch

    from synthcv.tasks.train import to_tensor

    model.eval()
    channels = getattr(model, "in_channels", 1)
    batches = (
        [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        if isinstance(images, np.ndarray)
        else [im[None] for im in images]
    )
    probs, embs = [], []
    with torch.no_grad():
        for b in batches:
            x = to_tensor(np.asarray(b), channels)
            probs.append(torch.softmax(model(x), dim=1).numpy())
            if hasattr(model, "embed"):
                embs.append(model.embed(x).numpy())
    return Outputs(
        probs=np.concatenate(probs).astype(np.float64),
        embedding=np.concatenate(embs).astype(np.float64) if embs else None,
    )


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """ECE and the reliability diagram: per equal-width bin, its count, mean confidence and
    accuracy (empty bins are listed with n = 0)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)  # (lo, hi] bins
    rows, ece = [], 0.0
    for b in range(bins):
        m = k == b
        n = int(m.sum())
        c = float(conf[m].mean()) if n else float("nan")
        a = float(ok[m].mean()) if n else float("nan")
        if n:
            ece += n / len(conf) * abs(a - c)
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": n,
                     "confidence": c, "accuracy": a})  # fmt: skip
    return {"ece": float(ece), "bins": rows, "n": len(conf)}


def fit_confidence_calibration(confidence: np.ndarray, correct: np.ndarray):
    """P(correct | confidence) by isotonic regression (non-decreasing), as a function. Equal
    confidences are pooled first (their mean, weighted by their count): a saturated softmax or
    a detector's fixed score ties thousands of samples, and one confidence must map to one
    value, not to whichever of the tied fits interpolation lands on."""
    x, inverse, counts = np.unique(
        np.asarray(confidence, dtype=np.float64), return_inverse=True, return_counts=True
    )
    means = np.bincount(inverse, weights=np.asarray(correct, dtype=np.float64)) / counts
    y = isotonic_regression(means, weights=counts.astype(np.float64)).x

    def calibrated(c: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(c, dtype=np.float64), x, y)

    return calibrated


def estimated_accuracy(
    reference_confidence: np.ndarray,
    reference_correct: np.ndarray,
    current_confidence: np.ndarray,
) -> float:
    """CBPE-style accuracy estimate for a batch without labels (module docstring)."""
    calibrated = fit_confidence_calibration(reference_confidence, reference_correct)
    return float(calibrated(current_confidence).mean())


def _rate(hits: np.ndarray, name: str) -> dict[str, float]:
    k, n = int(np.sum(hits)), len(hits)
    lo, hi = wilson(k, n) if n else (float("nan"), float("nan"))
    return {name: k / n if n else float("nan"), "n": n, "lo": lo, "hi": hi}


def accuracy_summary(correct: np.ndarray) -> dict[str, float]:
    """The share of images classified right, with its Wilson interval."""
    return _rate(correct, "acc")


def model_section(
    reference: Outputs,
    current: Outputs,
    reference_labels: np.ndarray | None,
    current_labels: np.ndarray | None,
    slice_factors: dict[str, np.ndarray],
    describe: str,
    bins: int = 4,
) -> dict[str, Any]:
    """Performance, calibration, the estimate and slices, as plain values for the report."""
    from synthcv.tasks.slices import slice_metrics

    out: dict[str, Any] = {
        "model": describe,
        "reference_mean_confidence": float(reference.confidence.mean()),
        "current_mean_confidence": float(current.confidence.mean()),
    }
    ref_ok = _correct(reference, reference_labels)
    cur_ok = _correct(current, current_labels)
    if ref_ok is not None:
        out["reference"] = accuracy_summary(ref_ok[1])
        out["reference_calibration"] = calibration(reference.confidence[ref_ok[0]], ref_ok[1])
        out["estimated_current_accuracy"] = estimated_accuracy(
            reference.confidence[ref_ok[0]], ref_ok[1], current.confidence
        )
        out["estimate_method"] = (
            "CBPE-style: mean of P(correct | confidence), isotonic fit on the reference labels"
        )
    if cur_ok is not None:
        sel, ok = cur_ok
        out["current"] = accuracy_summary(ok)
        out["current_calibration"] = calibration(current.confidence[sel], ok)
        factors = {k: np.asarray(v)[sel] for k, v in slice_factors.items() if len(v) == len(sel)}
        rows = slice_metrics(ok, factors, bins=bins, min_count=5) if factors else []
        out["slices"] = rows
    return out


def _correct(outputs: Outputs, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(which images have a label, whether the model got each of those right) or None."""
    if labels is None:
        return None
    lab = np.asarray(labels)
    sel = lab >= 0
    if not sel.any():
        return None
    return sel, outputs.predicted[sel] == lab[sel]


# -- detectors ----------------------------------------------------------------------------

#: a detection counts as "made" at this score (counts, sizes, classes and calibration are taken
#: above it; Küppers et al. 2020 measure detection calibration above the same 0.3)
DETECTION_SCORE = 0.3
#: a detection is a true positive when it matches an unmatched object of its class at this IoU
CALIBRATION_IOU = 0.5


def detector_tests(
    reference: list[Any],
    current: list[Any],
    ref_sizes: list[tuple[int, int]],
    cur_sizes: list[tuple[int, int]],
    categories: list[str],
) -> tuple[list[tuple[str, str, np.ndarray, np.ndarray]], list[tuple[str, str, Any, Any]]]:
    """A detector's outputs as drift rows: detections per image, their scores, their sizes,
    and the predicted class mix (``reference``/``current``: one Predictions per image)."""

    def made(preds: list[Any]) -> list[np.ndarray]:
        return [p.scores >= DETECTION_SCORE for p in preds]

    def counts(preds: list[Any]) -> np.ndarray:
        return np.array([int(m.sum()) for m in made(preds)], dtype=np.float64)

    def scores(preds: list[Any]) -> np.ndarray:
        return np.concatenate([p.scores for p in preds] or [np.zeros(0)]).astype(np.float64)

    def sizes(preds: list[Any], hw: list[tuple[int, int]]) -> np.ndarray:
        out = [
            np.sqrt(np.maximum(p.boxes[m, 2] * p.boxes[m, 3], 0) / (h * w))
            for p, m, (h, w) in zip(preds, made(preds), hw, strict=True)
        ]
        return np.concatenate(out or [np.zeros(0)]).astype(np.float64)

    def classes(preds: list[Any]) -> np.ndarray:
        names = np.array(categories, dtype=object)
        return np.concatenate(
            [names[p.labels[m]] for p, m in zip(preds, made(preds), strict=True)]
            or [np.zeros(0, dtype=object)]
        ).astype(str)

    numeric = [
        (
            "predicted_count",
            f"detections per image (score >= {DETECTION_SCORE})",
            counts(reference),
            counts(current),
        ),
        ("predicted_score", "the scores of all detections", scores(reference), scores(current)),
        (
            "predicted_size",
            "sqrt(box area / image area) of the detections",
            sizes(reference, ref_sizes),
            sizes(current, cur_sizes),
        ),
    ]
    mixes = [
        (
            "predicted_class_mix",
            "share of each class the detector predicts",
            classes(reference),
            classes(current),
        )
    ]
    return numeric, mixes


def detector_section(
    describe: str,
    iou_types: list[str],
    reference: Any,
    current: Any,
    ref_preds: list[Any],
    cur_preds: list[Any],
) -> dict[str, Any]:
    """COCO AP / AP50 of the detector on each set that has labelled objects; the precision of
    its detections (score >= ``DETECTION_SCORE``, true positive at IoU ``CALIBRATION_IOU``), its
    detection calibration (D-ECE, reliability bins) and, from the reference's labels, a
    label-free estimate of the current batch's precision (module docstring)."""
    from synthcv.tasks.evaluation import coco_evaluate, detection_outcomes

    out: dict[str, Any] = {"model": describe, "kind": "detector"}
    outcomes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, data, preds in (("reference", reference, ref_preds), ("current", current, cur_preds)):
        n_obj = sum(len(t) for t in data.targets)
        made = [p.scores >= DETECTION_SCORE for p in preds]
        out[f"{key}_detections_per_image"] = float(np.mean([m.sum() for m in made]))
        if n_obj == 0:
            continue
        metrics = coco_evaluate(data, preds, [t for t in iou_types if t == "bbox"] or ["bbox"])
        box = metrics.get("bbox", {})
        out[key] = {
            "AP": box.get("AP"),
            "AP50": box.get("AP50"),
            "images": len(data),
            "objects": n_obj,
        }
        scores, tp = detection_outcomes(data, preds, iou=CALIBRATION_IOU)
        keep = scores >= DETECTION_SCORE
        outcomes[key] = (scores[keep], tp[keep])
        if keep.any():
            out[key]["precision"] = precision_summary(tp[keep])
            out[f"{key}_calibration"] = calibration(scores[keep], tp[keep])
    if "reference" in outcomes and len(outcomes["reference"][0]):
        cur_scores = np.concatenate([p.scores for p in cur_preds] or [np.zeros(0)])
        cur_scores = cur_scores[cur_scores >= DETECTION_SCORE]
        if len(cur_scores):
            out["estimated_current_precision"] = estimated_accuracy(
                *outcomes["reference"], cur_scores
            )
            out["estimate_method"] = (
                "CBPE-style: mean of P(true positive | score), isotonic fit on the reference's "
                f"labelled detections (IoU {CALIBRATION_IOU:g}, score >= {DETECTION_SCORE:g})"
            )
    return out


def precision_summary(true_positive: np.ndarray) -> dict[str, float]:
    """The share of detections that are true positives, with its Wilson interval."""
    return _rate(true_positive, "precision")
