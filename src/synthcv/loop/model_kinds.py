"""What the loop does differently for a classifier and for a detector, behind one interface, so
one pass (monitor → overlay → render → fine-tune → gate) serves both.

A kind loads the bootstrap model, shows it to the monitor, reads rendered probes and the
targeted set the way the model sees data, fine-tunes with replay, scores a labelled set by its
gate metric (accuracy; a detector's COCO AP50 or AP), and saves a candidate so an interrupted
pass resumes after its fine-tune.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from synthcv.loop.config import LoopConfig
from synthcv.monitor.sources import MonitorSet, load_monitor_source


class ModelKind(Protocol):
    name: str
    metric: str  # what the gate compares, as the decision names it

    def monitored(self, model: Any, describe: str) -> Any: ...
    def example(self, cfg: LoopConfig, model: Any) -> np.ndarray | None: ...
    def load_rendered(
        self, path: Path, cfg: LoopConfig, augment: list[dict[str, Any]], seed: int = 0
    ) -> Any: ...
    def feature(self, data: Any, name: str) -> np.ndarray: ...
    def finetune(
        self, cfg: LoopConfig, champion: Any, targeted: Any, checkpoint: Any = None
    ) -> Any: ...
    def score(self, model: Any, data: MonitorSet) -> float | None: ...
    def estimate(self, model: Any, broad: MonitorSet, current: MonitorSet) -> float: ...
    def cannot_gate(self, current: MonitorSet) -> str | None: ...
    def save(self, model: Any, path: Path) -> None: ...
    def load(self, path: Path) -> Any: ...


def kind_of(model: Any, cfg: LoopConfig) -> ModelKind:
    """The kind for a loaded model: a synthcv detector, else a classifier. Settings the kind
    cannot honour are refused here, as soon as the champion is loaded, not after the monitor
    and the targeted renders."""
    from synthcv.tasks.detector import DenseDetector

    if isinstance(model, DenseDetector):
        if cfg.finetune.distill:
            raise ValueError("finetune.distill: distillation is for classifiers; set it to 0")
        if cfg.finetune.recalibrate_bn:
            raise ValueError("finetune.recalibrate_bn: for classifiers only; set it to 0")
        if cfg.finetune.replay_focus:
            raise ValueError("finetune.replay_focus: for classifiers only; set it to 0")
        return Detection(cfg.gate.metric or "AP50")
    if cfg.gate.metric not in (None, "accuracy"):
        raise ValueError(f"gate.metric {cfg.gate.metric}: a classifier is gated on accuracy")
    return Classification()


#: ``finetune.distill`` when the config leaves it unset, per kind. Classifiers distil: on the
#: digits drift benchmark (docs/monitoring.md, 2026-12-01) it halved what the thinner-strokes
#: candidate forgot on the decision data and lost nothing elsewhere by the rule fixed
#: beforehand; detectors have no distillation loss.
DEFAULT_DISTILL = {"classifier": 1.0, "detector": 0.0}


#: ``finetune.epochs`` when the config leaves it unset, per kind. A classifier takes 4: on the
#: same benchmark twice the steps gained more on the drifted batches and lost nothing on the
#: decision data (docs/monitoring.md); a detector keeps 2 (not measured at 4, and its
#: fine-tune costs far more per epoch on a CPU).
DEFAULT_EPOCHS = {"classifier": 4, "detector": 2}


#: ``finetune.freeze_bn`` when the config leaves it unset, per kind. A classifier keeps its
#: BatchNorm statistics: on the same benchmark the fine-tunes lost less on the undrifted
#: decision digits and gained as much on the drifted batches (docs/drift_loop_benchmark.md,
#: "BatchNorm frozen by default"); a detector's stay free (not measured frozen;
#: ``freeze_bn: true`` does it).
DEFAULT_FREEZE_BN = {"classifier": True, "detector": False}


def distill_weight(cfg: LoopConfig, kind: ModelKind) -> float:
    """The distillation weight a fine-tune of ``kind`` uses under ``cfg``."""
    d = cfg.finetune.distill
    return DEFAULT_DISTILL[kind.name] if d is None else d


def epochs_for(cfg: LoopConfig, kind: ModelKind) -> int:
    """The epochs a fine-tune of ``kind`` runs under ``cfg``."""
    e = cfg.finetune.epochs
    return DEFAULT_EPOCHS[kind.name] if e is None else e


def freeze_bn_for(cfg: LoopConfig, kind: ModelKind) -> bool:
    """Whether a fine-tune of ``kind`` under ``cfg`` keeps BatchNorm in inference mode."""
    f = cfg.finetune.freeze_bn
    return DEFAULT_FREEZE_BN[kind.name] if f is None else f


def finetune_record(cfg: LoopConfig, kind: ModelKind) -> dict[str, Any]:
    """``cfg.finetune`` as the fine-tune ran it (the kind's defaults filled in), for lineage."""
    return {
        **cfg.finetune.model_dump(),
        "distill": distill_weight(cfg, kind),
        "epochs": epochs_for(cfg, kind),
        "freeze_bn": freeze_bn_for(cfg, kind),
    }


def load_bootstrap(ref: str) -> tuple[Any, str]:
    """``champion.bootstrap``: a classifier file (or run directory) or a detector checkpoint
    (``model.pt`` of an instance-task experiment, or its directory)."""
    from synthcv.tasks.classifier_io import load_classifier
    from synthcv.tasks.detector_io import load_checkpoint

    try:
        return load_classifier(ref)
    except (ValueError, FileNotFoundError) as exc:
        first = exc
    p = Path(ref)
    ckpt = p / "model.pt" if p.is_dir() else p
    try:
        return load_checkpoint(ckpt), f"detector checkpoint {ckpt}"
    except (ValueError, FileNotFoundError, OSError) as exc:
        if isinstance(first, FileNotFoundError):
            raise first from None
        raise ValueError(
            f"champion.bootstrap {ref}: not a classifier ({first}) nor a detector checkpoint "
            f"({exc})"
        ) from None


class Classification:
    name = "classifier"
    metric = "accuracy"

    def monitored(self, model: Any, describe: str) -> Any:
        return model

    def example(self, cfg: LoopConfig, model: Any) -> np.ndarray:
        """Two reference images as the model takes them: MLflow records the signature."""
        from synthcv.tasks.train import to_tensor

        images = load_monitor_source(cfg.reference, 2, 0, cfg.mnist).images
        return to_tensor(np.asarray(images), getattr(model, "in_channels", 1)).numpy()

    def load_rendered(
        self, path: Path, cfg: LoopConfig, augment: list[dict[str, Any]], seed: int = 0
    ) -> Any:
        from synthcv.tasks.data import MatchDomain, load_synthcv_dataset

        match = MatchDomain() if cfg.targeted.match_domain == "mnist" else None
        return load_synthcv_dataset(path, match, augment, augment_seed=seed, progress=False)

    def feature(self, data: Any, name: str) -> np.ndarray:
        from synthcv.monitor.features import image_features

        return image_features(data.images)[name]

    def finetune(
        self, cfg: LoopConfig, champion: Any, targeted: Any, checkpoint: Any = None
    ) -> Any:
        """A copy of the champion trained on replay + targeted batches (``cfg.finetune``);
        with ``distill`` > 0 the champion also teaches it what it knew (Learning without
        Forgetting). ``checkpoint`` (:class:`synthcv.tasks.loop.Checkpoint`) makes the
        fine-tune resumable."""
        from synthcv.tasks.compare import load_compare_source
        from synthcv.tasks.train import FitConfig, fit

        broad = load_compare_source(cfg.reference, None, 0, cfg.mnist)
        model = copy.deepcopy(champion)
        f = cfg.finetune
        focus = least_certain(champion, broad, f.focus_quantile) if f.replay_focus else None
        sources, ratios, steps = _replay_plan(cfg, broad, targeted, focus)
        fit_cfg = FitConfig(
            epochs=epochs_for(cfg, self),
            batch_size=f.batch_size,
            lr=f.lr,
            steps_per_epoch=steps,
            distill=distill_weight(cfg, self),
            distill_temperature=f.temperature,
            # the champion speaks for its training data (every replay source), not the drift
            distill_sources=tuple(range(len(sources) - 1)),
            freeze_batchnorm=freeze_bn_for(cfg, self),
        )
        teacher = champion if fit_cfg.distill > 0 else None
        fit(model, sources, ratios, fit_cfg, f.seed, teacher=teacher, checkpoint=checkpoint)
        model = interpolate_weights(champion, model, f.interpolate)
        if f.recalibrate_bn:
            from synthcv.tasks.train import recalibrate_batchnorm

            recalibrate_batchnorm(model, sources, ratios, f.batch_size, f.recalibrate_bn, f.seed)
        return model.eval()

    def score(self, model: Any, data: MonitorSet) -> float | None:
        """Accuracy on the labelled images (-1: unlabelled), None when none are."""
        from synthcv.tasks.data import ArraySet
        from synthcv.tasks.train import evaluate

        if data.labels is None or not data.same_size:
            return None
        sel = np.asarray(data.labels) >= 0
        if not sel.any():
            return None
        images, labels = np.asarray(data.images)[sel], np.asarray(data.labels)[sel]
        return float(evaluate(model, ArraySet(images, labels))["acc"])

    def estimate(self, model: Any, broad: MonitorSet, current: MonitorSet) -> float:
        """CBPE-style accuracy on an unlabelled batch, calibrated on the broad set's labels."""
        from synthcv.monitor.model_checks import estimated_accuracy, run_classifier

        sel = np.asarray(broad.labels) >= 0
        ref = run_classifier(model, np.asarray(broad.images)[sel])
        now = run_classifier(model, current.images)
        correct = ref.predicted == np.asarray(broad.labels)[sel]
        return estimated_accuracy(ref.confidence, correct, now.confidence)

    def cannot_gate(self, current: MonitorSet) -> str | None:
        return None  # without labels the gate estimates accuracy

    def save(self, model: Any, path: Path) -> None:
        from synthcv.tasks.classifier_io import save_classifier
        from synthcv.tasks.model import SmallCNN

        if isinstance(model, SmallCNN):  # other classifiers are re-trained on resume
            save_classifier(model, path)

    def load(self, path: Path) -> Any:
        from synthcv.tasks.classifier_io import load_classifier

        return load_classifier(str(path))[0]


class Detection:
    """A synthcv detector (:class:`DenseDetector`): data as :class:`InstanceSet`, the gate on
    COCO box AP50 (``gate.metric``: AP50 or AP)."""

    name = "detector"

    def __init__(self, metric: str = "AP50") -> None:
        if metric not in ("AP50", "AP"):
            raise ValueError(f"gate.metric {metric}: a detector is gated on AP50 or AP")
        self.metric = metric

    def monitored(self, model: Any, describe: str) -> Any:
        from synthcv.tasks.audit import from_detector

        return from_detector(model.eval(), describe)

    def example(self, cfg: LoopConfig, model: Any) -> None:
        return None  # its forward returns a dict of maps: MLflow infers no signature from it

    def load_rendered(
        self, path: Path, cfg: LoopConfig, augment: list[dict[str, Any]], seed: int = 0
    ) -> Any:
        """A rendered set as the detector's training data, ``augment`` ops applied to the
        pixels (seeded per image, so a resumed pass sees the same images)."""
        from dataclasses import replace

        from synthcv.augment.ops import build_pipeline
        from synthcv.tasks.coco_data import load_synthcv

        data = load_synthcv(path)
        if not augment:
            return data
        pipeline = build_pipeline(augment)
        images = []
        for i, (im, ident) in enumerate(zip(data.images, data.image_ids, strict=True)):
            sample = {"rgb": im, "instance": None, "depth": None, "objects": None}
            sample["classes"] = data.categories
            images.append(pipeline(sample, np.random.default_rng([seed, int(ident), i]))[0])
        return replace(data, images=images, digest=f"{data.digest}+{augment}")

    def feature(self, data: Any, name: str) -> np.ndarray:
        """An image feature, or an object feature (``object_size``...) from the labels."""
        from synthcv.monitor.features import image_features
        from synthcv.monitor.sources import OBJECT_FEATURES, object_features

        if name in OBJECT_FEATURES:
            sizes = [im.shape[:2] for im in data.images]
            return object_features([t.boxes for t in data.targets], sizes).get(name, np.zeros(0))
        return image_features(data.images)[name]

    def finetune(
        self, cfg: LoopConfig, champion: Any, targeted: Any, checkpoint: Any = None
    ) -> Any:
        """A copy of the champion trained on replay (the reference set) + the targeted set,
        with the photometric jitter an instance experiment trains with; resumable with
        ``checkpoint``."""
        from synthcv.tasks.detector_train import DetFitConfig, fit

        f = cfg.finetune
        if f.replay_focus:  # kind_of refuses it first; a direct call is refused too
            raise ValueError("finetune.replay_focus: for classifiers only; set it to 0")
        reference = _aligned(load_monitor_source(cfg.reference, None, 0, cfg.mnist), champion)
        targeted = _aligned(targeted, champion)
        model = copy.deepcopy(champion).train()
        sources, ratios, steps = _replay_plan(cfg, reference, targeted)
        fit_cfg = DetFitConfig(
            epochs=epochs_for(cfg, self),
            batch_size=f.batch_size,
            lr=f.lr,
            steps_per_epoch=steps,
            freeze_batchnorm=freeze_bn_for(cfg, self),
        )
        fit(model, sources, ratios, fit_cfg, f.seed, checkpoint=checkpoint)
        return interpolate_weights(champion, model, f.interpolate).eval()

    def score(self, model: Any, data: MonitorSet) -> float | None:
        """COCO box AP50 (or AP: ``self.metric``) on a set with labelled objects; None when it
        has none (a batch of bare images)."""
        from synthcv.tasks.detector_train import evaluate

        try:
            instances = data.instances()
        except ValueError:
            return None
        if not sum(len(t) for t in instances.targets):
            return None
        return float(evaluate(model, _aligned(instances, model))[f"bbox.{self.metric}"])

    def estimate(self, model: Any, broad: MonitorSet, current: MonitorSet) -> float:
        raise ValueError(self.cannot_gate(current) or f"{current.name}: has labels")

    def cannot_gate(self, current: MonitorSet) -> str | None:
        """Why a batch cannot gate a detector: it has no labelled objects. Precision, the one
        figure a detector's scores estimate without labels, rises by detecting less, so it
        cannot decide a promotion."""
        try:
            labelled = sum(len(t) for t in current.instances().targets)
        except ValueError:
            labelled = 0
        if labelled:
            return None
        return (
            f"{current.name} has no labelled objects: a detector's gate measures AP on the "
            "batch (label a sample of it as COCO), since precision, the one figure its scores "
            "estimate without labels, rises by detecting less"
        )

    def save(self, model: Any, path: Path) -> None:
        from synthcv.tasks.detector_io import save_checkpoint

        save_checkpoint(model, path)

    def load(self, path: Path) -> Any:
        from synthcv.tasks.detector_io import load_checkpoint

        return load_checkpoint(path)


def interpolate_weights(champion: Any, finetuned: Any, share: float) -> Any:
    """WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", 2022): ``finetuned``
    with every float weight and buffer moved to ``share`` × its value + (1 − share) × the
    champion's, in place. The paper finds such a blend keeps most of what the fine-tune gained
    on the new data while losing less of what the champion knew than the fine-tuned end does.
    BatchNorm statistics are interpolated like the weights; counters keep the fine-tuned
    values. ``share`` 1 returns it untouched."""
    if share >= 1.0:
        return finetuned
    import torch

    old = champion.state_dict()
    mixed = {
        k: torch.lerp(old[k].to(v.dtype), v, share) if v.is_floating_point() else v
        for k, v in finetuned.state_dict().items()
    }
    finetuned.load_state_dict(mixed)
    return finetuned


def least_certain(model: Any, data: Any, quantile: float) -> Any:
    """The share ``quantile`` of a labelled :class:`ArraySet` that ``model`` holds with the
    smallest margin p(true) − max p(other), in their original order: the training images
    nearest its decision boundary, the ones a fine-tune moves first."""
    from synthcv.monitor.model_checks import run_classifier

    probs = run_classifier(model, data.images).probs
    rows = np.arange(len(data))
    true = probs[rows, data.labels]
    probs[rows, data.labels] = -np.inf
    margin = true - probs.max(axis=1)
    keep = max(1, round(quantile * len(data)))
    return data.take(np.sort(np.argsort(margin, kind="stable")[:keep]))


def _replay_plan(
    cfg: LoopConfig, reference: Any, targeted: Any, focus: Any = None
) -> tuple[list[Any], list[float] | None, int]:
    """(sources, their shares of each batch, steps per epoch): ``replay`` of every batch from
    the champion's training data, the rest targeted, the targeted set always last; with
    ``focus`` (:func:`least_certain` images) ``replay_focus`` of the replay comes from it. By
    default an epoch is as many steps as it takes to show each targeted sample once."""
    f = cfg.finetune
    if f.replay == 0:
        sources, ratios = [targeted], None
    elif focus is not None:
        sources = [reference, focus, targeted]
        share = f.replay * f.replay_focus
        ratios = [f.replay - share, share, 1 - f.replay]
    else:
        sources, ratios = [reference, targeted], [f.replay, 1 - f.replay]
    per_batch = max(1, round(f.batch_size * (1 - f.replay)))
    return sources, ratios, f.steps_per_epoch or max(1, len(targeted) // per_batch)


def _aligned(data: Any, model: Any) -> Any:
    """``data`` (an InstanceSet, or a MonitorSet holding one) in the model's class indexes."""
    if isinstance(data, MonitorSet):
        data = data.instances()
    return data.aligned_to(model.categories)
