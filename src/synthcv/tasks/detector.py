"""A compact multi-head detector that trains on two CPU cores in minutes at 64–256 px.

Backbone: four stride-2 stages of residual conv blocks (stride 16 at the bottom), then a
feature-pyramid decoder back up to stride 4, where every head reads the same features. The
heads follow :mod:`synthcv.tasks.detector_targets`: class heatmaps, centre offset and box size
(detection), keypoint offsets and heatmaps (keypoints), semantic logits and centre vectors
(semantic and instance segmentation). Only the heads a run asks for are built, so one model can
carry several tasks. ~0.4 M parameters at ``width=32``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TASKS = ("detection", "instance_segmentation", "semantic_segmentation", "keypoints")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = _conv(cin, cout, stride)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b(self.a(x)) + self.skip(x))


def _head(cin: int, cout: int, bias: float = 0.0) -> nn.Sequential:
    last = nn.Conv2d(cin, cout, 1)
    nn.init.constant_(last.bias, bias)
    return nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1), nn.ReLU(inplace=True), last)


class DenseDetector(nn.Module):
    """(N, C, H, W) float in [0, 1], H and W multiples of 16 → dict of head outputs at stride 4
    (segmentation heads upsampled to full resolution). The heatmaps are logits in training
    mode and probabilities in eval mode, so :func:`~synthcv.tasks.detector_targets.decode`
    reads an eval-mode output directly."""

    stride = 4

    def __init__(
        self,
        num_classes: int,
        tasks: tuple[str, ...] = ("detection",),
        num_keypoints: int = 0,
        width: int = 32,
        in_channels: int = 3,
        categories: list[str] | None = None,
        keypoint_names: dict[str, list[str]] | None = None,
        input_size: int = 128,
    ) -> None:
        super().__init__()
        unknown = set(tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; expected some of {TASKS}")
        self.tasks = tuple(tasks)
        self.num_classes = num_classes
        self.num_keypoints = num_keypoints if "keypoints" in tasks else 0
        self.in_channels = in_channels
        self.width = width
        self.input_size = input_size
        self.categories = list(categories or [str(i) for i in range(num_classes)])
        self.keypoint_names = dict(keypoint_names or {})
        w = width
        self.stem = _conv(in_channels, w // 2, 2)  # /2
        self.s4 = _Residual(w // 2, w, 2)  # /4
        self.s8 = _Residual(w, 2 * w, 2)  # /8
        self.s16 = nn.Sequential(_Residual(2 * w, 3 * w, 2), _Residual(3 * w, 3 * w, 1))  # /16
        self.lat8 = nn.Conv2d(2 * w, 3 * w, 1)
        self.lat4 = nn.Conv2d(w, 3 * w, 1)
        self.smooth = _conv(3 * w, 2 * w)
        f = 2 * w
        prior = -math.log((1 - 0.1) / 0.1)  # start every heatmap at p = 0.1 (CenterNet: -2.19)
        needs_boxes = bool({"detection", "instance_segmentation", "keypoints"} & set(tasks))
        if needs_boxes:
            self.heatmap = _head(f, num_classes, prior)
            self.offset = _head(f, 2)
            self.size = _head(f, 2)
        if self.num_keypoints:
            self.kp_offset = _head(f, 2 * self.num_keypoints)
            self.kp_heatmap = _head(f, self.num_keypoints, prior)
        if {"semantic_segmentation", "instance_segmentation"} & set(tasks):
            # Masks need full-resolution detail (a pen stroke is 2–4 px wide): the stride-4
            # features are refined with the stem's stride-2 features, then with the image.
            self.semantic_2 = _conv(f + w // 2, w // 2)
            self.semantic_1 = _conv(w // 2 + in_channels, w // 2)
            self.semantic = nn.Conv2d(w // 2, num_classes + 1, 1)
        if "instance_segmentation" in tasks:
            self.centre_vec = _head(f, 2)

    def config(self) -> dict[str, object]:
        """What rebuilds this model (stored beside the weights in a checkpoint)."""
        return {
            "num_classes": self.num_classes,
            "tasks": list(self.tasks),
            "num_keypoints": self.num_keypoints,
            "width": self.width,
            "in_channels": self.in_channels,
            "categories": self.categories,
            "keypoint_names": self.keypoint_names,
            "input_size": self.input_size,
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x - 0.5
        c2 = self.stem(x)
        c4 = self.s4(c2)
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        p8 = self.lat8(c8) + F.interpolate(c16, size=c8.shape[-2:], mode="nearest")
        p4 = self.lat4(c4) + F.interpolate(p8, size=c4.shape[-2:], mode="nearest")
        f = self.smooth(p4)
        out: dict[str, torch.Tensor] = {}
        full = x.shape[-2:]
        if hasattr(self, "heatmap"):
            heat = self.heatmap(f)
            out["heatmap"] = heat if self.training else torch.sigmoid(heat)
            out["offset"] = self.offset(f)
            # sizes in pixels: exp keeps them positive and spreads 4 px … 256 px evenly
            out["size"] = torch.exp(self.size(f).clamp(-6, 6)) * 16.0
        if hasattr(self, "kp_offset"):
            out["kp_offset"] = self.kp_offset(f) * 16.0
            kh = self.kp_heatmap(f)
            out["kp_heatmap"] = kh if self.training else torch.sigmoid(kh)
        if hasattr(self, "semantic"):
            up = F.interpolate(f, size=c2.shape[-2:], mode="bilinear", align_corners=False)
            fine = self.semantic_2(torch.cat([up, c2], 1))
            fine = F.interpolate(fine, size=full, mode="bilinear", align_corners=False)
            out["semantic"] = self.semantic(self.semantic_1(torch.cat([fine, x], 1)))
        if hasattr(self, "centre_vec"):
            out["centre_vec"] = F.interpolate(
                self.centre_vec(f) * 16.0, size=full, mode="bilinear", align_corners=False
            )
        return out


def build_detector(config: dict[str, object]) -> DenseDetector:
    return DenseDetector(**config)  # type: ignore[arg-type]
