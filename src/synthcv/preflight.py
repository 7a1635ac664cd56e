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
from synthcv.validation import format_loc, short_value

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

    Every variant is checked by its own kind (``AssetKind.check``; without one, the mesh is
    built). A problem with one key (a font that is no font, a
    mesh file that holds no triangles) is reported at that key: ``path.font: got X, ...``.
    Whatever a builder raises becomes a problem line: preflight never lets a traceback out."""
    from synthcv.assets import AssetError, build_mesh, kinds

    for variant in asset_variants(a):
        try:
            kind = kinds.kind_of(variant)
            if kind.check is not None:
                kind.check(variant)
            else:
                build_mesh(variant)
        except AssetError as exc:
            if exc.key and exc.detail:
                return [f"{path}.{exc.key}: {exc.detail}"]
            return [f"{path}: {_cut(str(exc))}"]
        except Exception as exc:  # a library failing on odd input: report, don't crash
            return [f"{path}: cannot be built ({type(exc).__name__}: {_cut(str(exc))})"]
    return []


def _cut(text: str, n: int = 600) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _texture_problems(path: str, d: Distribution) -> list[str]:
    from synthcv.assets.textures import check_texture

    problems = []
    for v in _values(d):
        if v is None or (isinstance(v, str) and v.lower() in ("", "none", "native")):
            continue
        try:
            check_texture(str(v))
        except Exception as exc:  # AssetError, or a filesystem error on an odd path
            problems.append(
                f"{path}: got {short_value(v)}, expected a texture name or an image file "
                f"({_cut(str(exc))})"
            )
    return problems


def _material_problems(path: str, m: MaterialSpec) -> list[str]:
    problems = _texture_problems(f"{path}.texture", m.texture)
    for v in _values(m.procedural):
        if v not in (None, "none", "noise", "checker"):
            problems.append(
                f"{path}.procedural: got {short_value(v)}, expected noise, checker or none"
            )
    return problems


def check_resources(spec: Spec) -> list[str]:
    """Problems as ``field.path: got X, expected Y`` lines; empty when everything builds.

    A sweep over an asset, material or ground texture field is checked at every step's value
    too (reported as ``sweep.values[i]: ...``)."""
    problems = _spec_problems(spec)
    sweep = spec.sweep
    if sweep is not None and _touches_resources(sweep.field):
        seen: set[str] = set()
        for loc, value in sweep.checked_values():
            key = repr(value)
            if key in seen:
                continue
            seen.add(key)
            where = format_loc(("sweep", *loc))
            try:
                variant = spec.sweep_variant(value)
            except Exception as exc:  # validated with the spec; kept safe all the same
                problems.append(f"{where}: {_cut(str(exc))}")
                continue
            problems += [f"{where}: {p}" for p in _spec_problems(variant)]
    return problems


def _touches_resources(field: str) -> bool:
    parts = field.split(".")
    return (
        field == "ground.texture"
        or field.startswith("distractors.")
        or (parts[0] == "objects" and ("asset" in parts or "material" in parts))
        or field in ("people.pose", "people.hair.style", "world.hdri")
        or (parts[0] == "room" and "texture" in parts)
    )


def _spec_problems(spec: Spec) -> list[str]:
    problems: list[str] = []
    for name, c in spec.objects.classes.items():
        problems += asset_problems(format_loc(("objects", "classes", name, "asset")), c.asset)
        where = format_loc(("objects", "classes", name, "material"))
        problems += _material_problems(where, c.material)
    for i, a in enumerate(spec.distractors.assets):
        problems += asset_problems(f"distractors.assets[{i}]", a)
    problems += _material_problems("distractors.material", spec.distractors.material)
    problems += _texture_problems("ground.texture", spec.ground.texture)
    if spec.people is not None:
        problems += _people_problems(spec)
    if spec.world is not None:
        problems += _hdri_problems(spec)
    if spec.room is not None:
        rs = spec.room
        for where, surface in (
            ("room.floor", rs.floor),
            ("room.walls", rs.walls),
            ("room.ceiling", rs.ceiling),
            ("room.furniture.surface", rs.furniture.surface),
            *((("room.table.surface", rs.table.surface),) if rs.table is not None else ()),
        ):
            problems += _texture_problems(f"{where}.texture", surface.texture)
    return problems


def _hdri_problems(spec: Spec) -> list[str]:
    """Every environment map the spec can draw found and read (a broken EXR fails here, not
    in a worker hours later)."""
    from synthcv.render.environment_map import estimate_lighting, resolve

    assert spec.world is not None
    problems = []
    for v in _values(spec.world.hdri):
        try:
            estimate_lighting(resolve(str(v)))
        except Exception as exc:
            problems.append(f"world.hdri: got {short_value(v)}: {_cut(str(exc))}")
    return problems


def _people_problems(spec: Spec) -> list[str]:
    """Every pose's clip file read and every hair style's body built (it needs scikit-image)."""
    from synthcv.people.body import BodyShape, rest_body
    from synthcv.people.motions import pose_named

    ps = spec.people
    assert ps is not None
    problems: list[str] = []
    poses = _values(ps.pose) + (_values(ps.blend.pose) if ps.blend is not None else [])
    for name in poses:
        try:
            pose_named(str(name))
        except Exception as exc:
            problems.append(f"people.pose: {_cut(str(exc))}")
    for style in _values(ps.hair.style):
        try:
            rest_body(BodyShape(hair=str(style)))
        except Exception as exc:
            problems.append(f"people.hair.style: {style}: {_cut(f'{type(exc).__name__}: {exc}')}")
    return problems
