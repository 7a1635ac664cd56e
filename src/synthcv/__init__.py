"""synthcv: synthetic image data for computer vision.

``import synthcv`` stays light: torch, bpy, pybullet, mlflow and ray load only when used.
"""

from __future__ import annotations

from typing import Any

from synthcv._version import __version__

__all__ = ["__version__", "generate", "load_spec", "open_dataset"]


def load_spec(source: Any, **kwargs: Any):
    """Load and validate a spec from a YAML path, YAML text or a dict (see synthcv.spec)."""
    from synthcv.spec import load_spec as _load

    return _load(source, **kwargs)


def generate(spec: Any, out: Any, **kwargs: Any):
    """Render a dataset for ``spec`` into directory ``out`` (see synthcv.generate)."""
    from synthcv.pipeline import generate as _generate

    return _generate(spec, out, **kwargs)


def open_dataset(path: Any):
    """Open a dataset directory written by :func:`generate` (see synthcv.format)."""
    from synthcv.format import open_dataset as _open

    return _open(path)
