"""Classifier files: a ``SmallCNN`` checkpoint that says what it is, and one loader for every
way a classifier is referred to on the command line.

``synthcv monitor --model`` and ``synthcv loop`` take a model the way ``synthcv audit`` does:
a checkpoint file, an experiment output directory holding ``model.pt``, a bare state dict (as
``synthcv compare`` caches), or an MLflow model URI (``runs:/ID/model``,
``models:/NAME@champion``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from synthcv.fileio import atomic_path

CHECKPOINT_KIND = "synthcv-classifier"


def save_classifier(model: Any, path: str | Path) -> Path:
    """Write a SmallCNN as ``{kind, num_classes, in_channels, width, state}``, atomically."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "kind": CHECKPOINT_KIND,
        "num_classes": int(model.num_classes),
        "in_channels": int(model.in_channels),
        "width": int(state["features.0.0.weight"].shape[0]),
        "state": state,
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    return path


def _from_state(state: dict[str, Any]) -> Any:
    from synthcv.tasks.model import SmallCNN

    try:
        w = state["features.0.0.weight"]
        model = SmallCNN(int(state["head.5.weight"].shape[0]), int(w.shape[1]), int(w.shape[0]))
        model.load_state_dict(state)
    except (KeyError, RuntimeError, AttributeError, IndexError) as exc:
        raise ValueError(f"not a SmallCNN state dict ({str(exc).splitlines()[0]})") from None
    return model.eval()


def load_classifier(ref: str | os.PathLike[str]) -> tuple[Any, str]:
    """(model in eval mode on the CPU, a description) for any form in the module docstring.
    A missing file raises FileNotFoundError, a file of another kind ValueError."""
    import torch

    ref = os.fspath(ref)
    if ref.startswith(("runs:/", "models:/")):
        from synthcv.tracking import load_logged_torch_model

        model = load_logged_torch_model(ref)
        if not hasattr(model, "in_channels"):
            raise ValueError(
                f"{ref}: not a synthcv classifier logged as a module (a pt2 graph or another "
                "kind); log it with serialization_format='pickle'"
            )
        return model.eval(), f"MLflow model {ref}"
    p = Path(ref)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise FileNotFoundError(
            f"model not found: {ref} (expected a .pt checkpoint or state dict, a directory "
            "holding model.pt, or an MLflow URI runs:/... or models:/...)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise ValueError(f"{p}: not a torch checkpoint ({str(exc).splitlines()[0]})") from None
    if isinstance(obj, dict) and obj.get("kind") == CHECKPOINT_KIND:
        return _from_state(obj["state"]), f"SmallCNN checkpoint {p}"
    if isinstance(obj, dict) and "kind" in obj:
        raise ValueError(f"{p}: a {obj['kind']!r} checkpoint, expected a classifier")
    if isinstance(obj, dict):
        try:
            return _from_state(obj), f"SmallCNN state dict {p}"
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
    raise ValueError(f"{p}: expected a classifier checkpoint, got {type(obj).__name__}")
