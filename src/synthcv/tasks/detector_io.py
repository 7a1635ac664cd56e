"""Saving and loading detectors: a checkpoint (weights + what rebuilds the model) that
``synthcv audit`` and fine-tuning read, and a TorchScript export with decoding built in for
serving without synthcv."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthcv.fileio import write_bytes_atomic
from synthcv.tasks.detector import DenseDetector, build_detector

CHECKPOINT_KIND = "synthcv.detector"


def save_checkpoint(model: DenseDetector, path: str | Path) -> Path:
    buf = io.BytesIO()
    torch.save(
        {"kind": CHECKPOINT_KIND, "config": model.config(), "state": model.state_dict()}, buf
    )
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (torch.load would defer to torch.jit.load)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_checkpoint(path: str | Path) -> DenseDetector:
    p = Path(path)
    if is_torchscript(p):
        raise ValueError(f"{p}: not a synthcv detector checkpoint (a TorchScript file)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which
        raise ValueError(f"{p}: not a synthcv detector checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{p}: not a synthcv detector checkpoint")
    model = build_detector(ckpt["config"])
    model.load_state_dict(ckpt["state"])
    return model.eval()


class _Decoded(nn.Module):
    """forward(x: (N, C, S, S) float in [0, 1]) → (N, topk, 6) rows ``x, y, w, h, score,
    class index`` in input pixels: the detector with CenterNet's peak decoding inside."""

    def __init__(self, model: DenseDetector, topk: int) -> None:
        super().__init__()
        self.model = model
        self.topk = topk
        self.stride = model.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        heat = out["heatmap"]
        n, _, h, w = heat.shape
        keep = (torch.nn.functional.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
        scores, idx = (heat * keep).view(n, -1).topk(self.topk)
        classes = torch.div(idx, h * w, rounding_mode="floor")
        cell = idx % (h * w)
        ys = torch.div(cell, w, rounding_mode="floor")
        xs = cell % w
        off = out["offset"].view(n, 2, h * w).gather(2, cell.unsqueeze(1).expand(n, 2, self.topk))
        size = out["size"].view(n, 2, h * w).gather(2, cell.unsqueeze(1).expand(n, 2, self.topk))
        cx = (xs.float() + off[:, 0]) * self.stride
        cy = (ys.float() + off[:, 1]) * self.stride
        return torch.stack(
            [
                cx - size[:, 0] / 2,
                cy - size[:, 1] / 2,
                size[:, 0],
                size[:, 1],
                scores,
                classes.float(),
            ],
            -1,
        )


def export_torchscript(model: DenseDetector, path: str | Path, topk: int = 100) -> Path:
    """A TorchScript file anyone can run: boxes out, no synthcv needed; the categories and
    input size travel inside it as ``extra_files`` (``synthcv.json``)."""
    model = model.eval()
    s = model.input_size
    wrapped = _Decoded(model, topk).eval()
    meta = {"categories": model.categories, "input_size": s, "in_channels": model.in_channels}
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, yet it is what serving stacks
        # (TorchServe, Triton's PyTorch backend, LibTorch) load today.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(wrapped, torch.zeros(1, model.in_channels, s, s), strict=False)
        torch.jit.save(traced, buf, _extra_files={"synthcv.json": json.dumps(meta)})
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def load_torchscript(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The scripted module and its metadata (empty when the file was not written by synthcv)."""
    extra = {"synthcv.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["synthcv.json"]) if extra["synthcv.json"] else {}
    return module.eval(), meta
