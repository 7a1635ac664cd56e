"""Image textures by short name (those bundled with ``pybullet_data``) or by file path."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from synthcv.assets._common import AssetError, did_you_mean

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tga", ".tif", ".tiff")
# Sub-folders whose images are surface textures (others hold robot decals and heightmaps).
_TEXTURE_DIRS = ("table", "tray", "jenga", "domino")


@functools.cache
def _catalog() -> dict[str, Path]:
    from synthcv.assets.pybullet_assets import data_root

    root = data_root()
    out: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file():
            out[p.stem] = p
    for d in _TEXTURE_DIRS:
        for p in sorted((root / d).glob("*")):
            if p.suffix.lower() in _IMAGE_SUFFIXES:
                out[p.stem if p.stem not in out else f"{d}/{p.stem}"] = p
    return out


def available_textures() -> list[str]:
    """Short names accepted by :func:`texture_path` (checker_blue, checker_grid, tex256, ...)."""
    return sorted(_catalog())


def texture_path(name: str) -> str:
    """Absolute path of a texture: a pybullet_data short name, else an existing image file.

    Short names may carry their extension ("checker_blue.png"); anything else is a path.
    """
    if not isinstance(name, str | os.PathLike) or not str(name):
        raise AssetError(f"texture got {name!r}, expected a texture name or an image path")
    text = str(name)
    catalog = _catalog()
    stem = os.path.splitext(text)[0] if text.lower().endswith(_IMAGE_SUFFIXES) else text
    if stem in catalog:
        return str(catalog[stem])
    path = Path(os.path.expanduser(text)).resolve()
    if path.is_file():
        return str(path)
    raise AssetError(
        f"texture {text!r}: not a bundled texture{did_you_mean(stem, catalog)} "
        f"(available: {sorted(catalog)}) and no such file: {path}"
    )
