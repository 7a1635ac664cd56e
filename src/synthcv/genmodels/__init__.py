"""Deep generative image models with exact likelihoods: FVSBN, NADE, MADE, Gated PixelCNN, and a
convolutional VAE for comparison. Names load on first use; all but ``TrainConfig`` import torch.

Quick use::

    from synthcv.genmodels import build_model
    m = build_model("gated-pixelcnn", (1, 28, 28), levels=256, num_classes=10)
    m.bits_per_dim(x, y)           # x: long (N,1,28,28) in [0,255]
    m.sample(16, cond=3, seed=0)   # cached sampler by default
"""

import importlib
from typing import TYPE_CHECKING, Any

# name -> module; loaded on first use, so ``synthcv.genmodels.config`` (and the command line's
# --help, built from it) needs no torch
_EXPORTS = {
    "AutoregressiveModel": "base",
    "GenerativeModel": "base",
    "raster_order": "base",
    "CausalityReport": "causality",
    "check_causality": "causality",
    "draw_receptive_field": "causality",
    "receptive_field": "causality",
    "ImageData": "data",
    "load_images": "data",
    "FVSBN": "dense",
    "MADE": "dense",
    "NADE": "dense",
    "CategoricalHead": "heads",
    "LogisticMixtureHead": "heads",
    "GatedPixelCNN": "pixelcnn",
    "MODELS": "registry",
    "build_model": "registry",
    "load_checkpoint": "registry",
    "num_params": "registry",
    "save_checkpoint": "registry",
    "TrainConfig": "config",
    "evaluate": "train",
    "train": "train",
    "ConvVAE": "vae",
}

if TYPE_CHECKING:
    from synthcv.genmodels.base import AutoregressiveModel, GenerativeModel, raster_order
    from synthcv.genmodels.causality import (
        CausalityReport,
        check_causality,
        draw_receptive_field,
        receptive_field,
    )
    from synthcv.genmodels.config import TrainConfig
    from synthcv.genmodels.data import ImageData, load_images
    from synthcv.genmodels.dense import FVSBN, MADE, NADE
    from synthcv.genmodels.heads import CategoricalHead, LogisticMixtureHead
    from synthcv.genmodels.pixelcnn import GatedPixelCNN
    from synthcv.genmodels.registry import (
        MODELS,
        build_model,
        load_checkpoint,
        num_params,
        save_checkpoint,
    )
    from synthcv.genmodels.train import evaluate, train
    from synthcv.genmodels.vae import ConvVAE


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # also replaces the submodule `train` by the function, as before
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "FVSBN",
    "MADE",
    "MODELS",
    "NADE",
    "AutoregressiveModel",
    "CategoricalHead",
    "CausalityReport",
    "ConvVAE",
    "GatedPixelCNN",
    "GenerativeModel",
    "ImageData",
    "LogisticMixtureHead",
    "TrainConfig",
    "build_model",
    "check_causality",
    "draw_receptive_field",
    "evaluate",
    "load_checkpoint",
    "load_images",
    "num_params",
    "raster_order",
    "receptive_field",
    "save_checkpoint",
    "train",
]
