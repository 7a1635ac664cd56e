"""Check a spec's external resources (assets, fonts, textures, mesh files) before any output.

Schema validation cannot know that a font lacks a character or a texture file is missing, and
those would otherwise surface mid-run. Every value of a categorical choice is tried, so a
typo in any one of ten fonts is found up front, reported with the spec path like schema errors.
Each variant is checked by its asset kind (``synthcv.assets.kinds``: by default, built).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from synthcv.distributions import Distribution
from synthcv.spec import AssetSpec, MaterialSpec, Spec

MAX_COMBINATIONS = 64


def _values(d: Distribution) -> list[Any]:
    """Representative values of a distribution: every choice, else its bounds."""
    if d.kind in ("choice", "constant"):
        return list(d.params)
    if d.kind in ("uniform", "loguniform", "randint"):
        return list(d.params)
    mu = d.params[0]
    return [d.clip[0], d.clip[1]] if d.clip else [mu]


def asset_variants(a: AssetSpec) -> list[dict[str, Any]]:
    """Concrete asset dicts covering every categorical value (others at their first value)."""
    base: dict[str, Any] = {}
    options: dict[str, list[Any]] = {}
    for name in type(a).model_fields:
        value = getattr(a, name)
        if value is None:
            continue
        if isinstance(value, Distribution):
            vals = _values(value)
            base[name] = vals[0]
            if value.kind == "choice" and len(vals) > 1:
                options[name] = vals[1:]
        elif isinstance(value, dict):
            base[name] = {k: list(v) for k, v in value.items()}
        elif isinstance(value, tuple):
            base[name] = list(value)
        else:
            base[name] = value
    variants = [base]
    for name, vals in options.items():
        variants += [{**base, name: v} for v in vals]
    return list(islice(variants, MAX_COMBINATIONS))


def asset_problems(path: str, a: AssetSpec) -> list[str]:
    """The first problem of any variant of an asset, as ``path: message`` (empty if none).

    Every variant is checked by its own kind (``AssetKind.preflight``: build the mesh unless
    the kind declares a cheaper check)."""
    from synthcv.assets import AssetError, build_mesh, kinds

    for variant in asset_variants(a):
        try:
            kind = kinds.kind_of(variant)
            if kind.check is not None:
                kind.check(variant)
            else:
                build_mesh(variant)
        except (AssetError, ValueError, OSError) as exc:
            return [f"{path}: {exc}"]
    return []


def _texture_problems(path: str, d: Distribution) -> list[str]:
    from synthcv.assets import AssetError, texture_path

    problems = []
    for v in _values(d):
        if v is None or (isinstance(v, str) and v.lower() in ("", "none", "native")):
            continue
        try:
            texture_path(str(v))
        except AssetError as exc:
            problems.append(f"{path}: got {v!r}, expected a texture ({exc})")
    return problems


def _material_problems(path: str, m: MaterialSpec) -> list[str]:
    problems = _texture_problems(f"{path}.texture", m.texture)
    for v in _values(m.procedural):
        if v not in (None, "none", "noise", "checker"):
            problems.append(f"{path}.procedural: got {v!r}, expected noise, checker or none")
    return problems


def check_resources(spec: Spec) -> list[str]:
    """Problems as ``field.path: got X, expected Y`` lines; empty when everything builds."""
    problems: list[str] = []
    for name, c in spec.objects.classes.items():
        problems += asset_problems(f"objects.classes.{name}.asset", c.asset)
        problems += _material_problems(f"objects.classes.{name}.material", c.material)
    for i, a in enumerate(spec.distractors.assets):
        problems += asset_problems(f"distractors.assets[{i}]", a)
    problems += _material_problems("distractors.material", spec.distractors.material)
    problems += _texture_problems("ground.texture", spec.ground.texture)
    return problems
