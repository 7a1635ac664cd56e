"""Output heads: turn per-dimension parameters into exact discrete distributions.

Every head gives log-probabilities over all ``levels`` bins of one dimension, so likelihoods are
exact (they sum to one over the bins) and sampling is an inverse-CDF lookup with one uniform per
dimension — which is what lets the cached and naive samplers draw identical images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_MIN_BIN_WIDTH = 1e-8  # bin width / logistic scale, floored to keep log-masses finite


_SERIES_BELOW = 1e-2  # log1mexp switches to its series below this


def log1mexp(w: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-w))`` for ``w > 0``, accurate to float32 rounding for tiny ``w`` too.

    ``log(-expm1(-w))`` is exact in eager mode, but torch.compile's CPU code (torch 2.13) turns
    ``expm1(x)`` into ``exp(x) - 1``, which is 0 for ``w`` below float32's epsilon: a very broad
    logistic then gets log(0) = -inf for a finite bin, and training dies on a NaN (pytorch#189803).
    Below 0.01 the series ``log w - w/2 + w^2/24`` (next term w^4/2880) needs no expm1; each
    branch sees only arguments where it is finite, so neither poisons the other's gradient.
    """
    small = w.clamp(max=_SERIES_BELOW)
    series = torch.log(small) - 0.5 * small + small * small / 24.0
    direct = torch.log(-torch.expm1(-w.clamp(min=_SERIES_BELOW)))
    return torch.where(w < _SERIES_BELOW, series, direct)


class Head(nn.Module):
    """Base: ``num_params`` numbers per dimension -> log-probabilities of ``levels`` bins."""

    levels: int
    num_params: int

    def bin_log_probs(self, params: torch.Tensor) -> torch.Tensor:
        """``params (..., P)`` -> ``(..., levels)`` normalized log-probabilities."""
        raise NotImplementedError

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``params (N,C,P,H,W)``, ``x`` long ``(N,C,H,W)`` -> per-dimension log-prob (N,C,H,W)."""
        lp = self.bin_log_probs(params.movedim(2, -1))
        return lp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def sample_from(log_probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF sample: ``log_probs (N,K)``, uniforms ``u (N,)`` -> long ``(N,)``."""
        cdf = torch.cumsum(log_probs.exp(), dim=-1)
        idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1).contiguous())
        return idx.squeeze(-1).clamp_(max=log_probs.shape[-1] - 1)


class CategoricalHead(Head):
    """A ``levels``-way softmax per dimension (levels=2 is a Bernoulli)."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.num_params = levels

    def bin_log_probs(self, params: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(params, dim=-1)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Fused cross-entropy over the class dimension, no (..., K) copy of the logits."""
        n, c, p = params.shape[:3]
        spatial = params.shape[3:]
        ce = F.cross_entropy(
            params.reshape(n * c, p, *spatial), x.long().reshape(n * c, *spatial), reduction="none"
        )
        return -ce.reshape(n, c, *spatial)


class LogisticMixtureHead(Head):
    """Discretized mixture of logistics (PixelCNN++ style) over ``levels`` bins in [-1, 1].

    Parameters per dimension: ``M`` mixture logits, ``M`` means, ``M`` log-scales. The edge bins
    take the tails, so the bins sum to exactly one.
    """

    def __init__(self, levels: int, mixtures: int = 5) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"LogisticMixtureHead: levels must be >= 2, got {levels}")
        self.levels = levels
        self.mixtures = mixtures
        self.num_params = 3 * mixtures
        centers = torch.linspace(-1.0, 1.0, levels)
        self.register_buffer("centers", centers, persistent=False)

    def _split(self, params: torch.Tensor):
        m = self.mixtures
        logits, means, log_scales = params[..., :m], params[..., m : 2 * m], params[..., 2 * m :]
        return F.log_softmax(logits, dim=-1), means, torch.exp(-log_scales.clamp(min=-7.0))

    def _component_log_probs(self, centered, inv_s, first, last) -> torch.Tensor:
        """Log-mass of the bin at ``centered`` = centre - mean; ``first``/``last`` mark the
        edge bins, which take the tails."""
        half = 1.0 / (self.levels - 1)
        a = (centered + half) * inv_s  # upper edge
        b = (centered - half) * inv_s  # lower edge
        # log(sigmoid(a) - sigmoid(b)) = logsig(a) + logsig(-b) + log(1 - exp(-(a - b)))
        lsa, lsnb = F.logsigmoid(a), F.logsigmoid(-b)
        # A very broad logistic makes the bin's width in units of the scale underflow to 0, and
        # log(0) = -inf poisons the gradient of every bin (also through torch.where's unused
        # branch). The floor only matters for scales ~10^6 times the data range (where the bins
        # then sum to one within 3e-6).
        width = ((2.0 * half) * inv_s).clamp(min=_MIN_BIN_WIDTH)
        mid = lsa + lsnb + log1mexp(width)
        return torch.where(first, lsa, torch.where(last, lsnb, mid))

    def bin_log_probs(self, params: torch.Tensor) -> torch.Tensor:
        mix, means, inv_s = self._split(params)
        centered = self.centers - means.unsqueeze(-1)  # (..., M, K)
        k = torch.arange(self.levels)
        comp = self._component_log_probs(
            centered, inv_s.unsqueeze(-1), k == 0, k == self.levels - 1
        )
        return torch.logsumexp(mix.unsqueeze(-1) + comp, dim=-2)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Only the observed bin is evaluated (``levels`` times cheaper than all bins)."""
        mix, means, inv_s = self._split(params.movedim(2, -1))  # (N,C,H,W,M)
        xl = x.long().unsqueeze(-1)
        centered = (xl.float() * (2.0 / (self.levels - 1)) - 1.0) - means
        comp = self._component_log_probs(centered, inv_s, xl == 0, xl == self.levels - 1)
        return torch.logsumexp(mix + comp, dim=-1)


def make_head(kind: str, levels: int, mixtures: int = 5) -> Head:
    """Build a head by name: ``categorical`` or ``logistic``."""
    if kind == "categorical":
        return CategoricalHead(levels)
    if kind == "logistic":
        return LogisticMixtureHead(levels, mixtures)
    raise ValueError(f"unknown head {kind!r}: expected 'categorical' or 'logistic'")
