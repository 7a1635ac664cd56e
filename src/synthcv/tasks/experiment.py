"""Recipes as config: one YAML file → a tracked, repeated-over-seeds experiment.

Recipes (``recipe:``):

- ``train``: train on ``train.sources`` (name → share of each batch; one source = real-only or
  synthetic-only, several = a mixture at that ratio), evaluate on ``eval``.
- ``finetune``: ``train`` is the pre-training stage, then ``finetune`` adapts the model; every
  ``eval`` set is measured each fine-tune epoch, and the drop on ``reference`` is the
  forgetting curve. With ``finetune.replay: {source, share}`` the same pre-trained model is
  also fine-tuned with that share of every batch replayed from the broad source, and both
  curves are reported.
- ``learning_curve``: the ``train`` recipe once per ``learning_curve.sizes`` of
  ``learning_curve.source`` (class-balanced subsets).

Every number is repeated over ``seeds`` and reported as mean with a 95% t-interval; slices of
the final model over a synthcv dataset's factors are optional (``slices:``).
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthcv.fileio import write_text_atomic
from synthcv.safeyaml import YAMLProblem, load_yaml_file
from synthcv.tasks.data import ArraySet, SourceSpec
from synthcv.tasks.stats import fmt_ci, mean_ci
from synthcv.validation import ConfigError, FieldProblem, format_validation_error, short_value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplaySpec(_Strict):
    source: str
    share: float = Field(0.8, gt=0, lt=1)


class JitterSpec(_Strict):
    shift: float = Field(2.0, ge=0)
    rotate: float = Field(10.0, ge=0)
    scale: float = Field(0.1, ge=0, lt=1)
    shear: float = Field(0.0, ge=0, lt=60)
    elastic: float = Field(0.0, ge=0)
    elastic_sigma: float = Field(3.0, gt=0)
    #: classification: ink thickened or thinned per image, a blend toward the 3x3 grey
    #: dilation or erosion weighted uniformly in [-thickness, thickness]; 0 = off
    thickness: float = Field(0.0, ge=0, le=1)


class PhotometricSpec(_Strict):
    """Per-image appearance jitter for instance tasks (see detector_train.Photometric)."""

    brightness: float = Field(0.2, ge=0, le=1)
    contrast: float = Field(0.3, ge=0, lt=1)
    gamma: float = Field(0.3, ge=0, le=2)
    noise: float = Field(0.03, ge=0, le=1)
    blur: float = Field(1.0, ge=0, le=10)
    grayscale: float = Field(0.0, ge=0, le=1)


class AdaptBatchNormSpec(_Strict):
    """Unlabelled images of another domain re-estimate BatchNorm after a stage (AdaBN)."""

    source: str  # a data source; its labels are not used
    batches: int = Field(100, ge=1)  # of the stage's batch size, drawn with replacement


class StageSpec(_Strict):
    sources: dict[str, float]
    epochs: int = Field(5, ge=0)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    steps_per_epoch: int | None = Field(None, ge=1)
    jitter: bool | JitterSpec = True  # classification: on unless false; instances: off unless set
    flip: float = Field(0.0, ge=0, le=1)  # instance tasks: left-right mirror probability
    photometric: bool | PhotometricSpec = True  # instance tasks
    replay: ReplaySpec | None = None
    #: BatchNorm layers in inference mode through the stage: the statistics the model came
    #: with (a pre-training stage's) normalise every batch and are kept, while every weight
    #: learns; the usual way to fine-tune a pre-trained network on a small or shifted set
    freeze_bn: bool = False
    #: classification: cross-entropy against targets smoothed toward uniform (Szegedy et al.
    #: 2016), so a model trained on one domain is less sure of cues another may lack
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    #: classification: after the stage, BatchNorm's running statistics are re-measured on a
    #: source's images without their labels (AdaBN, Li et al. 2016), e.g. unlabelled real
    #: images for a model trained on synthetic ones; every weight stays as trained
    adapt_bn: AdaptBatchNormSpec | None = None


class ModelSpec(_Strict):
    width: int = Field(32, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    channels: Literal[1, 3] = 1  # instance tasks: 3 unless set
    input_size: int = Field(128, ge=16, le=1024)  # instance tasks: letterboxed square side


class EvaluationSpec(_Strict):
    """How instance-task predictions are decoded before COCOeval."""

    score_threshold: float = Field(0.05, ge=0, lt=1)
    nms: Literal["none", "hard", "soft"] = "none"
    topk: int = Field(100, ge=1, le=1000)
    kpt_sigmas: list[float] | None = None


TaskName = Literal[
    "classification", "detection", "instance_segmentation", "semantic_segmentation", "keypoints"
]


class CurveSpec(_Strict):
    source: str
    sizes: list[int]


class SliceSpec(_Strict):
    source: str
    factors: list[str] | None = None
    bins: int = Field(5, ge=1)
    binning: Literal["quantile", "uniform"] = "quantile"


class ExperimentConfig(_Strict):
    name: str
    tasks: list[TaskName] = Field(default_factory=lambda: ["classification"], min_length=1)
    recipe: Literal["train", "finetune", "learning_curve"] = "train"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    data: dict[str, SourceSpec]
    train: StageSpec
    finetune: StageSpec | None = None
    eval: list[str] = Field(min_length=1)
    reference: str | None = None
    learning_curve: CurveSpec | None = None
    slices: SliceSpec | None = None
    model: ModelSpec = ModelSpec()
    num_classes: int | None = None
    categories: list[str] | None = None  # instance tasks: the model's classes, in order
    evaluation: EvaluationSpec = EvaluationSpec()
    log_model: bool = True
    threads: int | None = None

    @property
    def instance_tasks(self) -> bool:
        return self.tasks != ["classification"]

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = set(self.data)
        self._check_tasks()
        self._check_parts()

        def need(where: str, name: str) -> None:
            if name not in names:
                raise FieldProblem(where, f"unknown source {name!r}; data has {sorted(names)}")

        for s in self.train.sources:
            need("train.sources", s)
        for where, st in (("train", self.train), ("finetune", self.finetune)):
            if st is not None and st.adapt_bn is not None:
                need(f"{where}.adapt_bn.source", st.adapt_bn.source)
        for s in self.eval:
            need("eval", s)
        if self.recipe == "finetune":
            if self.finetune is None:
                raise FieldProblem("finetune", "recipe 'finetune' needs a 'finetune' stage")
            for s in self.finetune.sources:
                need("finetune.sources", s)
            if self.finetune.replay:
                need("finetune.replay.source", self.finetune.replay.source)
            if self.reference is None:
                raise FieldProblem(
                    "reference", "recipe 'finetune' needs 'reference' (the broad eval set)"
                )
        if self.reference is not None and self.reference not in self.eval:
            raise FieldProblem(
                "reference", f"got {self.reference!r}, expected one of eval {self.eval}"
            )
        if self.recipe == "learning_curve":
            if self.learning_curve is None:
                raise FieldProblem(
                    "learning_curve",
                    "recipe 'learning_curve' needs 'learning_curve: {source, sizes}'",
                )
            need("learning_curve.source", self.learning_curve.source)
        if self.slices is not None:
            need("slices.source", self.slices.source)
        return self

    def _check_parts(self) -> None:
        """The train and val parts of one source must be cut at the same fraction, else they
        overlap and the validation figure is measured on training images."""
        cuts: dict[str, tuple[str, float]] = {}
        for name, src in self.data.items():
            if src.part is None:
                continue
            key = src.model_dump_json(exclude={"part", "val_fraction", "n", "classes"})
            if key in cuts and cuts[key][1] != src.val_fraction:
                other, fraction = cuts[key]
                raise FieldProblem(
                    f"data.{name}.val_fraction",
                    f"got {src.val_fraction}, but data.{other} cuts the same source at "
                    f"{fraction}; parts cut differently overlap",
                )
            cuts.setdefault(key, (name, src.val_fraction))

    def _check_tasks(self) -> None:
        if "classification" in self.tasks and len(self.tasks) > 1:
            raise FieldProblem(
                "tasks", "classification trains its own model; list it alone or not at all"
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise FieldProblem("tasks", f"got {self.tasks}, expected each task once")
        stages = [("train", self.train), ("finetune", self.finetune)]
        if not self.instance_tasks:
            for where, st in stages:
                if st is not None and "photometric" in st.model_fields_set:
                    raise FieldProblem(
                        f"{where}.photometric", "is for instance tasks; classification has jitter"
                    )
                if st is not None and st.flip:
                    raise FieldProblem(
                        f"{where}.flip", "is for instance tasks (a mirrored digit is no digit)"
                    )
            for name, src in self.data.items():
                for field in ("images", "annotations", "label_map"):
                    if getattr(src, field) is not None:
                        raise FieldProblem(f"data.{name}.{field}", "is for instance tasks")
            return
        if self.model.input_size % 16:
            raise FieldProblem(
                "model.input_size", f"got {self.model.input_size}, expected a multiple of 16"
            )
        for where, st in stages:
            if st is None:
                continue
            if st.label_smoothing:
                raise FieldProblem(
                    f"{where}.label_smoothing", "is for classification (a class cross-entropy)"
                )
            if st.adapt_bn is not None:
                raise FieldProblem(f"{where}.adapt_bn", "is for classification")
            if isinstance(st.jitter, JitterSpec) and st.jitter.thickness:
                raise FieldProblem(
                    f"{where}.jitter.thickness",
                    "is for classification: instance masks would not follow the ink",
                )
        if "channels" not in self.model.model_fields_set:
            self.model = self.model.model_copy(update={"channels": 3})  # photos are colour
        for name, src in self.data.items():
            where = f"data.{name}"
            if src.kind in ("mnist", "samples"):
                raise FieldProblem(
                    f"{where}.kind",
                    f"got {src.kind!r}, expected 'coco' or 'dataset' (sources with boxes)",
                )
            if src.kind == "coco" and src.annotations is None:
                raise FieldProblem(where, "kind 'coco' needs annotations (a COCO JSON file)")
            if src.kind == "dataset" and not src.path:
                raise FieldProblem(f"{where}.path", "kind 'dataset' needs a path")
            if src.classes is not None:
                raise FieldProblem(
                    f"{where}.classes", "is for classification; use label_map to drop classes"
                )


def load_config(source: str | Path | dict[str, Any]) -> ExperimentConfig:
    """Validate a config from a YAML path or dict.

    Raises :class:`~synthcv.validation.ConfigError` listing every problem as
    ``field.path: got X, expected Y`` (the dataset spec's style).
    """
    where = "config"
    if isinstance(source, str | Path):
        where = str(source)
        p = Path(source)
        if not p.is_file():
            raise FileNotFoundError(f"experiment config not found: {p}")
        # Data paths stay relative to the working directory (where `synthcv generate` wrote).
        try:
            raw = load_yaml_file(p)
        except YAMLProblem as exc:
            raise ConfigError([str(exc)], where) from None
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {exc}"], where) from None
    else:
        raw = copy.deepcopy(source)
    return validate_config(raw, where)


def validate_config(raw: Any, where: str = "config") -> ExperimentConfig:
    """:class:`ExperimentConfig` from plain data; ``where`` labels the error's source."""
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): got {short_value(raw)}, expected a mapping"], where)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, ExperimentConfig), where) from None


