"""The lecture's fully-visible baselines on the flattened image: FVSBN, NADE and MADE.

All three see the image as a vector in the autoregressive order (rows, columns, R->G->B) and
output ``P`` head parameters per dimension, so any head (Bernoulli/categorical, discretized
logistic mixture) works with any of them.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from synthcv.genmodels.base import AutoregressiveModel, SamplingSession, to_unit
from synthcv.genmodels.heads import make_head
from synthcv.genmodels.layers import MaskedLinear


def default_head(levels: int) -> str:
    """Categorical for few levels; an 8-bit softmax per dim would need D*D*256 weights."""
    return "categorical" if levels <= 32 else "logistic"


class _Flat(AutoregressiveModel):
    """Shared plumbing: flatten in raster order and un-flatten the parameters."""

    def _setup_head(self, head: str | None, mixtures: int) -> None:
        head = head or default_head(self.levels)
        self.head = make_head(head, self.levels, mixtures)
        self.hparams.update(head=head, mixtures=mixtures)

    def flatten(self, xu: torch.Tensor) -> torch.Tensor:
        return xu.permute(0, 2, 3, 1).reshape(xu.shape[0], -1)

    def unflatten_params(self, out: torch.Tensor) -> torch.Tensor:
        c, h, w = self.image_shape
        p = self.head.num_params
        return out.reshape(out.shape[0], h, w, c, p).permute(0, 3, 4, 1, 2)

    def dim_index(self, r: int, c: int, ch: int) -> int:
        _, _, w = self.image_shape
        return (r * w + c) * self.image_shape[0] + ch


class FVSBN(_Flat):
    """Fully visible sigmoid belief net: one (multinomial) logistic regression per dimension on
    all previous dimensions."""

    model_name = "fvsbn"

    def __init__(self, image_shape, levels=256, num_classes=0, head=None, mixtures=1) -> None:
        super().__init__(image_shape, levels, num_classes)
        self._setup_head(head, mixtures)
        d, p = self.num_dims, self.head.num_params
        deg = torch.arange(d)
        mask = (deg.unsqueeze(0) < deg.unsqueeze(1)).repeat_interleave(p, dim=0)
        self.linear = MaskedLinear(d, d * p, mask)
        with torch.no_grad():  # small random weights: a causality check sees every connection
            self.linear.weight.mul_(0.1)
        self.cond_bias = nn.Embedding(num_classes, d * p) if num_classes else None
        if self.cond_bias is not None:
            nn.init.zeros_(self.cond_bias.weight)

    def forward_params(self, xu, cond):
        out = self.linear(self.flatten(xu))
        if self.cond_bias is not None:
            out = out + self.cond_bias(cond)
        return self.unflatten_params(out)

    def cached_session(self, x, cond):
        return _FVSBNCache(self, x, cond)


class _FVSBNCache(SamplingSession):
    """Only dimension i's row of the weight matrix is evaluated at step i."""

    def __init__(self, m: FVSBN, x, cond) -> None:
        self.m, self.p = m, m.head.num_params
        self.x = m.flatten(to_unit(x, m.levels))
        self.w = m.linear.masked_weight()
        self.b = m.linear.bias.unsqueeze(0).expand(x.shape[0], -1)
        if m.cond_bias is not None:
            self.b = self.b + m.cond_bias(cond)

    def params(self, r, c, ch):
        i = self.m.dim_index(r, c, ch)
        sl = slice(i * self.p, (i + 1) * self.p)
        return torch.addmm(self.b[:, sl], self.x, self.w[sl].t())

    def update(self, r, c, ch, value):
        self.x[:, self.m.dim_index(r, c, ch)] = to_unit(value, self.m.levels)


class NADE(_Flat):
    """Neural autoregressive density estimator: hidden units shared across dimensions, each
    dimension's hidden state a running sum over the previous ones (O(D*H) per image)."""

    model_name = "nade"

    def __init__(
        self, image_shape, levels=256, num_classes=0, hidden=256, head=None, mixtures=2
    ) -> None:
        super().__init__(image_shape, levels, num_classes)
        self._setup_head(head, mixtures)
        self.hparams["hidden"] = hidden
        d, p = self.num_dims, self.head.num_params
        self.w = nn.Parameter(torch.randn(hidden, d) * (1.0 / d**0.5))
        self.c = nn.Parameter(torch.zeros(hidden))
        self.v = nn.Parameter(torch.randn(d, p, hidden) * (1.0 / hidden**0.5))
        self.b = nn.Parameter(torch.zeros(d, p))
        self.cond_hidden = nn.Embedding(num_classes, hidden) if num_classes else None

    def _hidden_bias(self, cond, n):
        cb = self.c.unsqueeze(0).expand(n, -1)
        return cb + self.cond_hidden(cond) if self.cond_hidden is not None else cb

    def forward_params(self, xu, cond):
        x = self.flatten(xu)  # (N, D)
        contrib = x.unsqueeze(-1) * self.w.t().unsqueeze(0)  # (N, D, H)
        a = torch.cumsum(contrib, dim=1) - contrib  # exclusive: only j < i
        a = a + self._hidden_bias(cond, x.shape[0]).unsqueeze(1)
        out = torch.einsum("ndh,dph->ndp", torch.sigmoid(a), self.v) + self.b
        return self.unflatten_params(out.reshape(x.shape[0], -1))

    def cached_session(self, x, cond):
        return _NADECache(self, x, cond)


