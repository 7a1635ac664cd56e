"""Deep generative image models with exact likelihoods: FVSBN, NADE, MADE, Gated PixelCNN, and a
convolutional VAE for comparison. Imports torch: import it only when you need it.

Quick use::

    from synthcv.genmodels import build_model
    m = build_model("gated-pixelcnn", (1, 28, 28), levels=256, num_classes=10)
    m.bits_per_dim(x, y)           # x: long (N,1,28,28) in [0,255]
    m.sample(16, cond=3, seed=0)   # cached sampler by default
"""

from synthcv.genmodels.base import AutoregressiveModel, GenerativeModel, raster_order
from synthcv.genmodels.causality import (
    CausalityReport,
    check_causality,
    draw_receptive_field,
    receptive_field,
)
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
from synthcv.genmodels.train import TrainConfig, evaluate, train
from synthcv.genmodels.vae import ConvVAE

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