def with_overrides(
    cfg: ExperimentConfig, *, seeds: list[int] | None = None, epochs: int | None = None
) -> ExperimentConfig:
    """``cfg`` with other ``seeds`` and/or every stage's ``epochs`` (quick runs), validated like
    the config itself (so ``epochs=-1`` is a :class:`~synthcv.validation.ConfigError`)."""
    data = cfg.model_dump(exclude_unset=True)  # unset stays unset: checks see what was written
    if seeds is not None:
        data["seeds"] = seeds
    if epochs is not None:
        for stage in ("train", "finetune"):
            if data.get(stage) is not None:
                data[stage]["epochs"] = epochs
    return validate_config(data, "overrides")


class Runner:
    """Runs one config; caches each source's full load so seeds only re-draw subsets.

    What is task-specific (loading, model, training, metrics, plots) lives in a task kind
    (:mod:`synthcv.tasks.task_kinds`); the recipes here are the same for every task.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        out: Path,
        progress: bool = True,
        cache: dict[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        from synthcv.tasks.task_kinds import Classification, InstanceTasks

        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        #: what every stage checkpoint under ``out/checkpoints`` must carry (None: none written)
        self.fingerprint = fingerprint
        #: the stages (by metric prefix) that started from a saved checkpoint
        self.resumed: list[str] = []
        # Full loads keyed by what determines them (not by name), shareable across configs.
        self._cache: dict[str, Any] = {} if cache is None else cache
        self._full: dict[str, Any] = {}
        self._num_classes: int | None = None
        self.kind: Any = (
            InstanceTasks(cfg) if cfg.instance_tasks else Classification(cfg, self.num_classes)
        )

    def source(self, name: str, seed: int, n: int | None = None) -> Any:
        spec = self.cfg.data[name]
        if name not in self._full:
            key = spec.model_dump_json(exclude={"n", "classes"})
            if self.cfg.instance_tasks:
                key = f"instances:{self.cfg.categories}:{key}"
            if key not in self._cache:
                self._cache[key] = self.kind.load_full(spec, name)
            self._full[name] = replace(self._cache[key], name=name)
        if n is not None:
            spec = spec.model_copy(update={"n": n})
        return self.kind.select(self._full[name], spec, seed)

    def used_sources(self) -> set[str]:
        cfg = self.cfg
        used = set(cfg.eval) | set(cfg.train.sources)
        if cfg.finetune:
            used |= set(cfg.finetune.sources)
            if cfg.finetune.replay:
                used.add(cfg.finetune.replay.source)
        for st in (cfg.train, cfg.finetune):
            if st is not None and st.adapt_bn is not None:
                used.add(st.adapt_bn.source)
        if cfg.slices:
            used.add(cfg.slices.source)
        return used

    def num_classes(self) -> int:
        """``num_classes`` from the config, else 1 + the largest label any used source holds."""
        if self.cfg.num_classes:
            return self.cfg.num_classes
        if self._num_classes is None:
            used = set(self.cfg.eval) | set(self.cfg.train.sources)
            if self.cfg.finetune is not None:
                used |= set(self.cfg.finetune.sources)
            self._num_classes = 1 + max(int(self.source(n, 0).labels.max()) for n in used)
        return self._num_classes

    def _model(self, seed: int) -> Any:
        return self.kind.build_model(
            seed, [self.source(n, seed) for n in sorted(self.used_sources())]
        )

    def _stage(
        self,
        model: Any,
        st: StageSpec,
        seed: int,
        evals: dict[str, Any],
        log: Any,
        prefix: str,
        sizes: dict[str, int] | None = None,
    ) -> list[dict]:
        names = list(st.sources)
        srcs = [self.source(n, seed, (sizes or {}).get(n)) for n in names]
        ratios = [st.sources[n] for n in names]

        def on_epoch(epoch: int, m: dict[str, float]) -> None:
            log.log_metrics({f"{prefix}{k}": v for k, v in m.items()}, step=epoch)

        ckpt = self._checkpoint(prefix)
        if ckpt is not None and ckpt.path.is_file():
            self.resumed.append(prefix)
        history = self.kind.fit(
            model, srcs, ratios, st, seed, evals, on_epoch, self.progress, checkpoint=ckpt
        )
        if st.adapt_bn is not None:  # after the checkpointed stage, so a resume repeats it
            from synthcv.tasks.train import recalibrate_batchnorm

            unlabelled = self.source(st.adapt_bn.source, seed)
            recalibrate_batchnorm(
                model, [unlabelled], None, st.batch_size, st.adapt_bn.batches, seed
            )
        return history

    def _checkpoint(self, prefix: str) -> Any:
        """The stage named by its metric prefix (``s0/``, ``s1/pretrain/``, ``n100/s0/``) keeps
        its state in ``checkpoints/s1-pretrain.pt``."""
        from synthcv.fileio import sha256_text
        from synthcv.tasks.loop import Checkpoint

        if self.fingerprint is None:
            return None
        stem = prefix.strip("/").replace("/", "-")
        path = self.out / CHECKPOINT_DIR / f"{stem}.pt"
        fingerprint = sha256_text(f"{self.fingerprint}|{prefix}")
        return Checkpoint(path, fingerprint, CHECKPOINT_INTERVAL_S)

    def _finals(self, model: Any, name: str, data: Any, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}{name}{suffix}": v
            for suffix, v in self.kind.final_metrics(model, data).items()
        }

    def run(self, log: Any) -> dict[str, Any]:
        import torch

        before = torch.get_num_threads()
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        try:
            return self._run(log)
        finally:
            torch.set_num_threads(before)

    def _run(self, log: Any) -> dict[str, Any]:
        from synthcv.tasks import plots

        cfg = self.cfg
        per_seed: dict[str, list[float]] = {}
        curves: dict[str, list[list[float]]] = {}
        first_model, first_evals = None, None
        for seed in cfg.seeds:
            evals = {n: self.source(n, seed) for n in cfg.eval}
            finals: dict[str, float] = {}
            if cfg.recipe == "learning_curve":
                assert cfg.learning_curve is not None
                for size in cfg.learning_curve.sizes:
                    model = self._model(seed)
                    self._stage(
                        model,
                        cfg.train,
                        seed,
                        {},
                        log,
                        f"n{size}/s{seed}/",
                        {cfg.learning_curve.source: size},
                    )
                    for n, ev in evals.items():
                        finals.update(self._finals(model, n, ev, f"n{size}/"))
            else:
                model = self._model(seed)
                self._stage(
                    model,
                    cfg.train,
                    seed,
                    evals,
                    log,
                    f"s{seed}/pretrain/" if cfg.recipe == "finetune" else f"s{seed}/",
                )
                if cfg.recipe == "finetune":
                    finals.update(self._finetune(model, seed, evals, log, curves))
                else:
                    for n, ev in evals.items():
                        finals.update(self._finals(model, n, ev))
            for k, v in finals.items():
                per_seed.setdefault(k, []).append(v)
            if first_model is None:
                first_model, first_evals = model, evals
        summary = {k: mean_ci(v) for k, v in per_seed.items()}
        result: dict[str, Any] = {
            "name": cfg.name,
            "tasks": list(cfg.tasks),
            "recipe": cfg.recipe,
            "seeds": cfg.seeds,
            "per_seed": per_seed,
            "summary": summary,
        }
        log.log_metrics({f"{k}.{s}": summary[k][s] for k in summary for s in ("mean", "lo", "hi")})
        self.out.mkdir(parents=True, exist_ok=True)
        arts: list[Path] = []
        if cfg.recipe == "learning_curve":
            assert cfg.learning_curve is not None
            sizes = cfg.learning_curve.sizes
            suffix = "" if not cfg.instance_tasks else f"/{self.kind.primary}"
            series = {n: [summary[f"n{s}/{n}{suffix}"] for s in sizes] for n in cfg.eval}
            arts.append(plots.learning_curve(sizes, series, self.out / "learning_curve.png"))
        if curves:
            mean_curves = {k: list(np.mean(np.array(v), axis=0)) for k, v in curves.items()}
            result["forgetting_curves"] = mean_curves
            arts.append(
                plots.forgetting_curve(
                    mean_curves, self.out / "forgetting_curve.png", str(cfg.reference)
                )
            )
        assert first_model is not None and first_evals is not None
        arts.extend(self.kind.artifacts(first_model, first_evals, self.out))
        if cfg.slices is not None:
            rows = self._slices(first_model)
            result["slices"] = rows
            log.log_table(rows, "slices")
            arts.append(plots.slice_bars(rows, self.out / "slices.png"))
        table = summary_markdown(summary)
        result["table"] = table
        write_text_atomic(self.out / "results.json", json.dumps(result, indent=2, default=float))
        write_text_atomic(self.out / "summary.md", table + "\n")
        for p in [*arts, self.out / "results.json", self.out / "summary.md"]:
            log.log_artifact(p)
        if cfg.log_model:
            kwargs = self.kind.log_model_kwargs(first_evals[cfg.eval[0]], first_model)
            log.log_model(first_model.eval(), name="model", **kwargs)
        return result

    def _finetune(
        self,
        model: Any,
        seed: int,
        evals: dict[str, Any],
        log: Any,
        curves: dict[str, list[list[float]]],
    ) -> dict[str, float]:
        cfg = self.cfg
        assert cfg.finetune is not None and cfg.reference is not None
        variants = {"finetune": cfg.finetune.model_copy(update={"replay": None})}
        if cfg.finetune.replay is not None:
            rp = cfg.finetune.replay
            mixed = {k: v * (1 - rp.share) for k, v in cfg.finetune.sources.items()}
            mixed[rp.source] = mixed.get(rp.source, 0.0) + rp.share
            variants["finetune_replay"] = cfg.finetune.model_copy(
                update={"sources": mixed, "replay": None}
            )
        pre = copy.deepcopy(model.state_dict())
        primary = self.kind.primary
        finals: dict[str, float] = {}
        for vname, st in variants.items():
            model.load_state_dict(pre)
            hist = self._stage(model, st, seed, evals, log, f"s{seed}/{vname}/")
            ref = [h[f"{cfg.reference}.{primary}"] for h in hist]
            curves.setdefault(vname, []).append(ref)
            finals[f"{vname}/forgetting.max_drop"] = ref[0] - min(ref)
            finals[f"{vname}/forgetting.final_drop"] = ref[0] - ref[-1]
            finals[f"pretrain/{cfg.reference}"] = ref[0]
            for n, ev in evals.items():
                finals.update(self._finals(model, n, ev, f"{vname}/"))
        return finals

    def _slices(self, model: Any) -> list[dict[str, Any]]:
        sc = self.cfg.slices
        assert sc is not None
        data = self.source(sc.source, self.cfg.seeds[0])
        if not data.factors and not self.cfg.instance_tasks:
            raise ValueError(f"slices.source {sc.source!r} records no factors to slice by")
        return self.kind.slices(model, data, sc)


def summary_markdown(summary: dict[str, dict[str, float]]) -> str:
    """Every metric in percent (accuracy, AP, mIoU alike, as papers report them)."""
    lines = ["| metric | mean ± 95% (%) | seeds |", "|---|---|---|"]
    for k, s in summary.items():
        lines.append(f"| {k} | {fmt_ci(s)} | {s['n']} |")
    return "\n".join(lines)


def split_digest(data: Any) -> str:
    """Content hash of exactly the examples a source holds after its ``split``/``part`` cut
    (before the per-seed ``n`` draw): the arrays themselves for classification sets, the source
    file's hash and the chosen image ids for instance sets. ``real_train`` and ``real_test``
    come from one file but differ here."""
    from synthcv.fileio import sha256_chunks

    if isinstance(data, ArraySet):
        head = f"{data.images.dtype}{data.images.shape}|{data.labels.dtype}{data.labels.shape}"
        images = np.ascontiguousarray(data.images)
        return sha256_chunks([head.encode(), images.tobytes(), data.labels.tobytes()])
    ids = np.asarray(data.image_ids, dtype=np.int64)
    return sha256_chunks([str(data.digest).encode(), ids.tobytes()])


def _source_path(spec: SourceSpec) -> str | None:
    """The file or directory a source was read from (None: no file of ours)."""
    if spec.kind == "mnist":
        from synthcv.realdata import find_mnist8000

        return str(find_mnist8000(spec.path).resolve())
    path = spec.annotations if spec.kind == "coco" and spec.annotations else spec.path
    return str(Path(path).resolve()) if path else None


def input_records(runner: Runner) -> dict[str, Any]:
    """Every loaded source as a :class:`synthcv.tracking.DatasetRecord`: the digest of exactly
    its split (a source read whole: its file's or dataset's hash, the key its producer
    logged), the path it came from, its arrays' schema and a profile (rows, split, part)."""
    from synthcv.tracking import DatasetRecord

    records = {}
    for name, data in runner._full.items():
        spec = runner.cfg.data[name]
        profile: dict[str, Any] = {"rows": len(data), "kind": spec.kind, "file_digest": data.digest}
        if spec.kind == "mnist":
            profile["split"] = spec.split
        if spec.part is not None:
            profile["part"] = spec.part
        schema = None
        if isinstance(data, ArraySet):
            schema = {
                "tensors": {
                    "images": {
                        "dtype": str(data.images.dtype),
                        "shape": [-1, *data.images.shape[1:]],
                    },
                    "labels": {"dtype": str(data.labels.dtype), "shape": [-1]},
                }
            }
        # A source read whole keeps its file's hash: the lineage key its producer logged.
        cut = spec.part is not None or (spec.kind == "mnist" and spec.split != "all")
        digest = split_digest(data) if cut else data.digest
        records[name] = DatasetRecord(name, digest, _source_path(spec), schema, profile)
    return records


