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
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthcv.fileio import write_text_atomic
from synthcv.tasks.data import ArraySet, SourceSpec, load_full, select
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


class StageSpec(_Strict):
    sources: dict[str, float]
    epochs: int = Field(5, ge=0)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    steps_per_epoch: int | None = Field(None, ge=1)
    jitter: bool | JitterSpec = True
    replay: ReplaySpec | None = None


class ModelSpec(_Strict):
    width: int = Field(32, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    channels: Literal[1, 3] = 1


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
    log_model: bool = True
    threads: int | None = None

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = set(self.data)

        def need(where: str, name: str) -> None:
            if name not in names:
                raise FieldProblem(where, f"unknown source {name!r}; data has {sorted(names)}")

        for s in self.train.sources:
            need("train.sources", s)
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
            raw = yaml.safe_load(p.read_text())
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
    data = cfg.model_dump()
    if seeds is not None:
        data["seeds"] = seeds
    if epochs is not None:
        for stage in ("train", "finetune"):
            if data.get(stage) is not None:
                data[stage]["epochs"] = epochs
    return validate_config(data, "overrides")


class Runner:
    """Runs one config; caches each source's full load so seeds only re-draw subsets."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        out: Path,
        progress: bool = True,
        cache: dict[str, ArraySet] | None = None,
    ) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        # Full loads keyed by what determines them (not by name), shareable across configs.
        self._cache: dict[str, ArraySet] = {} if cache is None else cache
        self._full: dict[str, ArraySet] = {}
        self._num_classes: int | None = None

    def source(self, name: str, seed: int, n: int | None = None) -> ArraySet:
        spec = self.cfg.data[name]
        if name not in self._full:
            key = spec.model_dump_json(exclude={"n", "classes"})
            if key not in self._cache:
                self._cache[key] = load_full(spec)
            self._full[name] = replace(self._cache[key], name=name)
        if n is not None:
            spec = spec.model_copy(update={"n": n})
        return select(self._full[name], spec, seed)

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
        import torch

        from synthcv.tasks.model import build_model

        torch.manual_seed(seed)
        m = self.cfg.model
        return build_model(self.num_classes(), m.channels, width=m.width, dropout=m.dropout)

    def _fit_cfg(self, st: StageSpec) -> Any:
        from synthcv.tasks.train import FitConfig, Jitter

        return FitConfig(
            epochs=st.epochs,
            batch_size=st.batch_size,
            lr=st.lr,
            weight_decay=st.weight_decay,
            steps_per_epoch=st.steps_per_epoch,
            jitter=(
                Jitter(**st.jitter.model_dump())
                if isinstance(st.jitter, JitterSpec)
                else (Jitter() if st.jitter else None)
            ),
        )

    def _stage(
        self,
        model: Any,
        st: StageSpec,
        seed: int,
        evals: dict[str, ArraySet],
        log: Any,
        prefix: str,
        sizes: dict[str, int] | None = None,
    ) -> list[dict]:
        from synthcv.tasks.train import fit

        names = list(st.sources)
        srcs = [self.source(n, seed, (sizes or {}).get(n)) for n in names]
        ratios = [st.sources[n] for n in names]

        def on_epoch(epoch: int, m: dict[str, float]) -> None:
            log.log_metrics({f"{prefix}{k}": v for k, v in m.items()}, step=epoch)

        return fit(model, srcs, ratios, self._fit_cfg(st), seed, evals, on_epoch, self.progress)

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
        from synthcv.tasks.train import evaluate

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
                        finals[f"n{size}/{n}"] = evaluate(model, ev)["acc"]
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
                        finals[n] = evaluate(model, ev)["acc"]
            for k, v in finals.items():
                per_seed.setdefault(k, []).append(v)
            if first_model is None:
                first_model, first_evals = model, evals
        summary = {k: mean_ci(v) for k, v in per_seed.items()}
        result: dict[str, Any] = {
            "name": cfg.name,
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
            series = {n: [summary[f"n{s}/{n}"] for s in sizes] for n in cfg.eval}
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
        ev0 = first_evals[cfg.eval[0]]
        r0 = evaluate(first_model, ev0)
        arts.append(
            plots.confusion(r0["pred"], ev0.labels, self.num_classes(), self.out / "confusion.png")
        )
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
            example = evaluate_example(ev0, first_model)
            log.log_model(first_model.eval(), name="model", input_example=example)
        return result

    def _finetune(
        self,
        model: Any,
        seed: int,
        evals: dict[str, ArraySet],
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
        finals: dict[str, float] = {}
        for vname, st in variants.items():
            model.load_state_dict(pre)
            hist = self._stage(model, st, seed, evals, log, f"s{seed}/{vname}/")
            ref = [h[f"{cfg.reference}.acc"] for h in hist]
            curves.setdefault(vname, []).append(ref)
            finals[f"{vname}/forgetting.max_drop"] = ref[0] - min(ref)
            finals[f"{vname}/forgetting.final_drop"] = ref[0] - ref[-1]
            finals[f"pretrain/{cfg.reference}"] = ref[0]
            for n in evals:
                finals[f"{vname}/{n}"] = hist[-1][f"{n}.acc"]
        return finals

    def _slices(self, model: Any) -> list[dict[str, Any]]:
        from synthcv.tasks.slices import slice_metrics
        from synthcv.tasks.train import evaluate

        sc = self.cfg.slices
        assert sc is not None
        data = self.source(sc.source, self.cfg.seeds[0])
        if not data.factors:
            raise ValueError(f"slices.source {sc.source!r} records no factors to slice by")
        correct = evaluate(model, data)["correct"]
        names = sc.factors or sorted(data.factors)
        return slice_metrics(correct, data.factors, names, sc.bins, sc.binning)


def evaluate_example(data: ArraySet, model: Any) -> np.ndarray:
    """A 2-image float32 example (N, C, H, W) so MLflow records the served input signature."""
    from synthcv.tasks.train import to_tensor

    return to_tensor(data.images[:2], getattr(model, "in_channels", 1)).numpy()


def summary_markdown(summary: dict[str, dict[str, float]]) -> str:
    lines = ["| metric | mean ± 95% (%) | seeds |", "|---|---|---|"]
    for k, s in summary.items():
        lines.append(f"| {k} | {fmt_ci(s)} | {s['n']} |")
    return "\n".join(lines)


def input_hashes(runner: Runner) -> dict[str, str]:
    return {n: runner._full[n].digest for n in runner._full}


def run_experiment(
    config: str | Path | dict[str, Any] | ExperimentConfig,
    out: str | Path | None = None,
    tracking: bool | None = None,
    progress: bool = True,
    tracking_root: str | Path | None = None,
    cache: dict[str, ArraySet] | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Run a config end to end (tracked unless disabled) and return its results dict.

    Sources are loaded before the MLflow run opens so the run's lineage lists every input's
    content hash from the start.
    """
    from synthcv.tracking import track_experiment

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out_dir = Path(out) if out is not None else Path("experiments") / cfg.name
    runner = Runner(cfg, out_dir, progress, cache)
    used = set(cfg.eval) | set(cfg.train.sources)
    if cfg.finetune:
        used |= set(cfg.finetune.sources)
        if cfg.finetune.replay:
            used.add(cfg.finetune.replay.source)
    if cfg.slices:
        used.add(cfg.slices.source)
    for n in sorted(used):
        runner.source(n, cfg.seeds[0])
    with track_experiment(
        cfg.name,
        cfg.recipe,
        cfg.model_dump(mode="json"),
        input_hashes(runner),
        enabled=tracking,
        root=tracking_root,
        experiment=experiment,
    ) as log:
        result = runner.run(log)
        result["run_id"] = log.run_id
    return result
