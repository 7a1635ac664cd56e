"""A classifier made of a class-conditional generative model: Bayes' rule over exact likelihoods.

An autoregressive model trained with class labels gives log p(x | y) exactly, so it classifies
without ever being trained to: ŷ = argmax_y log p(x | y) + log p(y). Its accuracy on real test
digits says how much of each class's shape the density model has learnt (a model that draws
the wrong digit when asked scores low here too), and the margin between the true class's
likelihood and the best other one shows how confident it is. For the VAE, log p(x | y) is its
ELBO, a lower bound: the rule then compares bounds, which is the usual approximation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from synthcv.genmodels.base import GenerativeModel

__all__ = ["class_log_likelihoods", "likelihood_classify"]


@torch.no_grad()
def class_log_likelihoods(
    model: GenerativeModel, x: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """(N, num_classes) log p(x_i | y = c) in nats: one pass over ``x`` per class."""
    if not model.num_classes:
        raise ValueError(
            f"{model.model_name}: the model is unconditional; the likelihood classifier needs "
            "one trained with class labels (genmodel train --conditional)"
        )
    from synthcv.genmodels.train import eval_batch_size

    batch_size = batch_size or eval_batch_size(model)
    was = model.training
    model.eval()
    out = torch.empty(len(x), model.num_classes, dtype=torch.float64)
    try:
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size]
            for c in range(model.num_classes):
                out[s : s + len(xb), c] = model.log_prob(xb, c).double()
    finally:
        model.train(was)
    return out


def likelihood_classify(
    model: GenerativeModel,
    x: torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    prior: np.ndarray | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Classify ``x`` by Bayes' rule and score it against ``labels``.

    ``prior``: class probabilities (None: uniform). Returns accuracy, per-class accuracy, the
    confusion matrix (rows true, columns predicted), predictions, the posterior's mean
    probability of the true class, and the mean margin in bits/dim between the true class's
    likelihood and the best other class's (positive: the true class explains the image
    better)."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    k = model.num_classes
    ll = class_log_likelihoods(model, x, batch_size)
    if prior is None:
        log_prior = torch.full((k,), -math.log(k), dtype=torch.float64)
    else:
        p = torch.as_tensor(np.asarray(prior, dtype=np.float64))
        if p.shape != (k,) or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"prior must be {k} non-negative numbers, got {np.asarray(prior)}")
        log_prior = torch.log(p / p.sum())
    log_post = ll + log_prior
    log_post = log_post - torch.logsumexp(log_post, 1, keepdim=True)
    pred = log_post.argmax(1)
    true_ll = ll.gather(1, y[:, None])[:, 0]
    others = ll.clone()
    others.scatter_(1, y[:, None], -math.inf)
    margin_bpd = (true_ll - others.max(1).values) / (model.num_dims * math.log(2))
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y.numpy(), pred.numpy()), 1)
    per_class = {
        c: float(confusion[c, c] / confusion[c].sum()) for c in range(k) if confusion[c].sum()
    }
    return {
        "accuracy": float((pred == y).double().mean()),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
        "predictions": pred.numpy(),
        "true_class_posterior": float(log_post.gather(1, y[:, None]).exp().mean()),
        "margin_bpd": float(margin_bpd.mean()),
        "n": len(y),
    }
