"""One monitoring pass over two loaded sets: the data tests, the model's view when a model is
given, and the MLflow run that records it. ``synthcv monitor`` and ``synthcv loop`` share it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.monitor.drift import DEFAULT_ALPHA, DriftReport, detect_drift
from synthcv.monitor.features import image_features
from synthcv.monitor.model_checks import model_section, run_classifier
from synthcv.monitor.sources import MonitorSet

Embed = Callable[[np.ndarray], np.ndarray]


def load_monitor_model(ref: str) -> tuple[Any, str]:
    """(model, description) for ``--model``: a classifier (checkpoint, state dict, run dir,
    MLflow URI) or, failing that, anything ``synthcv audit`` takes as a detector (its
    checkpoint, TorchScript, an MLflow URI, ``module:function``)."""
    from synthcv.tasks.audit import load_model
    from synthcv.tasks.classifier_io import load_classifier

    try:
        return load_classifier(ref)
    except (ValueError, FileNotFoundError) as exc:
        first = exc
    try:
        detector = load_model(ref)
    except (ValueError, FileNotFoundError, ImportError, AttributeError) as exc:
        if isinstance(first, FileNotFoundError):
            raise first from None
        raise ValueError(f"{ref}: not a classifier ({first}) nor a detector ({exc})") from None
    return detector, detector.describe


def _detector_report(
    reference: MonitorSet, current: MonitorSet, detector: Any
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """The detector's drift rows and its AP section (module model_checks)."""
    from synthcv.monitor.model_checks import detector_section, detector_tests

    ref_i, cur_i = reference.instances(), current.instances()
    ref_p, cur_p = detector.predict(ref_i), detector.predict(cur_i)
    categories = detector.categories or ref_i.categories
    numeric, mixes = detector_tests(
        ref_p,
        cur_p,
        [im.shape[:2] for im in ref_i.images],
        [im.shape[:2] for im in cur_i.images],
        list(categories),
    )
    section = detector_section(detector.describe, detector.iou_types, ref_i, cur_i, ref_p, cur_p)
    return numeric, mixes, section


def monitor_sets(
    reference: MonitorSet,
    current: MonitorSet,
    *,
    model: Any | None = None,
    model_name: str = "",
    embedding: Embed | None = None,
    embedding_name: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    permutations: int = 200,
    seed: int = 0,
) -> DriftReport:
    """Drift of ``current`` from ``reference``. With ``model``: prediction drift, its own
    embedding (unless ``embedding`` is given), and accuracy, calibration, a label-free estimate
    and slices (module :mod:`synthcv.monitor.model_checks`)."""
    from synthcv.tasks.audit import AuditModel

    detector = model if isinstance(model, AuditModel) else None
    if detector is not None:
        model = None
    numeric: list[Any] = []
    mixes: list[Any] = []
    detector_part = None
    if detector is not None:
        numeric, mixes, detector_part = _detector_report(reference, current, detector)
    ref_out = cur_out = None
    if model is not None:
        ref_out, cur_out = (
            run_classifier(model, reference.images),
            run_classifier(model, current.images),
        )
    ref_emb = cur_emb = None
    if embedding is not None and reference.same_size and current.same_size:
        ref_emb, cur_emb = embedding(reference.images), embedding(current.images)  # type: ignore[arg-type]
    elif embedding is None and ref_out is not None and ref_out.embedding is not None:
        ref_emb, cur_emb = ref_out.embedding, cur_out.embedding  # type: ignore[union-attr]
        embedding_name = f"{model_name} (penultimate layer)"
    elif embedding is not None:
        embedding_name = None  # images of several sizes: no one embedding batch
    report = detect_drift(
        reference.images,
        current.images,
        reference_labels=reference.labels,
        current_labels=current.labels,
        reference_embedding=ref_emb,
        current_embedding=cur_emb,
        reference_objects=reference.objects,
        current_objects=current.objects,
        reference_object_classes=reference.object_classes,
        current_object_classes=current.object_classes,
        reference_outputs=ref_out,
        current_outputs=cur_out,
        extra_numeric=numeric,
        extra_mixes=mixes,
        alpha=alpha,
        permutations=permutations,
        seed=seed,
        names=(reference.name, current.name),
    )
    report.meta["embedding"] = embedding_name if ref_emb is not None else None
    if detector_part is not None:
        report.model = detector_part
    if model is not None:
        assert ref_out is not None and cur_out is not None
        report.model = model_section(
            ref_out,
            cur_out,
            reference.labels,
            current.labels,
            _slice_factors(current, report),
            model_name,
        )
    return report


def _slice_factors(current: MonitorSet, report: DriftReport) -> dict[str, np.ndarray]:
    """Recorded factors plus the image features (``feature.brightness``...): real batches have
    no factors, but "accuracy on the darkest quarter" is still a slice worth seeing."""
    feats = {f"feature.{k}": v[1] for k, v in report.values.items() if len(v[1]) == len(current)}
    if not feats:
        feats = {f"feature.{k}": v for k, v in image_features(current.images).items()}
    return {**current.factors, **feats}


def report_metrics(report: DriftReport) -> dict[str, float]:
    """The figures a tracking run charts: the verdict, per test its statistic and p-value, and
    the model's accuracy, estimate and calibration."""
    m: dict[str, float] = {"drifted": float(report.drifted), "drifted_tests": 0.0}
    m["drifted_tests"] = float(len(report.drifted_features))
    for t in report.tests:
        m[f"{t.feature}.statistic"] = t.statistic
        if t.p_adjusted is not None:
            m[f"{t.feature}.p_adjusted"] = t.p_adjusted
    md = report.model or {}
    for key in ("reference", "current"):
        for name in ("acc", "AP", "AP50"):  # a classifier's accuracy, a detector's COCO AP
            if md.get(key, {}).get(name) is not None:
                m[f"model.{key}.{name}"] = md[key][name]
        if md.get(key, {}).get("precision") is not None:  # a detector's
            m[f"model.{key}.precision"] = md[key]["precision"]["precision"]
        if f"{key}_calibration" in md:
            m[f"model.{key}.ece"] = md[f"{key}_calibration"]["ece"]
    if "estimated_current_accuracy" in md:
        m["model.current.acc_estimated"] = md["estimated_current_accuracy"]
    if "estimated_current_precision" in md:
        m["model.current.precision_estimated"] = md["estimated_current_precision"]
    return {k: float(v) for k, v in m.items() if v is not None and np.isfinite(v)}


def track_monitor(
    report: DriftReport,
    inputs: dict[str, str],
    params: dict[str, Any],
    files: list[Path],
    *,
    enabled: bool | None = None,
    nested: bool = False,
    experiment: str | None = None,
) -> str | None:
    """A "monitor" MLflow run: the inputs by content hash, the settings, every figure, the
    report files; returns its run id (None when tracking is off)."""
    from synthcv.tracking import tracked_run

    with tracked_run(
        "monitor",
        params,
        inputs,
        run_name=f"monitor {report.current}",
        enabled=enabled,
        nested=nested,
        experiment=experiment,
    ) as log:
        log.set_tags({"synthcv.drifted": str(report.drifted).lower()})
        log.log_metrics(report_metrics(report))
        for f in files:
            log.log_artifact(f, "monitor")
        return getattr(log, "run_id", None)
