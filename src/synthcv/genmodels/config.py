"""The configuration of a generative-model training run, validated when it is built.

:class:`TrainConfig` is the one place its options are written: their types, defaults,
constraints and help texts. ``synthcv genmodel train`` derives its flags from these fields, a
run directory's ``run.json`` stores :meth:`TrainConfig.to_json` and :func:`load_run_config`
reads it back. A bad value raises :class:`~synthcv.validation.ConfigError` with one
``field: got X, expected Y`` line per problem.

This module needs no torch, so the command line's ``--help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthcv.validation import ConfigError, format_validation_error

#: the model families (synthcv.genmodels.registry.MODELS builds them)
ModelName = Literal["fvsbn", "nade", "made", "gated-pixelcnn", "conv-vae"]
LrSchedule = Literal["exp", "cosine"]
Precision = Literal["fp32", "bf16", "auto"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
PRECISIONS: tuple[str, ...] = get_args(Precision)


class TrainConfig(BaseModel):
    """How a generative model is trained (see :func:`synthcv.genmodels.train.train`).

    Immutable: :meth:`replace` returns a validated copy with some fields changed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: ModelName = Field("gated-pixelcnn", description="The model family.")
    data: str = Field(
        "mnist8000",
        description="Training data: mnist8000 | mnist6300 | sklearn-digits | DATASET_DIR | X.npz.",
    )
    epochs: int = Field(
        10, ge=1, description="Epochs to train (with --resume: the total, counting done ones)."
    )
    batch_size: int = Field(64, ge=1, description="Images per optimizer step.")
    # a larger batch is split and its gradients summed: the same update up to float rounding
    micro_batch: int | None = Field(
        None,
        ge=1,
        description="Images per forward/backward pass: a larger batch is split and its gradients"
        " summed, the same update in less memory. Default: the whole batch.",
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (the schedule's peak).")
    lr_decay: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Per-epoch learning-rate factor (epoch e: lr * decay^e).",
    )
    # "cosine" ends at `epochs` or, with `minutes`, at the clock budget, whichever comes first
    lr_schedule: LrSchedule = Field(
        "exp",
        description="Schedule: exp (lr * decay^epoch) | cosine (half cosine to 0 by the last "
        "epoch or --minutes).",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warm-up steps.")
    # Polyak averaging; 0.999 is typical
    ema: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Evaluate, checkpoint and sample an exponential moving average of the weights"
        " with this decay (e.g. 0.999; 0 = off).",
    )
    # more distinct images for small sets; evaluation sees the data unshifted
    augment_shift: int = Field(
        0,
        ge=0,
        description="Shift each training image by a random offset of up to N pixels per axis"
        " (edges repeat); a regularizer for small datasets. Test images stay unshifted.",
    )
    # numpy's default_rng([seed, epoch]) orders the batches: a seed is a non-negative integer
    seed: int = Field(0, ge=0, description="Seed of the weights, batch order and model noise.")
    conditional: bool = Field(False, description="Condition on the class label.")
    binarize: bool = Field(False, description="Threshold at 128: a 2-level (binary) model.")
    crop: int | None = Field(None, ge=1, description="Central crop size (small, fast problems).")
    limit: int | None = Field(None, ge=1, description="Use only the first N training images.")
    test_limit: int | None = Field(None, ge=1, description="Use only the first N test images.")
    minutes: float | None = Field(
        None, gt=0, description="Stop training after this wall-clock budget."
    )
    # evaluation is a pass over the test split that a time budget pays for
    eval_every: int = Field(
        1,
        ge=1,
        description="Test bits/dim every N epochs (always after the last): evaluation time counts"
        " against --minutes.",
    )
    # evaluation and sampling stay float32
    precision: Precision = Field(
        "fp32",
        description="Precision: fp32 | bf16 | auto (bfloat16 training passes: 2-4x faster on "
        "AMX CPUs).",
    )
    compile: bool = Field(
        False, description="Compile the training loss with torch.compile (faster after a warm-up)."
    )
    hparams: dict[str, Any] = Field(
        default_factory=dict,
        description="Model hyper-parameters, passed to the model's constructor.",
    )
    mnist_path: str | None = Field(None, description="Path of mnist-real-8000.npz.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, type(self)), "TrainConfig") from None

    # Only direct construction goes through this __init__: model_validate (and a TrainConfig
    # nested in another model) validates as pydantic does and raises ValidationError, as
    # pydantic's RootModel marks its own __init__.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "TrainConfig") -> TrainConfig:
        """Validate a mapping (as :meth:`to_json` wrote it); errors name ``source``."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                [f"(top level): got {type(data).__name__}, expected a mapping"], source
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, cls), source) from None

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON values; :meth:`from_json` reads it back to an equal config."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied, validated like a new config."""
        return type(self)(**{**self.model_dump(), **changes})


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run directory was trained with (its ``run.json``)."""
    p = Path(run_dir) / "run.json"
    if not p.is_file():
        raise FileNotFoundError(f"{run_dir}: no run.json — not a genmodel run directory")
    return TrainConfig.from_json(json.loads(p.read_text())["config"], str(p))
