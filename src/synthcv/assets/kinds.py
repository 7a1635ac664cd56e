"""The registry of asset kinds: everything the rest of synthcv knows about a kind, in one place.

An asset dict has exactly one *kind key* (``primitive``, ``pybullet``, ``mesh``, ``glyph``).
Each kind lives in its own module, which declares one :class:`AssetKind` named ``KIND``:
how to build its mesh, what else its cache key depends on, its native texture, how preflight
checks it and which per-object factors the sampler records for it. ``build_mesh``,
``native_texture``, preflight, the sampler and ``spec.ASSET_KINDS`` all ask this registry.

Adding a kind: write ``synthcv/assets/<kind>.py`` with ``KIND = AssetKind(...)`` and add one
line to :data:`BUILTIN` (key → module). Modules are imported on first use of their kind, so a
kind whose builder needs a heavy library must import it inside its functions, as the four
built-ins do. Code outside the package (tests, plugins) can :func:`register` a kind at run time.

This module imports nothing heavy and no kind module at import time.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthcv.scene import Mesh

Asset = Mapping[str, Any]

# key → module holding ``KIND``; the order is the order of ``spec.ASSET_KINDS`` and of messages.
BUILTIN: dict[str, str] = {
    "primitive": "synthcv.assets.primitives",
    "pybullet": "synthcv.assets.pybullet_assets",
    "mesh": "synthcv.assets.meshfile",
    "glyph": "synthcv.assets.glyphs",
    "person": "synthcv.assets.person",
}


def _no_texture(asset: Asset) -> str | None:
    return None


def _no_factors(asset: Asset, mesh: Mesh) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class AssetKind:
    """What synthcv needs to know about one kind of asset.

    - ``key``: the kind key of the realized asset dict (``{key: value, ...options}``).
    - ``build(asset) -> Mesh``: build the mesh (end in ``_common.finalize``); raise AssetError.
    - ``cache_key(asset) -> tuple``: extra hashable parts of the mesh cache key besides the
      dict itself (a file's mtime and size, so edited files are re-read); None: the dict alone.
    - ``native_texture(asset) -> str | None``: the image the asset's own material uses
      (``texture: native``); None if the kind has none.
    - ``check(asset)``: the preflight check of one realized variant (every categorical value
      of the spec is tried); raise AssetError/ValueError/OSError. None: preflight builds the
      mesh.
    - ``factors(asset, mesh) -> dict``: per-object attributes recorded in objects.parquet next
      to the generic ones (asset, scale, colour, material), e.g. ``glyph.font``.
    """

    key: str
    build: Callable[[Asset], Mesh]
    cache_key: Callable[[Asset], tuple[Hashable, ...]] | None = None
    native_texture: Callable[[Asset], str | None] = _no_texture
    check: Callable[[Asset], None] | None = None
    factors: Callable[[Asset, Mesh], dict[str, Any]] = _no_factors


_registered: dict[str, AssetKind] = {}  # kinds added at run time, in registration order
_loaded: dict[str, AssetKind] = {}  # built-in kinds already imported
_lock = threading.Lock()


def names() -> tuple[str, ...]:
    """Every kind key: the built-ins in :data:`BUILTIN` order, then registered ones."""
    return (*BUILTIN, *(k for k in _registered if k not in BUILTIN))


def get(key: str) -> AssetKind:
    """The kind registered under ``key`` (importing its module on first use)."""
    if key in _registered:
        return _registered[key]
    kind = _loaded.get(key)
    if kind is not None:
        return kind
    if key not in BUILTIN:
        from synthcv.assets._common import AssetError, did_you_mean

        raise AssetError(
            f"unknown asset kind {key!r}{did_you_mean(key, names())}; expected one of "
            f"{list(names())}"
        )
    kind = importlib.import_module(BUILTIN[key]).KIND
    if not isinstance(kind, AssetKind) or kind.key != key:
        raise TypeError(f"{BUILTIN[key]}.KIND must be an AssetKind with key {key!r}, got {kind!r}")
    with _lock:
        return _loaded.setdefault(key, kind)


def all_kinds() -> list[AssetKind]:
    """Every kind, in :func:`names` order (imports every kind module)."""
    return [get(k) for k in names()]


def kind_key(asset: Asset) -> str:
    """The one kind key present in ``asset``; AssetError when there is none or several."""
    found = [k for k in names() if k in asset]
    if len(found) != 1:
        from synthcv.assets._common import AssetError

        raise AssetError(
            f"asset {dict(asset)!r}: expected exactly one of {list(names())}, got {found or 'none'}"
        )
    return found[0]


def kind_of(asset: Asset) -> AssetKind:
    """The :class:`AssetKind` of a realized asset dict."""
    return get(kind_key(asset))


def register(kind: AssetKind, *, replace: bool = False) -> AssetKind:
    """Add a kind at run time (a built-in key only with ``replace=True``)."""
    if not isinstance(kind, AssetKind):
        raise TypeError(f"register() takes an AssetKind, got {type(kind).__name__}")
    if not replace and (kind.key in BUILTIN or kind.key in _registered):
        raise ValueError(f"asset kind {kind.key!r} is already registered")
    with _lock:
        _registered[kind.key] = kind
    return kind


def unregister(key: str) -> None:
    """Remove a kind added with :func:`register` (built-ins come back if it replaced one)."""
    with _lock:
        _registered.pop(key, None)


@contextmanager
def registered(kind: AssetKind, *, replace: bool = False) -> Iterator[AssetKind]:
    """``with registered(kind):`` the kind exists inside the block only (tests)."""
    previous = _registered.get(kind.key)
    register(kind, replace=replace)
    try:
        yield kind
    finally:
        with _lock:
            if previous is None:
                _registered.pop(kind.key, None)
            else:
                _registered[kind.key] = previous
