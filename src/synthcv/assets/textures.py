"""Image textures by short name (those bundled with ``pybullet_data``) or by file path."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

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


def is_texture_file(name: Any) -> bool:
    """Whether a texture value names an image file rather than a bundled texture or a keyword
    (none, native): a path with a separator, or a name with an image suffix that is not
    bundled (``wood.png``; ``checker_blue.png`` is bundled)."""
    if not isinstance(name, str) or name.lower() in ("", "none", "native"):
        return False
    if "/" in name or "\\" in name:
        return True
    if name.lower().endswith(_IMAGE_SUFFIXES):
        return os.path.splitext(name)[0] not in _catalog()
    return False


def _shown(text: str, n: int = 80) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def texture_path(name: str) -> str:
    """Absolute path of a texture: a pybullet_data short name, else an existing image file.

    Short names may carry their extension ("checker_blue.png"). A file is named by a path
    with a separator or an image suffix (see :func:`is_texture_file`); a bare word that is not
    bundled is a typo, not a file in the working directory.
    """
    if not isinstance(name, str | os.PathLike) or not str(name):
        raise AssetError(f"texture got {name!r}, expected a texture name or an image path")
    text = str(name)
    catalog = _catalog()
    stem = os.path.splitext(text)[0] if text.lower().endswith(_IMAGE_SUFFIXES) else text
    if stem in catalog:
        return str(catalog[stem])
    if not is_texture_file(text):
        raise AssetError(
            f"texture {_shown(text)}: not a bundled texture{did_you_mean(stem[:80], catalog)} "
            f"(available: {sorted(catalog)}; an image file is a path such as ./wood.png)"
        )
    try:
        path = Path(os.path.expanduser(text)).resolve()
        found = path.is_file()
    except (OSError, ValueError, RuntimeError) as exc:
        raise AssetError(f"texture {_shown(text)}: not a usable file path ({exc})") from None
    if found:
        return str(path)
    raise AssetError(f"texture {_shown(text)}: no such file: {_shown(str(path), 200)}")


MAX_TEXTURE_PIXELS = 2**26  # 8192 x 8192


def check_texture(name: str) -> str:
    """:func:`texture_path`, and the file must be an image PIL can decode (``verify()``) of
    at most :data:`MAX_TEXTURE_PIXELS`: a text file or a truncated PNG fails here, before
    any output, instead of rendering untextured."""
    path = texture_path(name)
    st = os.stat(path)
    _verify_image(path, st.st_mtime_ns, st.st_size)
    return path


@functools.lru_cache(maxsize=256)
def _verify_image(path: str, mtime_ns: int, size: int) -> None:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                im.verify()
    except Exception as exc:  # PIL raises many types for files that are not (whole) images
        raise AssetError(
            f"texture {_shown(path, 200)}: not a readable image ({type(exc).__name__}: {exc})"
        ) from None
    if w * h > MAX_TEXTURE_PIXELS:
        raise AssetError(
            f"texture {_shown(path, 200)}: {w} × {h} pixels, more than the "
            f"{MAX_TEXTURE_PIXELS:,} a texture may have"
        )
