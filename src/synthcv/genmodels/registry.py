"""Models by name, seeded construction, and checkpoints that rebuild the exact model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synthcv.genmodels.base import GenerativeModel
from synthcv.genmodels.dense import FVSBN, MADE, NADE
from synthcv.genmodels.io import atomic_path
from synthcv.genmodels.pixelcnn import GatedPixelCNN
from synthcv.genmodels.vae import ConvVAE

MODELS: dict[str, type[GenerativeModel]] = {
    "fvsbn": FVSBN,
    "nade": NADE,
    "made": MADE,
    "gated-pixelcnn": GatedPixelCNN,
    "conv-vae": ConvVAE,
}


def build_model(
    name: str,
    image_shape: tuple[int, int, int],
    levels: int = 256,
    num_classes: int = 0,
    seed: int = 0,
    **hparams: Any,
) -> GenerativeModel:
    """Construct model ``name`` with weights drawn from a private RNG seeded by ``seed``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    cls = MODELS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            model = cls(tuple(image_shape), levels=levels, num_classes=num_classes, **hparams)
        except TypeError as exc:
            raise ValueError(f"bad hyper-parameters for {name}: {hparams} ({exc})") from exc
    return model


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_spec(model: GenerativeModel) -> dict[str, Any]:
    """Everything needed to rebuild ``model`` (weights aside)."""
    return dict(
        name=model.model_name,
        image_shape=list(model.image_shape),
        levels=model.levels,
        num_classes=model.num_classes,
        hparams=model.hparams,
    )


def model_from_spec(spec: dict[str, Any]) -> GenerativeModel:
    return build_model(
        spec["name"],
        tuple(spec["image_shape"]),
        spec["levels"],
        spec["num_classes"],
        **spec["hparams"],
    )


def save_checkpoint(path: str | Path, model: GenerativeModel, **extra: Any) -> Path:
    """Atomically write model spec + weights (+ optimizer/progress in ``extra``)."""
    payload = dict(model=model_spec(model), state_dict=model.state_dict(), **extra)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> tuple[GenerativeModel, dict[str, Any]]:
    """Rebuild the model from a checkpoint; returns (model in eval mode, the whole payload)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except OSError as exc:
        if exc.errno is not None:  # unreadable (permissions, I/O): the OSError says so
            raise
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from None
    except Exception as exc:  # torch/pickle raise many types for a damaged file
        raise ValueError(
            f"{path}: not a readable checkpoint (damaged or not written by synthcv: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(payload, dict) or "model" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path}: not a synthcv genmodel checkpoint")
    try:
        model = model_from_spec(payload["model"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: the checkpoint's weights do not fit its model ({type(exc).__name__}: {exc})"
        ) from None
    model.eval()
    return model, payload
