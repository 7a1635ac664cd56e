"""Label-aware ("3D") and classic augmentations for synthcv datasets.

Use them as training transforms (a data source's ``augment:`` list, see
:mod:`synthcv.tasks.data`) or offline with ``synthcv augment DIR --out DIR2``
(:func:`synthcv.augment.dataset.augment_dataset`). Ops live in :mod:`synthcv.augment.ops`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["augment_dataset", "build_pipeline"]


def build_pipeline(cfgs: Any) -> Any:
    from synthcv.augment.ops import build_pipeline as _build

    return _build(cfgs)


def augment_dataset(src: Any, out: Any, ops: Any, **kwargs: Any) -> Any:
    from synthcv.augment.dataset import augment_dataset as _aug

    return _aug(src, out, ops, **kwargs)
