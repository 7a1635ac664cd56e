"""One interface for every generative model: exact log-likelihood, bits/dim, sampling, completion.

Data are integer *levels* ``x`` of shape ``(N, C, H, W)`` in ``[0, levels)`` (256 for 8-bit,
2 for binarized). The autoregressive order is raster order over pixels with the colour channels
R -> G -> B inside each pixel: dimension ``(r, c, ch)`` comes after every ``(r', c', ch')`` with
``(r', c', ch') < (r, c, ch)`` lexicographically.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from synthcv.genmodels.heads import Head


def to_unit(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer levels -> floats in [-1, 1], the networks' input scale."""
    return x.float() * (2.0 / (levels - 1)) - 1.0


def raster_order(shape: tuple[int, int, int]) -> Iterator[tuple[int, int, int]]:
    """Yield ``(r, c, ch)`` in the autoregressive order (rows, columns, then R->G->B)."""
    c_, h, w = shape
    for r in range(h):
        for c in range(w):
            for ch in range(c_):
                yield r, c, ch


class GenerativeModel(nn.Module):
    """Base class. Subclasses set ``image_shape`` (C,H,W), ``levels``, ``num_classes``."""

    model_name: str = "base"

    def __init__(self, image_shape: tuple[int, int, int], levels: int, num_classes: int) -> None:
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if min(c, h, w) < 1:
            raise ValueError(f"{self.model_name}: image_shape must be positive, got {image_shape}")
        if levels < 2:
            raise ValueError(f"{self.model_name}: levels must be >= 2, got {levels}")
        self.image_shape = (c, h, w)
        self.levels = int(levels)
        self.num_classes = int(num_classes)
        self.hparams: dict[str, Any] = {}

    # ---- helpers -----------------------------------------------------------------------------
    @property
    def num_dims(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate shape and range so a wrong tensor fails loudly instead of training on junk."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{self.model_name}: expected x of shape (N, "
                f"{', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        if x.is_floating_point():
            raise TypeError(f"{self.model_name}: x must hold integer levels, got {x.dtype}")
        if torch.compiler.is_compiling():  # a data-dependent check would break the graph
            return x.long()
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.levels):
            raise ValueError(
                f"{self.model_name}: x values must be in [0, {self.levels - 1}], got "
                f"[{int(x.min())}, {int(x.max())}]"
            )
        return x.long()

    def prepare_cond(self, cond: Any, n: int) -> torch.Tensor | None:
        """Class labels as a long tensor (n,) or None; unconditional models refuse labels."""
        if self.num_classes == 0:
            if cond is not None:
                raise ValueError(f"{self.model_name}: model is unconditional but got class labels")
            return None
        if cond is None:  # balanced classes: 0, 1, ..., C-1, 0, 1, ...
            return torch.arange(n) % self.num_classes
        y = torch.as_tensor(cond).long()
        if y.dim() == 0:  # one class for all n (int, numpy or 0-d tensor)
            y = y.expand(n).clone()
        if y.shape != (n,):
            raise ValueError(
                f"{self.model_name}: cond must have shape ({n},), got {tuple(y.shape)}"
            )
        # The range check reads values (a graph break under torch.compile): the compiled
        # training loss gets labels the data loader already checked, eager calls are checked.
        if torch.compiler.is_compiling():
            return y
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ValueError(
                f"{self.model_name}: class labels must be in [0, {self.num_classes - 1}], got "
                f"[{int(y.min())}, {int(y.max())}]"
            )
        return y

    def likelihood_cond(self, cond: Any, n: int) -> torch.Tensor | None:
        """Labels for a likelihood: a conditional model must be told the class of every image."""
        if self.num_classes and cond is None:
            raise ValueError(f"{self.model_name}: conditional model needs class labels (cond)")
        return self.prepare_cond(cond, n)

    # ---- the interface -----------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """Log-likelihood in nats per image, shape (N,), from one parallel pass."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, cond: Any = None, generator: torch.Generator | None = None):
        """Training objective: mean negative log-likelihood (or bound) in nats per image."""
        return -self.log_prob(x, cond).mean()

    @property
    def splittable_loss(self) -> bool:
        """Whether a batch's loss may be computed in several calls (micro-batches) and
        averaged: true when each image's term does not depend on which call it is in."""
        return True

    def bits_per_dim(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """Mean negative log-likelihood in bits per dimension: NLL / (D ln 2)."""
        return -self.log_prob(x, cond).mean() / (self.num_dims * math.log(2.0))

    def sample(
        self,
        n: int,
        cond: Any = None,
        seed: int = 0,
        cached: bool = True,
        batch_size: int | None = None,
        progress: bool = False,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Draw ``n`` images (long levels, (n,C,H,W)); the same seed gives the same images.

        ``temperature`` < 1 sharpens each conditional (p^(1/T), renormalized) for
        autoregressive models: fewer stray pixels and broken strokes, less variety; 1 is the
        model's own distribution.
        """
        raise NotImplementedError

    def complete(
        self,
        x: torch.Tensor,
        known_mask: torch.Tensor,
        cond: Any = None,
        seed: int = 0,
        cached: bool = True,
    ) -> torch.Tensor:
        """Fill the unknown dimensions of ``x``; those where ``known_mask`` is true are kept."""
        raise NotImplementedError


def check_temperature(temperature: float) -> None:
    """Sampling temperatures are positive and finite (0 would be argmax: use a small value)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")


def broadcast_mask(known_mask: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Accept a mask of shape (H,W), (C,H,W) or (N,C,H,W) and broadcast it to ``shape``."""
    m = torch.as_tensor(known_mask).bool()
    while m.dim() < 4:
        m = m.unsqueeze(0)
    try:
        return m.expand(shape).clone()
    except RuntimeError as exc:
        raise ValueError(
            f"known_mask of shape {tuple(known_mask.shape)} does not broadcast to {shape}"
        ) from exc


class SamplingSession:
    """Computes the head parameters of one dimension given the dimensions drawn before it."""

    def params(self, r: int, c: int, ch: int) -> torch.Tensor:
        raise NotImplementedError

    def update(self, r: int, c: int, ch: int, value: torch.Tensor) -> None:
        raise NotImplementedError


class NaiveSession(SamplingSession):
    """The textbook sampler: one full parallel forward pass per dimension."""

    def __init__(self, model: AutoregressiveModel, x: torch.Tensor, cond: torch.Tensor | None):
        self.model, self.x, self.cond = model, x.clone(), cond

    def params(self, r: int, c: int, ch: int) -> torch.Tensor:
        out = self.model.forward_params(to_unit(self.x, self.model.levels), self.cond)
        return out[:, ch, :, r, c]

    def update(self, r: int, c: int, ch: int, value: torch.Tensor) -> None:
        self.x[:, ch, r, c] = value


class AutoregressiveModel(GenerativeModel):
    """Models with ``forward_params(x_unit, cond) -> (N, C, P, H, W)`` and an output ``head``."""

    head: Head

    def forward_params(self, xu: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def cached_session(self, x: torch.Tensor, cond: torch.Tensor | None) -> SamplingSession:
        """Fast sampler; subclasses override. The default falls back to the naive one."""
        return NaiveSession(self, x, cond)

    def log_prob(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        x = self.check_input(x)
        y = self.likelihood_cond(cond, x.shape[0])
        params = self.forward_params(to_unit(x, self.levels), y)
        return self.head.log_prob(params, x).flatten(1).sum(1)

    @torch.no_grad()
    def _autoregress(
        self,
        x0: torch.Tensor,
        known: torch.Tensor | None,
        cond: torch.Tensor | None,
        u: torch.Tensor,
        cached: bool,
        progress: bool,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            x = x0.clone()
            session = self.cached_session(x, cond) if cached else NaiveSession(self, x, cond)
            order = list(raster_order(self.image_shape))
            steps: Any = order
            if progress:
                from rich.progress import track

                steps = track(order, description="sampling", transient=True)
            for r, c, ch in steps:
                lp = self.head.bin_log_probs(session.params(r, c, ch))
                if temperature != 1.0:  # sample_from renormalizes
                    lp = lp / temperature
                    lp = lp - lp.max(dim=-1, keepdim=True).values
                v = self.head.sample_from(lp, u[:, r, c, ch])
                if known is not None:
                    v = torch.where(known[:, ch, r, c], x[:, ch, r, c], v)
                x[:, ch, r, c] = v
                session.update(r, c, ch, v)
            return x
        finally:
            self.train(was_training)

    def _run_batches(
        self, x0, known, cond, seed, cached, batch_size, progress, temperature=1.0
    ) -> torch.Tensor:
        n = x0.shape[0]
        c, h, w = self.image_shape
        gen = torch.Generator().manual_seed(int(seed))
        u = torch.rand((n, h, w, c), generator=gen)  # one uniform per dimension, drawn up front
        bs = batch_size or n
        outs = []
        for s in range(0, n, bs):
            sl = slice(s, s + bs)
            outs.append(
                self._autoregress(
                    x0[sl],
                    None if known is None else known[sl],
                    None if cond is None else cond[sl],
                    u[sl],
                    cached,
                    progress,
                    temperature,
                )
            )
        return torch.cat(outs) if outs else x0

    def sample(
        self, n, cond=None, seed=0, cached=True, batch_size=None, progress=False, temperature=1.0
    ):
        if n < 0:
            raise ValueError(f"sample: n must be >= 0, got {n}")
        check_temperature(temperature)
        y = self.prepare_cond(cond, n)
        x0 = torch.zeros((n, *self.image_shape), dtype=torch.long)
        return self._run_batches(x0, None, y, seed, cached, batch_size, progress, temperature)

    def complete(self, x, known_mask, cond=None, seed=0, cached=True):
        """Sample unknown dimensions from p(x_i | x_<i); known ones are copied unchanged.

        The model conditions only on dimensions *earlier* in raster order, so the completion is
        an exact conditional sample when the known region precedes the unknown one (e.g. the
        upper half given); known pixels later in the order are kept but not conditioned on.
        """
        x = self.check_input(x)
        known = broadcast_mask(known_mask, tuple(x.shape))
        y = self.prepare_cond(cond, x.shape[0])
        return self._run_batches(x, known, y, seed, cached, None, False)