#: under an experiment's output directory: one resumable state file per training stage
CHECKPOINT_DIR = "checkpoints"
#: a stage saves at every epoch's end and, within an epoch, at most this often
CHECKPOINT_INTERVAL_S = 60.0
#: what a config may change and still resume: these fields do not touch any stage's training
#: (seeds are per stage: a seed added to the list trains alone, the others are restored)
_NOT_FINGERPRINTED = {"name", "seeds", "slices", "log_model", "threads"}


def run_fingerprint(cfg: ExperimentConfig, records: dict[str, Any]) -> str:
    """What every stage checkpoint of this run must match: the config's training fields and
    the content hash of every input, so a changed recipe or changed data never resumes."""
    from synthcv.fileio import sha256_text

    fields = cfg.model_dump(mode="json", exclude=_NOT_FINGERPRINTED)
    for stage in ("train", "finetune"):  # added later: off keeps older runs resumable
        st = fields.get(stage)
        if not st:
            continue
        for key in ("freeze_bn", "label_smoothing", "adapt_bn"):
            if key in st and not st[key]:
                del st[key]
        jitter = st.get("jitter")
        if isinstance(jitter, dict) and jitter.get("thickness") == 0:
            del jitter["thickness"]
    inputs = {name: r.digest for name, r in sorted(records.items())}
    return sha256_text(json.dumps({"config": fields, "inputs": inputs}, sort_keys=True))


