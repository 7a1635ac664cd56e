"""``synthcv loop`` configuration: which champion, what it was trained on, what came in, how to
react, and when a candidate may replace the champion. File paths are relative to the working
directory, as in experiment configs (where ``synthcv generate`` wrote)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthcv.fileio import sha256_text
from synthcv.safeyaml import YAMLProblem, load_yaml_file
from synthcv.validation import ConfigError, format_validation_error, short_value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChampionSpec(_Strict):
    #: the MLflow registered model; its alias ``champion`` is the model in service
    registry_name: str = Field(min_length=1, max_length=200)
    #: a classifier file, or a detector checkpoint (an instance experiment's model.pt or its
    #: directory), registered as version 1 when the registry has no champion yet
    bootstrap: str | None = None
    #: the spec the champion's synthetic data came from: the base of every targeted overlay
    spec: str


class MonitorSpec(_Strict):
    n: int | None = Field(500, ge=10)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    permutations: int = Field(200, ge=19)


class TargetedSpec(_Strict):
    count: int = Field(2000, ge=10)
    probe_count: int = Field(64, ge=8)
    #: the share of the current batch the targeted region must cover: its [q, 1 - q] quantiles
    quantile: float = Field(0.05, ge=0, lt=0.5)
    #: how a factor's range is read off the batch: "span" inverts the batch's whole central
    #: interval; "excess" first takes out the spread the renders show at one probe value
    #: (classes, fonts, writers): narrower ranges, not better candidates in the one benchmark
    #: run that compared them (docs/monitoring.md)
    spread: Literal["excess", "span"] = "span"
    workers: int = Field(1, ge=1)
    #: how rendered images reach the classifier: as rendered (a spec that frames its camera, as
    #: digits_mnist does) or re-framed to MNIST's 20-px box
    match_domain: Literal["mnist"] | None = None


class FinetuneSpec(_Strict):
    #: passes over the targeted set; unset: the kind's default (:func:`epochs_for`: 4 for a
    #: classifier, as benchmarks/drift_loop.py chose it; 2 for a detector)
    epochs: int | None = Field(None, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(5e-4, gt=0)
    #: share of each batch drawn from the champion's training data (the rest: targeted)
    replay: float = Field(0.8, ge=0, lt=1)
    #: share of that replay drawn from the training images the champion is least sure of: the
    #: lowest ``focus_quantile`` of its margin p(true) − max p(other), the images nearest its
    #: decision boundary, which a uniform replay seldom shows (uncertainty-focused rehearsal,
    #: as Rainbow Memory, Bang et al. 2021, fills its memory); 0: uniform replay (measured,
    #: not adopted: docs/drift_loop_benchmark.md). Classifiers only
    replay_focus: float = Field(0.0, ge=0, le=1)
    focus_quantile: float = Field(0.1, gt=0, le=0.5)
    #: weight of distillation from the champion on the replayed training data (Learning
    #: without Forgetting); 0: off; unset: the kind's default (:func:`distill_weight`:
    #: 1 for a classifier, as benchmarks/drift_loop.py chose it; 0 for a detector)
    distill: float | None = Field(None, ge=0)
    temperature: float = Field(2.0, gt=0)
    #: WiSE-FT (Wortsman et al. 2022): the candidate's weights are this share of the fine-tuned
    #: ones plus the rest of the champion's; 1: the fine-tuned weights as they are
    interpolate: float = Field(1.0, gt=0, le=1)
    #: after ``interpolate``, re-estimate BatchNorm's running statistics on this many batches
    #: of the fine-tune's own replay + targeted mix (classifiers; 0: the blended statistics)
    recalibrate_bn: int = Field(0, ge=0)
    #: BatchNorm layers in inference mode through the fine-tune: the champion's statistics
    #: normalise every batch and are kept; unset: the kind's default (:func:`freeze_bn_for`:
    #: on for a classifier, as benchmarks/loop_finetune_recipes.py chose it; off for a
    #: detector, where it was not measured)
    freeze_bn: bool | None = None
    seed: int = 0


class GateSpec(_Strict):
    #: the broad labelled test set the candidate must not get worse on
    broad: str
    #: what is compared: a classifier's accuracy; a detector's COCO box AP50 (default) or AP
    metric: Literal["accuracy", "AP50", "AP"] | None = None
    #: the most the candidate may lose on ``broad``, in points of the metric
    tolerance: float = Field(0.5, ge=0)
    #: the least it must gain on the drifted batch, in points of the metric
    min_gain: float = Field(0.0, ge=0)


class LoopConfig(_Strict):
    name: str = Field("loop", min_length=1)
    #: where batches' artifacts and decisions go
    out: str
    champion: ChampionSpec
    #: what the champion was trained on: the monitor's reference and the fine-tune's replay
    reference: str
    #: the production batch (usually given on the command line: --current)
    current: str | None = None
    #: feature -> spec rule mapping (YAML); None: the bundled default (synthcv/loop/mapping.yaml)
    mapping: str | None = None
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    targeted: TargetedSpec = Field(default_factory=TargetedSpec)
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    gate: GateSpec
    mnist: str | None = None

    @model_validator(mode="after")
    def _check(self) -> LoopConfig:
        if self.finetune.replay == 0 and self.targeted.count < self.finetune.batch_size:
            raise ValueError("finetune.replay 0 trains on the targeted set alone: make it larger")
        if self.finetune.replay == 0 and self.finetune.replay_focus > 0:
            raise ValueError("finetune.replay_focus focuses the replay: finetune.replay is 0")
        return self

    def digest(self) -> str:
        """What decides a batch's outcome, bar the batch itself: a re-run with the same digest
        and batch is the same work."""
        d = self.model_dump(exclude={"current", "out"})
        for key, default in (
            ("interpolate", 1.0),
            ("recalibrate_bn", 0),
            ("freeze_bn", False),
            ("replay_focus", 0.0),
        ):
            if d["finetune"][key] == default:  # added later: the old behaviour keeps old keys
                del d["finetune"][key]
        if "replay_focus" not in d["finetune"]:
            del d["finetune"]["focus_quantile"]  # means nothing without a focus
        return sha256_text(json.dumps(d, sort_keys=True, default=str))


def load_loop_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """Validate a loop config file; :class:`ConfigError` names every bad field by path."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"loop config not found: {p}")
    try:
        raw = load_yaml_file(p)
    except YAMLProblem as exc:
        raise ConfigError([str(exc)], str(p)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(p)) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): got {short_value(raw)}, expected a mapping"], str(p))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return LoopConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, LoopConfig), str(p)) from None
