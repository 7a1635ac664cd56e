"""Random geometric warps drawn per batch (affine + elastic), shared by every task.

Classification warps the images alone; instance tasks (:mod:`synthcv.tasks.instance_warp`)
draw the same warp and move boxes, masks and keypoints with it, which is why a warp is drawn as
its parts (:meth:`Jitter.sample`) before it is turned into a sampling grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Jitter", "sampling_grid"]


@dataclass(frozen=True)
class Jitter:
    """Random warps applied per batch on the fly: affine (shift px, rotation °, scale, shear °)
    plus an optional elastic field (``elastic`` px of displacement, smoothed over
    ``elastic_sigma`` px). Label-preserving, and the classic way to widen a narrow source
    (e.g. font glyphs) towards handwriting."""

    shift: float = 2.0
    rotate: float = 10.0
    scale: float = 0.1
    shear: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 3.0
    #: ink width: each image blended toward its 3x3 grey dilation (weight > 0) or erosion
    #: (< 0), the weight uniform in [-thickness, thickness]. Classification only: it changes
    #: pixels, not geometry, so instance masks would not follow it
    thickness: float = 0.0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        theta, field = self.sample(x.shape[0], x.shape[2], x.shape[3], gen)
        x = F.grid_sample(
            x, sampling_grid(theta, field, x), padding_mode="zeros", align_corners=False
        )
        # Drawn after the warp so that thickness 0 leaves every earlier run's draws as they were.
        return self.rethicken(x, gen) if self.thickness > 0 else x

    def rethicken(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Bright strokes on a dark ground (MNIST's polarity) grow or shrink by up to one
        pixel a side; on dark ink the same draw shrinks or grows it, and the range is
        symmetric, so either polarity gets both."""
        n = x.shape[0]
        weight = (torch.rand(n, generator=gen) * 2 - 1) * self.thickness
        weight = weight.view(n, 1, 1, 1).to(x.dtype)
        dilated = F.max_pool2d(x, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
        grow, shrink = weight.clamp_min(0), (-weight).clamp_min(0)
        return x + grow * (dilated - x) + shrink * (eroded - x)

    def sample(
        self, n: int, h: int, w: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One warp per image: the affine ``theta`` (N, 2, 3) and the elastic displacement
        (N, H, W, 2) or None, both mapping output to input in ``grid_sample`` coordinates
        (instance tasks need them apart to move boxes and keypoints the same way)."""

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=gen)

        ang = torch.deg2rad(u(-self.rotate, self.rotate))
        sh = torch.tan(torch.deg2rad(u(-self.shear, self.shear)))
        s = u(1 - self.scale, 1 + self.scale)
        tx = u(-self.shift, self.shift) * 2 / w
        ty = u(-self.shift, self.shift) * 2 / h
        cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
        # Rotation·scale, then a horizontal shear (x += sh·y), in grid coordinates.
        theta = torch.stack(
            [torch.stack([cos, -sin + cos * sh, tx], 1), torch.stack([sin, cos + sin * sh, ty], 1)],
            1,
        )
        field = self._elastic_field(n, h, w, gen) if self.elastic > 0 else None
        return theta, field

    def _elastic_field(self, n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
        """Smooth random displacement (N, H, W, 2) in grid units, ~``elastic`` px in size."""
        noise = torch.rand(n, 2, h, w, generator=gen) * 2 - 1
        r = max(1, round(2 * self.elastic_sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / self.elastic_sigma) ** 2)
        k = k / k.sum()
        field = noise.reshape(n * 2, 1, h, w)
        field = F.conv2d(F.pad(field, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        field = F.conv2d(F.pad(field, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        field = field.reshape(n, 2, h, w)
        # Normalise so the typical displacement is `elastic` pixels whatever the smoothing.
        field = field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(n, 1, 1, 1)
        scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1) * self.elastic
        return (field * scale).permute(0, 2, 3, 1)


def sampling_grid(
    theta: torch.Tensor, field: torch.Tensor | None, like: torch.Tensor
) -> torch.Tensor:
    """The ``grid_sample`` grid of a warp drawn by :meth:`Jitter.sample` for images ``like``."""
    grid = F.affine_grid(theta.to(like.dtype), list(like.shape), align_corners=False)
    return grid if field is None else grid + field.to(like.dtype)
