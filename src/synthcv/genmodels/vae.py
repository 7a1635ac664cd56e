"""Convolutional VAE on the same data and heads, so its bound sits in the same bits/dim table.

``log_prob`` is the ELBO (a lower bound on log p(x)) with a seeded reparameterization sample;
``iw_log_prob`` is the importance-weighted estimate with K samples (tighter as K grows).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthcv.genmodels.base import GenerativeModel, broadcast_mask, to_unit
from synthcv.genmodels.heads import make_head


def _down(n: int) -> int:
    return (n + 1) // 2


class ConvVAE(GenerativeModel):
    """Encoder: two stride-2 convs -> Gaussian q(z|x). Decoder: two transposed convs -> head
    parameters per dimension, independent given z (Bernoulli/categorical or logistic mixture)."""

    model_name = "conv-vae"

    def __init__(
        self,
        image_shape,
        levels=256,
        num_classes=0,
        latent=32,
        channels=64,
        head: str | None = None,
        mixtures=2,
    ) -> None:
        super().__init__(image_shape, levels, num_classes)
        head = head or ("categorical" if levels <= 32 else "logistic")
        self.hparams = dict(latent=latent, channels=channels, head=head, mixtures=mixtures)
        c, h, w = self.image_shape
        f = channels
        self.head = make_head(head, levels, mixtures)
        self.h4, self.w4 = _down(_down(h)), _down(_down(w))
        self.enc = nn.Sequential(
            nn.Conv2d(c, f // 2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(f // 2, f, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        flat = f * self.h4 * self.w4
        self.enc_cond = nn.Embedding(num_classes, flat) if num_classes else None
        self.to_stats = nn.Linear(flat, 2 * latent)
        self.dec_cond = nn.Embedding(num_classes, latent) if num_classes else None
        self.from_z = nn.Linear(latent, flat)
        self.dec = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(f, f, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(f, f // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(f // 2, c * self.head.num_params, 3, padding=1),
        )
        self.latent = latent

    def encode(self, x: torch.Tensor, y: torch.Tensor | None):
        e = self.enc(to_unit(x, self.levels))
        if self.enc_cond is not None:
            e = e + self.enc_cond(y)
        mu, logvar = self.to_stats(F.relu(e)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.dec_cond is not None:
            z = z + self.dec_cond(y)
        c, h, w = self.image_shape
        g = self.from_z(z).view(z.shape[0], -1, self.h4, self.w4)
        out = self.dec(g)[:, :, :h, :w]
        return out.reshape(z.shape[0], c, self.head.num_params, h, w)

    def _log_px_z(self, params, x):
        return self.head.log_prob(params, x).flatten(1).sum(1)

    def _terms(self, x, y, k: int, generator: torch.Generator | None):
        """log p(x|z) + log p(z) - log q(z|x) for k samples: (k, N)."""
        mu, logvar = self.encode(x, y)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn((k, *mu.shape), generator=generator)
        z = mu + std * eps
        n = x.shape[0]
        zf = z.reshape(k * n, -1)
        yk = None if y is None else y.repeat(k)
        lpx = self._log_px_z(self.decode(zf, yk), x.repeat(k, 1, 1, 1)).view(k, n)
        log2pi = math.log(2 * math.pi)
        lpz = -0.5 * (z.pow(2) + log2pi).sum(-1)
        lqz = -0.5 * (eps.pow(2) + log2pi + logvar).sum(-1)
        return lpx, lpz, lqz, mu, logvar

    def elbo(self, x, cond=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Evidence lower bound in nats per image (analytic KL, one decoder sample)."""
        x = self.check_input(x)
        y = self.likelihood_cond(cond, x.shape[0])
        gen = generator or torch.Generator().manual_seed(0)
        lpx, _, _, mu, logvar = self._terms(x, y, 1, gen)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        return lpx[0] - kl

    def iw_log_prob(self, x, cond=None, k: int = 100, generator=None) -> torch.Tensor:
        """Importance-weighted estimate log (1/K) sum_k p(x,z_k)/q(z_k|x), nats per image."""
        x = self.check_input(x)
        y = self.likelihood_cond(cond, x.shape[0])
        gen = generator or torch.Generator().manual_seed(0)
        lpx, lpz, lqz, _, _ = self._terms(x, y, k, gen)
        return torch.logsumexp(lpx + lpz - lqz, dim=0) - math.log(k)

    def log_prob(self, x, cond=None) -> torch.Tensor:
        """The ELBO (a bound, not the exact likelihood); deterministic: seeded noise."""
        return self.elbo(x, cond)

    def loss(self, x, cond=None, generator=None):
        return -self.elbo(x, cond, generator=generator).mean()

    @torch.no_grad()
    def _sample_given(self, params, u):
        lp = self.head.bin_log_probs(params.movedim(2, -1))  # (N,C,H,W,K)
        flat = lp.reshape(-1, lp.shape[-1])
        return self.head.sample_from(flat, u.reshape(-1)).view(lp.shape[:-1])

    @torch.no_grad()
    def sample(
        self, n, cond=None, seed=0, cached=True, batch_size=None, progress=False, temperature=1.0
    ):
        """z ~ N(0, I), then every dimension independently from p(x|z) (one decoder pass; the
        ``cached`` flag has nothing to cache here). ``temperature`` is for autoregressive
        models: a VAE takes only 1."""
        if temperature != 1.0:
            raise ValueError(
                f"temperature applies to autoregressive models; {self.model_name} takes only 1,"
                f" got {temperature}"
            )
        was = self.training
        self.eval()
        try:
            y = self.prepare_cond(cond, n)
            gen = torch.Generator().manual_seed(int(seed))
            z = torch.randn((n, self.latent), generator=gen)
            u = torch.rand((n, *self.image_shape), generator=gen)
            return self._sample_given(self.decode(z, y), u)
        finally:
            self.train(was)

    @torch.no_grad()
    def complete(self, x, known_mask, cond=None, seed=0, cached=True, steps: int = 20):
        """Pseudo-Gibbs: encode, decode, resample unknown dims, clamp known ones; ``steps``
        rounds. Known dimensions are never changed."""
        x = self.check_input(x)
        known = broadcast_mask(known_mask, tuple(x.shape))
        y: Any = self.prepare_cond(cond, x.shape[0])
        was = self.training
        self.eval()
        try:
            gen = torch.Generator().manual_seed(int(seed))
            cur = x.clone()
            for _ in range(steps):
                mu, logvar = self.encode(cur, y)
                z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
                u = torch.rand(x.shape, generator=gen)
                cur = torch.where(known, x, self._sample_given(self.decode(z, y), u))
            return cur
        finally:
            self.train(was)