class _NADECache(SamplingSession):
    """Keeps the running pre-activation a_i; each step adds one column of W."""

    def __init__(self, m: NADE, x, cond) -> None:
        self.m = m
        self.a = m._hidden_bias(cond, x.shape[0]).clone()

    def params(self, r, c, ch):
        i = self.m.dim_index(r, c, ch)
        return torch.addmm(self.m.b[i], torch.sigmoid(self.a), self.m.v[i].t())

    def update(self, r, c, ch, value):
        i = self.m.dim_index(r, c, ch)
        self.a = self.a + to_unit(value, self.m.levels).unsqueeze(1) * self.m.w[:, i]


class MADE(_Flat):
    """Masked autoencoder for distribution estimation with legal masks.

    Hidden unit k of degree m(k) in [1, D-1] sees inputs of degree <= m(k); the output for
    dimension i (degree i+1) sees hidden units of degree <= i, and a masked direct input->output
    connection. With ``num_masks > 1`` training cycles through that many connectivities
    (order-agnostic in the hidden units, the input order stays raster); evaluation and sampling
    use mask ``eval_mask`` (0 unless set).
    """

    model_name = "made"

    def __init__(
        self,
        image_shape,
        levels=256,
        num_classes=0,
        hidden: list[int] | tuple[int, ...] = (512, 512),
        num_masks: int = 1,
        mask_seed: int = 0,
        head=None,
        mixtures=2,
    ) -> None:
        super().__init__(image_shape, levels, num_classes)
        self._setup_head(head, mixtures)
        hidden = [int(h) for h in hidden]
        if not hidden or num_masks < 1:
            raise ValueError(f"MADE: need >= 1 hidden layer and num_masks >= 1, got {hidden}")
        self.hparams.update(hidden=hidden, num_masks=num_masks, mask_seed=mask_seed)
        d, p = self.num_dims, self.head.num_params
        sizes = [d, *hidden]
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, torch.ones(b, a)) for a, b in itertools.pairwise(sizes)
        )
        self.out = MaskedLinear(hidden[-1], d * p, torch.ones(d * p, hidden[-1]))
        deg = torch.arange(d)
        direct = (deg.unsqueeze(0) < deg.unsqueeze(1)).repeat_interleave(p, dim=0)
        self.direct = MaskedLinear(d, d * p, direct, bias=False)
        self.cond_hidden = nn.Embedding(num_classes, hidden[0]) if num_classes else None
        self.register_buffer("mask_counter", torch.zeros((), dtype=torch.long))
        self.current_mask = -1
        self.eval_mask = 0
        self.set_mask(0)

    def set_mask(self, k: int) -> None:
        """Install connectivity ``k`` (deterministic in ``mask_seed`` and ``k``)."""
        if k == self.current_mask:
            return
        d, p = self.num_dims, self.head.num_params
        gen = torch.Generator().manual_seed(int(self.hparams["mask_seed"]) * 7919 + int(k))
        prev = torch.arange(1, d + 1)  # input degrees 1..D
        top = max(d - 1, 1)
        for layer in self.layers:
            low = min(int(prev.min()), top)
            deg = torch.randint(low, top + 1, (layer.out_features,), generator=gen)
            layer.set_mask(prev.unsqueeze(0) <= deg.unsqueeze(1))
            prev = deg
        out_deg = torch.arange(1, d + 1).repeat_interleave(p)
        self.out.set_mask(prev.unsqueeze(0) < out_deg.unsqueeze(1))
        self.current_mask = k

    def train(self, mode: bool = True):
        if not mode:
            self.set_mask(self.eval_mask)
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        res = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.current_mask = -1
        self.set_mask(self.eval_mask)
        return res

    @property
    def splittable_loss(self) -> bool:
        return int(self.hparams["num_masks"]) == 1  # else every call takes the next mask

    def loss(self, x, cond=None, generator=None):
        n = int(self.hparams["num_masks"])
        # reading the counter is a graph break under torch.compile: only when there is a choice
        self.set_mask(int(self.mask_counter) % n if n > 1 else 0)
        self.mask_counter += 1
        return super().loss(x, cond, generator)

    def _hidden_last(self, first_pre: torch.Tensor) -> torch.Tensor:
        h = F.relu(first_pre)
        for layer in self.layers[1:]:
            h = F.relu(layer(h))
        return h

    def _first_pre(self, x, cond):
        a = self.layers[0](x)
        return a + self.cond_hidden(cond) if self.cond_hidden is not None else a

    def forward_params(self, xu, cond):
        if not self.training:
            self.set_mask(self.eval_mask)
        x = self.flatten(xu)
        h = self._hidden_last(self._first_pre(x, cond))
        return self.unflatten_params(self.out(h) + self.direct(x))

    def cached_session(self, x, cond):
        return _MADECache(self, x, cond)


class _MADECache(SamplingSession):
    """First-layer pre-activation updated by one column per step; only dim i's outputs."""

    def __init__(self, m: MADE, x, cond) -> None:
        m.set_mask(m.eval_mask)
        self.m, self.p = m, m.head.num_params
        self.x = m.flatten(to_unit(x, m.levels))
        self.w1 = m.layers[0].masked_weight()
        self.a = m._first_pre(torch.zeros_like(self.x), cond)
        self.a = self.a + self.x @ self.w1.t()
        self.wo, self.bo = m.out.masked_weight(), m.out.bias
        self.wd = m.direct.masked_weight()

    def params(self, r, c, ch):
        i = self.m.dim_index(r, c, ch)
        sl = slice(i * self.p, (i + 1) * self.p)
        h = self.m._hidden_last(self.a)
        return torch.addmm(self.bo[sl], h, self.wo[sl].t()) + self.x @ self.wd[sl].t()

    def update(self, r, c, ch, value):
        i = self.m.dim_index(r, c, ch)
        v = to_unit(value, self.m.levels)
        self.a = self.a + (v - self.x[:, i]).unsqueeze(1) * self.w1[:, i]
        self.x[:, i] = v
