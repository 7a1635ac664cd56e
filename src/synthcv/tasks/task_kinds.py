"""What differs between classification and the instance tasks, behind one interface, so every
recipe (real-only, synthetic-only, mixes, pre-train → fine-tune, learning curves, forgetting,
slices) runs unchanged for detection, segmentation and keypoints.

A task kind loads and subsets sources, builds a model, trains it, evaluates it into flat
metrics, names its *primary* metric (the one curves and forgetting follow), slices a model's
results by factor, and writes its plots and predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from synthcv.fileio import write_text_atomic
from synthcv.realdata import validation_part


class TaskKind(Protocol):
    primary: str

    def load_full(self, spec: Any, name: str) -> Any: ...
    def select(self, data: Any, spec: Any, seed: int) -> Any: ...
    def build_model(self, seed: int, sources: list[Any]) -> Any: ...
    def fit(
        self,
        model: Any,
        srcs: list[Any],
        ratios: list[float],
        stage: Any,
        seed: int,
        evals: dict[str, Any],
        on_epoch: Any,
        progress: bool,
        checkpoint: Any = None,
    ) -> list[dict]: ...
    def evaluate(self, model: Any, data: Any) -> dict[str, float]: ...
    def final_metrics(self, model: Any, data: Any) -> dict[str, float]: ...
    def slices(self, model: Any, data: Any, spec: Any) -> list[dict[str, Any]]: ...
    def artifacts(self, model: Any, evals: dict[str, Any], out: Path) -> list[Path]: ...
    def log_model_kwargs(self, data: Any, model: Any) -> dict[str, Any]: ...


def _options(value: Any, build: Any) -> Any:
    """A stage's ``true`` / ``false`` / ``{...}`` option as defaults, nothing, or those fields."""
    if isinstance(value, bool):
        return build() if value else None
    return build(**value.model_dump())


class Classification:
    """Digit classification: :mod:`synthcv.tasks.data`, :mod:`synthcv.tasks.train`."""

    primary = "acc"

    def __init__(self, cfg: Any, num_classes: Any) -> None:
        self.cfg = cfg
        self._num_classes = num_classes

    def load_full(self, spec: Any, name: str) -> Any:
        from synthcv.tasks.data import load_full

        data = load_full(spec, name)
        if spec.part is not None:
            data = data.take(validation_part(len(data), spec.part, spec.val_fraction))
        return data

    def select(self, data: Any, spec: Any, seed: int) -> Any:
        from synthcv.tasks.data import select

        return select(data, spec, seed)

    def build_model(self, seed: int, sources: list[Any]) -> Any:
        import torch

        from synthcv.tasks.model import build_model

        torch.manual_seed(seed)
        m = self.cfg.model
        return build_model(self._num_classes(), m.channels, width=m.width, dropout=m.dropout)

    def fit(self, model, srcs, ratios, stage, seed, evals, on_epoch, progress, checkpoint=None):
        from synthcv.tasks.train import FitConfig, fit
        from synthcv.tasks.warps import Jitter

        cfg = FitConfig(
            epochs=stage.epochs,
            batch_size=stage.batch_size,
            lr=stage.lr,
            weight_decay=stage.weight_decay,
            steps_per_epoch=stage.steps_per_epoch,
            jitter=_options(stage.jitter, Jitter),
            freeze_batchnorm=stage.freeze_bn,
            label_smoothing=stage.label_smoothing,
        )
        return fit(model, srcs, ratios, cfg, seed, evals, on_epoch, progress, checkpoint=checkpoint)

    def evaluate(self, model: Any, data: Any) -> dict[str, float]:
        from synthcv.tasks.train import evaluate

        r = evaluate(model, data)
        return {"acc": r["acc"], "loss": r["loss"]}

    def final_metrics(self, model: Any, data: Any) -> dict[str, float]:
        return {"": self.evaluate(model, data)["acc"]}

    def slices(self, model: Any, data: Any, spec: Any) -> list[dict[str, Any]]:
        from synthcv.tasks.slices import slice_metrics
        from synthcv.tasks.train import evaluate

        correct = evaluate(model, data)["correct"]
        names = spec.factors or sorted(data.factors)
        return slice_metrics(correct, data.factors, names, spec.bins, spec.binning)

    def artifacts(self, model: Any, evals: dict[str, Any], out: Path) -> list[Path]:
        """The confusion matrix of the first eval set, and the checkpoint ``model.pt`` that
        ``synthcv monitor --model`` and ``synthcv loop``'s bootstrap read."""
        from synthcv.tasks import plots
        from synthcv.tasks.classifier_io import save_classifier
        from synthcv.tasks.train import evaluate

        name = self.cfg.eval[0]
        ev = evals[name]
        r = evaluate(model, ev)
        confusion = plots.confusion(
            r["pred"], ev.labels, self._num_classes(), out / "confusion.png"
        )
        return [confusion, save_classifier(model, out / "model.pt")]

    def log_model_kwargs(self, data: Any, model: Any) -> dict[str, Any]:
        """A 2-image float32 example (N, C, H, W) so MLflow records the served signature, and
        pickled, so ``mlflow.pytorch.load_model`` gives the SmallCNN back (its ``embed`` and
        ``in_channels`` too: what ``synthcv monitor --model runs:/...`` and ``synthcv loop``'s
        bootstrap need); MLflow's traced "pt2" format would keep only the graph."""
        from synthcv.tasks.train import to_tensor

        return {
            "input_example": to_tensor(data.images[:2], getattr(model, "in_channels", 1)).numpy(),
            "serialization_format": "pickle",
        }


