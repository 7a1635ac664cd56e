"""Augmentations that use the labels synthetic data carries ("3D augmentations") plus classic
domain randomization.

Every op is a callable ``op(sample, rng) -> (rgb, realized)`` on a sample dict with ``rgb``
(H, W, 3 or H, W uint8), ``instance`` (H, W uint16), ``depth`` (H, W float32 metres or None),
``objects`` (objects.parquet rows) and ``classes`` (manifest classes). Only the image changes:
geometry, masks and depth stay valid, so every label remains exact. ``realized`` holds the
parameters actually drawn (recorded per sample, so results can be sliced by them). Randomness
comes only from the ``numpy.random.Generator`` passed in.

Ops (``{op: NAME, ...params}`` in YAML):

- ``recolor``: set the hue (and optionally saturation) of a selected class/instance's pixels,
  keeping their shading; ``hue: [lo, hi]`` in turns (0..1).
- ``hue_shift``: shift the hue of a selected material/instance by ``shift: [lo, hi]`` turns;
  on grayscale images both scale brightness instead (``gain``).
- ``depth_of_field``: keep a depth band sharp and blur the rest in proportion to the distance
  from the band (focus on the target object by default).
- ``noise``, ``blur``, ``color_jitter``: classic randomization over the whole image.

Selectors (``select:``): ``{class: NAME}``, ``{instance: ID}``, ``{where: {column: value}}``
(matches objects.parquet attributes, e.g. ``{where: {texture: wood}}`` = a material),
``{target: true}`` (the classification target object), or omitted = every labelled object.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Sample = dict[str, Any]
Realized = dict[str, Any]


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _range(v: float | Sequence[float], name: str) -> tuple[float, float]:
    if _number(v):
        return (float(v), float(v))  # type: ignore[arg-type]
    if not isinstance(v, list | tuple) or len(v) != 2 or not all(map(_number, v)) or v[0] > v[1]:
        raise ValueError(f"{name}: expected a number or [lo, hi] with lo ≤ hi, got {v!r}")
    return (float(v[0]), float(v[1]))


def _draw(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return r[0] if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def _check_select(sel: Any, where: str = "select") -> None:
    if not isinstance(sel, dict):
        raise ValueError(f"{where}: got {sel!r}, expected a mapping (class/instance/where/target)")
    unknown = set(sel) - {"class", "instance", "where", "target"}
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {sorted(unknown)}; use class/instance/where/target"
        )


def select_mask(sample: Sample, select: dict[str, Any] | None) -> np.ndarray:
    """Boolean mask of the pixels of the objects ``select`` picks (see module docstring)."""
    from synthcv.targets import target_object

    inst = np.asarray(sample["instance"])
    objects = sample.get("objects") or []
    sel = select or {}
    _check_select(sel)
    if "instance" in sel:
        ids = [int(sel["instance"])]
    elif sel.get("target"):
        t = target_object(objects)
        ids = [] if t is None else [int(t["instance_id"])]
    else:
        ids = []
        for o in objects:
            if o.get("is_distractor") and "where" not in sel:
                continue
            if "class" in sel and str(o.get("class_name")) != str(sel["class"]):
                continue
            if "where" in sel and any(o.get(k) != v for k, v in sel["where"].items()):
                continue
            ids.append(int(o["instance_id"]))
    return np.isin(inst, np.array(ids, dtype=inst.dtype)) if ids else np.zeros(inst.shape, bool)


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    from matplotlib.colors import rgb_to_hsv

    return rgb_to_hsv(rgb)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb

    return hsv_to_rgb(hsv)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


@dataclass
class Recolor:
    """New hue (turns) for the selected pixels; shading (value) is kept so 3D form survives."""

    hue: tuple[float, float] = (0.0, 1.0)
    saturation: tuple[float, float] | None = None
    gain: tuple[float, float] = (0.6, 1.4)  # grayscale images: brightness factor instead
    select: dict[str, Any] | None = None
    name: str = "recolor"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        rgb = np.asarray(sample["rgb"])
        m = select_mask(sample, self.select)
        if rgb.ndim == 2:
            return _gray_gain(rgb, m, self.gain, rng)
        h = _draw(rng, self.hue)
        hsv = _rgb_to_hsv(rgb[..., :3].astype(np.float32) / 255.0)
        px = hsv[m]
        px[:, 0] = h % 1.0
        real: Realized = {"hue": h % 1.0}
        if self.saturation is not None:
            s = _draw(rng, self.saturation)
            px[:, 1] = s
            real["saturation"] = s
        hsv[m] = px
        out = rgb.copy()
        out[..., :3] = _u8(_hsv_to_rgb(hsv) * 255.0)
        return out, real


def _gray_gain(
    gray: np.ndarray, mask: np.ndarray, gain: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, Realized]:
    """Grayscale has no hue: colour ops become a brightness gain on the selected pixels."""
    g = _draw(rng, gain)
    out = gray.astype(np.float32)
    out[mask] *= g
    return _u8(out), {"gain": g}


@dataclass
class HueShift:
    """Rotate the hue of the selected pixels by a drawn amount (a material's colour change)."""

    shift: tuple[float, float] = (-0.5, 0.5)
    gain: tuple[float, float] = (0.6, 1.4)
    select: dict[str, Any] | None = None
    name: str = "hue_shift"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        rgb = np.asarray(sample["rgb"])
        m = select_mask(sample, self.select)
        if rgb.ndim == 2:
            return _gray_gain(rgb, m, self.gain, rng)
        d = _draw(rng, self.shift)
        hsv = _rgb_to_hsv(rgb[..., :3].astype(np.float32) / 255.0)
        hsv[..., 0][m] = (hsv[..., 0][m] + d) % 1.0
        out = rgb.copy()
        out[..., :3] = _u8(_hsv_to_rgb(hsv) * 255.0)
        return out, {"shift": d}


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return img.astype(np.float32)
    s = (sigma, sigma, 0) if img.ndim == 3 else sigma
    return gaussian_filter(img.astype(np.float32), s, mode="nearest")


@dataclass
class DepthOfField:
    """Thin-lens-like blur from the depth map: pixels inside ``[near, far]`` stay sharp, others
    get sigma = ``per_metre`` × distance to the band (capped at ``max_sigma``). The band is
    ``focus ± band/2``; ``focus: target`` (default) focuses on the target object's median
    depth. Nothing-hit pixels (depth 0) count as infinitely far (max blur). Implemented as a
    per-pixel choice among ``levels`` pre-blurred copies — exact at the levels, fast always."""

    focus: float | str = "target"
    band: tuple[float, float] = (0.05, 0.05)
    per_metre: tuple[float, float] = (2.0, 2.0)
    max_sigma: float = 2.0
    levels: int = 6
    name: str = "depth_of_field"
    needs_depth: bool = field(default=True, init=False)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        from synthcv.targets import target_object

        depth = sample.get("depth")
        if depth is None:
            raise ValueError("depth_of_field needs the depth modality (outputs: depth: true)")
        rgb = np.asarray(sample["rgb"])
        depth = np.asarray(depth, np.float32)
        if self.focus == "target":
            t = target_object(sample.get("objects") or [])
            hit = depth > 0
            if t is not None:
                m = (np.asarray(sample["instance"]) == int(t["instance_id"])) & hit
            else:
                m = hit
            focus = float(np.median(depth[m])) if m.any() else 1.0
        else:
            focus = float(self.focus)
        band = _draw(rng, self.band)
        k = _draw(rng, self.per_metre)
        near, far = focus - band / 2, focus + band / 2
        dist = np.where(
            depth <= 0, np.inf, np.maximum(near - depth, 0) + np.maximum(depth - far, 0)
        )
        sigma = np.minimum(k * dist, self.max_sigma)
        lv = np.linspace(0, self.max_sigma, self.levels)
        idx = np.abs(sigma[..., None] - lv).argmin(-1)
        out = np.zeros(rgb.shape, np.float32)
        for j, s in enumerate(lv):
            sel = idx == j
            if sel.any():
                out[sel] = _blur(rgb, s)[sel]
        return _u8(out), {"focus": focus, "band": band, "per_metre": k}


@dataclass
class Noise:
    sigma: tuple[float, float] = (0.0, 8.0)  # in 8-bit levels
    name: str = "noise"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        rgb = np.asarray(sample["rgb"])
        s = _draw(rng, self.sigma)
        return _u8(rgb.astype(np.float32) + rng.normal(0, s, rgb.shape)), {"sigma": s}


@dataclass
class Blur:
    sigma: tuple[float, float] = (0.0, 1.0)
    name: str = "blur"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        s = _draw(rng, self.sigma)
        return _u8(_blur(np.asarray(sample["rgb"]), s)), {"sigma": s}


@dataclass
class ColorJitter:
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: tuple[float, float] = (0.8, 1.2)
    saturation: tuple[float, float] = (0.8, 1.2)
    hue: tuple[float, float] = (-0.05, 0.05)
    name: str = "color_jitter"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        img = np.asarray(sample["rgb"]).astype(np.float32) / 255.0
        b, c = _draw(rng, self.brightness), _draw(rng, self.contrast)
        s, h = _draw(rng, self.saturation), _draw(rng, self.hue)
        img = img * b
        img = (img - img.mean()) * c + img.mean()
        if img.ndim == 3:
            hsv = _rgb_to_hsv(np.clip(img[..., :3], 0, 1))
            hsv[..., 0] = (hsv[..., 0] + h) % 1.0
            hsv[..., 1] = np.clip(hsv[..., 1] * s, 0, 1)
            img = _hsv_to_rgb(hsv)
        return _u8(np.clip(img, 0, 1) * 255.0), {
            "brightness": b,
            "contrast": c,
            "saturation": s,
            "hue": h,
        }


OPS: dict[str, type] = {
    "recolor": Recolor,
    "hue_shift": HueShift,
    "depth_of_field": DepthOfField,
    "noise": Noise,
    "blur": Blur,
    "color_jitter": ColorJitter,
}


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def build_op(cfg: dict[str, Any], where: str = "augment") -> Callable[..., Any]:
    """One op from ``{op: NAME, ...}``; a bad name or parameter names the path and options.

    ``where`` is the op's path in its config (``augment[0]``); ``""`` names bare keys."""
    if not isinstance(cfg, dict):
        raise ValueError(
            f"{where or 'op'}: got {cfg!r}, expected a mapping like {{op: blur, sigma: 1}}"
        )
    cfg = dict(cfg)
    name = cfg.pop("op", None)
    if name not in OPS:
        raise ValueError(f"{_at(where, 'op')}: got {name!r}, expected one of {sorted(OPS)}")
    cls = OPS[name]
    fields = set(cls.__dataclass_fields__) - {"name", "needs_depth"}
    unknown = set(cfg) - fields
    if unknown:
        raise ValueError(
            f"{f'{where} ({name})' if where else name}: unknown parameters {sorted(unknown)}; "
            f"allowed: {sorted(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for k, v in cfg.items():
        default = cls.__dataclass_fields__[k].default
        if isinstance(default, tuple) and len(default) == 2:
            kwargs[k] = _range(v, _at(where, k))
        else:
            kwargs[k] = v
    if kwargs.get("select") is not None:
        _check_select(kwargs["select"], _at(where, "select"))
    return cls(**kwargs)


@dataclass
class Pipeline:
    """Ops applied in order; realized params come back as ``augment.<op>.<param>`` keys (the
    op's list position is added when the same op appears twice)."""

    ops: list[Any]

    @property
    def needs_depth(self) -> bool:
        return any(getattr(o, "needs_depth", False) for o in self.ops)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, Realized]:
        s = dict(sample)
        realized: Realized = {}
        names = [o.name for o in self.ops]
        for j, op in enumerate(self.ops):
            s["rgb"], r = op(s, rng)
            key = op.name if names.count(op.name) == 1 else f"{op.name}{j}"
            for k, v in r.items():
                realized[f"augment.{key}.{k}"] = v
        return s["rgb"], realized


def build_pipeline(cfgs: Sequence[dict[str, Any]]) -> Pipeline:
    if not isinstance(cfgs, list | tuple):
        raise ValueError(f"augment: expected a list of ops, got {type(cfgs).__name__}")
    return Pipeline([build_op(c, f"augment[{i}]") for i, c in enumerate(cfgs)])