def _prepare_checkpoints(out_dir: Path, fingerprint: str, resume: bool) -> bool:
    """Keep ``out_dir/checkpoints`` when resuming a run of the same fingerprint, else clear it
    (a fresh run, or checkpoints of another config or other data); True when kept. Only our
    own files are ever deleted: a ``checkpoints`` folder without our marker is refused."""
    from synthcv.fileio import write_json_atomic

    ck = out_dir / CHECKPOINT_DIR
    marker = ck / "run.json"
    if ck.exists() and not marker.is_file() and any(ck.iterdir()):
        raise ValueError(
            f"{ck}: exists but holds no synthcv experiment checkpoints (no run.json); "
            "choose another --out"
        )
    keep = False
    if resume and marker.is_file():
        try:
            keep = json.loads(marker.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            keep = False
        if not keep:
            print(
                f"note: {ck} holds checkpoints of another config or other data; starting over",
                file=sys.stderr,
            )
    for half_written in ck.glob(".*.tmp"):  # a save cut by a kill (fileio.atomic_path)
        half_written.unlink()
    if not keep:
        for stale in ck.glob("*.pt"):
            stale.unlink()
    write_json_atomic(marker, {"fingerprint": fingerprint})
    return keep and any(ck.glob("*.pt"))


def run_experiment(
    config: str | Path | dict[str, Any] | ExperimentConfig,
    out: str | Path | None = None,
    tracking: bool | None = None,
    progress: bool = True,
    tracking_root: str | Path | None = None,
    cache: dict[str, ArraySet] | None = None,
    experiment: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Run a config end to end (tracked unless disabled) and return its results dict.

    Sources are loaded before the MLflow run opens so the run's lineage lists every input's
    content hash from the start. Every training stage saves its state under
    ``OUT/checkpoints/`` (:mod:`synthcv.tasks.loop`); with ``resume`` a run of the same
    config and data picks up where an interrupted one stopped, with the results an
    uninterrupted run would have given (``result["resumed"]`` lists the stages restored),
    and a new tracking run records everything again, tagged ``synthcv.resumed``. Without
    ``resume`` the checkpoints of an earlier run in ``out`` are cleared first.
    """
    from synthcv.tracking import track_experiment

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out_dir = Path(out) if out is not None else Path("experiments") / cfg.name
    runner = Runner(cfg, out_dir, progress, cache)
    for n in sorted(runner.used_sources()):
        runner.source(n, cfg.seeds[0])
    records = input_records(runner)
    runner.fingerprint = run_fingerprint(cfg, records)
    resuming = _prepare_checkpoints(out_dir, runner.fingerprint, resume)
    with track_experiment(
        cfg.name,
        cfg.recipe,
        cfg.model_dump(mode="json"),
        records,
        enabled=tracking,
        root=tracking_root,
        experiment=experiment,
    ) as log:
        if resuming:
            log.set_tags({"synthcv.resumed": "true"})
        result = runner.run(log)
        result["run_id"] = log.run_id
    result["resumed"] = runner.resumed
    return result