class InstanceTasks:
    """Detection, instance and semantic segmentation, keypoints: :mod:`synthcv.tasks.detector`,
    scored with COCOeval (:mod:`synthcv.tasks.evaluation`)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.tasks = tuple(cfg.tasks)
        self.categories: list[str] | None = None
        self.keypoint_names: dict[str, list[str]] = {}
        self.primary = "bbox.AP" if set(self.tasks) - {"semantic_segmentation"} else "semantic.mIoU"

    def set_categories(self, sources: list[Any]) -> None:
        """The model's classes: ``categories`` from the config, else the union of every used
        source's category names in first-seen order (synthetic and real meet by name)."""
        if self.categories is not None:
            return
        if self.cfg.categories:
            self.categories = list(self.cfg.categories)
        else:
            seen: list[str] = []
            for s in sources:
                seen.extend(c for c in s.categories if c not in seen)
            self.categories = seen
        for s in sources:
            for c, names in s.keypoint_names.items():
                if names and c not in self.keypoint_names:
                    self.keypoint_names[c] = list(names)

    def load_full(self, spec: Any, name: str) -> Any:
        from synthcv.tasks.coco_data import load_coco, load_synthcv

        if spec.kind == "coco":
            images = spec.images or str(Path(spec.annotations).parent)  # synthcv's layout
            data = load_coco(
                images,
                spec.annotations,
                name=name,
                label_map=spec.label_map,
                categories=self.cfg.categories,
            )
        elif spec.kind == "dataset":
            data = load_synthcv(
                spec.path, name=name, label_map=spec.label_map, categories=self.cfg.categories
            )
        else:
            raise ValueError(
                f"source {name!r}: kind {spec.kind!r} has no boxes or masks; instance tasks "
                "read kind 'coco' or 'dataset'"
            )
        if spec.part is not None:
            data = data.take(validation_part(len(data), spec.part, spec.val_fraction))
        return data

    def select(self, data: Any, spec: Any, seed: int) -> Any:
        if spec.n is None:
            return data
        if spec.n > len(data):
            raise ValueError(f"source {data.name!r}: n={spec.n} but only {len(data)} images")
        idx = np.sort(np.random.default_rng(seed).choice(len(data), spec.n, replace=False))
        return data.take(idx)

    def _align(self, data: Any) -> Any:
        """``data`` with class indexes into the model's categories (by name)."""
        assert self.categories is not None
        return data.aligned_to(self.categories)

    def build_model(self, seed: int, sources: list[Any]) -> Any:
        import torch

        from synthcv.tasks.detector import DenseDetector

        self.set_categories(sources)
        assert self.categories is not None
        torch.manual_seed(seed)
        m = self.cfg.model
        k = max((len(self.keypoint_names.get(c, [])) for c in self.categories), default=0)
        if "keypoints" in self.tasks and k == 0:
            raise ValueError("tasks include keypoints but no source's categories have keypoints")
        return DenseDetector(
            len(self.categories),
            self.tasks,
            k,
            width=m.width,
            in_channels=m.channels,
            categories=self.categories,
            keypoint_names=self.keypoint_names,
            input_size=m.input_size,
        )

    def fit(self, model, srcs, ratios, stage, seed, evals, on_epoch, progress, checkpoint=None):
        from synthcv.tasks.detector_train import fit

        cfg = self.fit_config(stage)
        aligned = [self._align(s) for s in srcs]
        ev = {n: self._align(e) for n, e in evals.items()}
        return fit(model, aligned, ratios, cfg, seed, ev, on_epoch, progress, checkpoint=checkpoint)

    @staticmethod
    def fit_config(stage: Any) -> Any:
        """A stage's :class:`DetFitConfig`. Geometric warps are opt-in here (unlike for
        classification): a scene's layout already varies, and a warp resamples every mask."""
        from synthcv.tasks.detector_train import DetFitConfig, Photometric
        from synthcv.tasks.warps import Jitter

        jitter = stage.jitter if "jitter" in stage.model_fields_set else False
        return DetFitConfig(
            epochs=stage.epochs,
            batch_size=stage.batch_size,
            lr=stage.lr,
            weight_decay=stage.weight_decay,
            steps_per_epoch=stage.steps_per_epoch,
            photometric=_options(stage.photometric, Photometric),
            geometric=_options(jitter, Jitter),
            flip=stage.flip,
            freeze_batchnorm=stage.freeze_bn,
        )

    def _predict(self, model: Any, data: Any) -> list[Any]:
        from synthcv.tasks.detector_train import predict

        if not hasattr(model, "heatmap"):
            return []  # semantic segmentation alone: no objects to predict
        e = self.cfg.evaluation
        return predict(model, data, score_threshold=e.score_threshold, nms=e.nms, topk=e.topk)

    def evaluate(self, model: Any, data: Any, full: bool = False) -> dict[str, Any]:
        from synthcv.tasks.detector_train import evaluate

        data = self._align(data)
        return evaluate(
            model, data, self._predict(model, data), self.cfg.evaluation.kpt_sigmas, full=full
        )

    def final_metrics(self, model: Any, data: Any) -> dict[str, float]:
        r = self.evaluate(model, data)
        keep = ("AP", "AP50", "AP75", "mIoU")
        return {f"/{k}": v for k, v in r.items() if k.split(".")[-1] in keep}

    def slices(self, model: Any, data: Any, spec: Any) -> list[dict[str, Any]]:
        from synthcv.tasks.detector_train import semantic_maps_predicted
        from synthcv.tasks.evaluation import instance_slices, semantic_maps, semantic_slices

        data = self._align(data)
        try:
            if hasattr(model, "heatmap"):
                return instance_slices(
                    data, self._predict(model, data), spec.factors, spec.bins, spec.binning
                )
            return semantic_slices(  # semantic segmentation alone: mIoU by per-image factor
                semantic_maps(data),
                semantic_maps_predicted(model, data),
                model.num_classes + 1,
                data.factors,
                spec.factors,
                spec.bins,
                spec.binning,
            )
        except KeyError as exc:  # an unknown factor: the message lists the known ones
            raise ValueError(f"slices.factors: {exc.args[0]}") from None

    def artifacts(self, model: Any, evals: dict[str, Any], out: Path) -> list[Path]:
        """PR curves and COCO-results predictions of every eval set, and the checkpoint
        ``model.pt`` that ``synthcv audit`` reads."""
        from synthcv.tasks import plots
        from synthcv.tasks.detector_io import save_checkpoint
        from synthcv.tasks.evaluation import predictions_to_coco

        paths = [save_checkpoint(model, out / "model.pt")]
        for name, data in evals.items():
            r = self.evaluate(model, data, full=True)
            preds = r["predictions"]
            aligned = self._align(data)
            res = predictions_to_coco(preds, aligned.image_ids)
            p = out / f"predictions_{name}.json"
            write_text_atomic(p, json.dumps(res))
            paths.append(p)
            detail_path = out / f"metrics_{name}.json"  # per-class AP, PR curves, per-class IoU
            write_text_atomic(detail_path, json.dumps(_jsonable(r["detail"]), indent=1))
            paths.append(detail_path)
            for kind, detail in r["detail"].items():
                if kind in ("bbox", "segm", "keypoints"):
                    paths.append(plots.pr_curves(detail, out / f"pr_{kind}_{name}.png"))
        return paths

    def log_model_kwargs(self, data: Any, model: Any) -> dict[str, Any]:
        """Pickled, so ``mlflow.pytorch.load_model`` gives the detector back with its categories
        and input size (what ``synthcv audit runs:/...`` and fine-tuning need); MLflow's
        traced "pt2" format would keep only the graph."""
        return {"serialization_format": "pickle"}


def _jsonable(v: Any) -> Any:
    """Metric details as JSON: arrays become lists, NaN becomes null."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, float | np.floating):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v
