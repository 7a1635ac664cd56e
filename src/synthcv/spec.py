"""The dataset spec: a YAML document validated by pydantic into a :class:`Spec`.

Every problem in a bad spec is reported at once as ``field.path: got X, expected Y``; unknown keys
get a "did you mean" hint. The scene hash (canonical JSON of the resolved spec minus ``count``,
``renderer`` and ``outputs``) seeds every sample, so growing ``count`` keeps the existing samples
and every backend renders the same scenes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from synthcv.assets.kinds import names as asset_kind_names
from synthcv.distributions import Distribution, constant, parse_distribution
from synthcv.environment.room import FURNITURE_KINDS
from synthcv.fileio import sha256_text
from synthcv.people.motions import POSES
from synthcv.people.person import HAIR as HAIR_STYLES
from synthcv.people.person import LEGS as LEG_LENGTHS
from synthcv.people.person import PERSON_CLASS, SLEEVES
from synthcv.safeyaml import YAMLProblem, check_shape, load_yaml, read_text
from synthcv.scene import STUFF_CLASSES
from synthcv.validation import (
    ConfigError,
    FieldProblem,
    HashStableModel,
    format_loc,
    validation_problems,
)
from synthcv.validation import format_validation_error as _format_validation_error
from synthcv.validation import short_value as _short

# --------------------------------------------------------------------------- field types


def _ser(d: Distribution) -> Any:
    return d.to_json()


Num = Annotated[
    Distribution,
    PlainValidator(lambda v: parse_distribution(v, numeric=True)),
    PlainSerializer(_ser, return_type=Any),
]
Cat = Annotated[
    Distribution,
    PlainValidator(lambda v: parse_distribution(v, numeric=False)),
    PlainSerializer(_ser, return_type=Any),
]
AnyDist = Annotated[
    Distribution, PlainValidator(parse_distribution), PlainSerializer(_ser, return_type=Any)
]


def _range_or_dist(v: Any) -> Distribution:
    """HSV ranges may be written as [lo, hi] (uniform) or any numeric distribution."""
    if isinstance(v, list | tuple) and len(v) == 2:
        v = {"uniform": list(v)}
    return parse_distribution(v, numeric=True)


Range = Annotated[
    Distribution, PlainValidator(_range_or_dist), PlainSerializer(_ser, return_type=Any)
]


# --------------------------------------------------------------------------- ranges


def _num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


@dataclass(frozen=True)
class Bounds:
    """The documented range of a numeric field; every value its distribution can draw must
    lie in it (see :meth:`Distribution.value_range`)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    unit: str = ""

    def __contains__(self, x: float) -> bool:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below

    def __str__(self) -> str:
        text = (
            f"{'(' if self.lo_open else '['}{_num_text(self.lo)}, "
            f"{_num_text(self.hi)}{')' if self.hi_open else ']'}"
        )
        return f"{text} {self.unit}" if self.unit else text


def _bounded(parse: Callable[[Any], Distribution], bounds: Bounds) -> Callable[[Any], Distribution]:
    def validate(value: Any) -> Distribution:
        d = parse(value)
        lo, hi = d.value_range()
        if lo in bounds and hi in bounds:
            return d
        if d.kind == "constant":
            raise ValueError(f"a number in {bounds}")
        reach = lo if lo not in bounds else hi
        hint = (
            "; a normal without clip is checked over mu ± 6 sigma, add clip: [lo, hi]"
            if d.kind == "normal" and not d.clip
            else ""
        )
        raise ValueError(f"values in {bounds} (this {d.kind} reaches {_num_text(reach)}{hint})")

    return validate


def num(
    lo: float,
    hi: float,
    unit: str = "",
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    shorthand: bool = False,
) -> Any:
    """A numeric spec field (constant or distribution) whose every value lies in [lo, hi]
    (open ends with ``lo_open``/``hi_open``); ``shorthand`` also accepts ``[lo, hi]`` as a
    uniform range (colours)."""
    bounds = Bounds(float(lo), float(hi), lo_open, hi_open, unit)
    parse = _range_or_dist if shorthand else (lambda v: parse_distribution(v, numeric=True))
    return Annotated[
        Distribution,
        PlainValidator(_bounded(parse, bounds)),
        PlainSerializer(_ser, return_type=Any),
        bounds,
    ]


# Ranges shared by several fields (docs: README "The spec", "Ranges").
ANGLE = 1e4  # degrees: azimuths, yaws and hues wrap; anything larger is a mistake
COORD = 1e4  # metres: positions and look-at points
SIZE = 1e3  # metres: asset sizes, distances, scales
MAX_COUNT = 10**7  # samples in a dataset (count × sweep steps)
MAX_OBJECTS = 1000  # objects (and distractors) per scene
MAX_SWEEP_STEPS = 10_000
PIXEL_BUDGET = 2**26  # rendered pixels per image (64 Mpx: 8192 × 8192, supersample 1)
BYTES_PER_PIXEL = 230  # peak memory of the tiny backend per rendered pixel (measured)
MAX_DEPTH_RATIO = 1e7  # far / near: beyond it depth precision is gone

Coord = Annotated[float, Field(ge=-COORD, le=COORD)]
Extent = Annotated[float, Field(gt=0, le=SIZE)]
Fraction = num(0, 1)
Hue = num(-ANGLE, ANGLE, shorthand=True)
Channel = num(0, 1, shorthand=True)
Angle = num(-ANGLE, ANGLE, "degrees")
Elevation = num(-90, 90, "degrees")
Length = num(0, SIZE, "m", lo_open=True)
Position = num(-COORD, COORD, "m")
Scale = num(0, SIZE, lo_open=True)
Intensity = num(0, 100)
Count = num(0, MAX_OBJECTS)


class StrictModel(HashStableModel):
    """Every spec section: unknown keys refused, frozen. Optional fields added after format 2
    (e.g. a new asset kind's key) go in ``HASH_STABLE_OPTIONAL`` (see HashStableModel)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, frozen=True, allow_inf_nan=False
    )


class HSVColor(StrictModel):
    """A colour drawn in HSV (each channel in [0, 1]); ``[lo, hi]`` is a uniform range."""

    h: Hue = constant(0.0)  # wraps around: h and h + 1 are the same hue
    s: Channel = constant(0.0)
    v: Channel = constant(0.8)


class ImageSpec(StrictModel):
    width: int = Field(256, ge=8, le=8192)
    height: int = Field(256, ge=8, le=8192)
    channels: Literal[1, 3] = 3
    supersample: int = Field(
        1, ge=1, le=8, description="render at N× and box-filter RGB down (labels: centre sample)"
    )

    @model_validator(mode="after")
    def _pixel_budget(self) -> ImageSpec:
        w, h, ss = self.width, self.height, self.supersample
        px = w * h * ss * ss
        if px > PIXEL_BUDGET:
            gib = px * BYTES_PER_PIXEL / 2**30
            raise FieldProblem(
                (),
                f"got width × height × supersample² = {w} × {h} × {ss}² = {px:,} rendered "
                f"pixels, expected at most {PIXEL_BUDGET:,} (64 Mpx; this image would need "
                f"about {gib:.0f} GiB of memory to render)",
            )
        return self


def _renderer_spec() -> Any:
    """The ``renderer:`` section: the options model of the backend that ``backend:`` names.

    Backends declare their own options (synthcv.render); a new backend module extends this
    union without an edit here.
    """
    from pydantic import Discriminator, Tag

    from synthcv.render import backends

    found = backends()
    default = next(iter(found))

    def tag(v: Any) -> Any:  # ``backend:`` may be omitted: the default backend
        return v.get("backend", default) if isinstance(v, dict) else getattr(v, "backend", None)

    members = tuple(Annotated[b.options, Tag(name)] for name, b in found.items())
    names = ", ".join(repr(n) for n in found)
    return Annotated[
        Union[members],  # noqa: UP007
        Discriminator(
            tag,
            custom_error_type="renderer_backend",
            custom_error_message=f"a mapping whose backend is one of {names}",
        ),
    ]


RendererSpec = _renderer_spec()


class FrameSpec(StrictModel):
    """Frame the labelled objects the way a dataset's own preprocessing framed its images.

    MNIST scaled each digit's ink to fit a 20 × 20 box and moved its centre of mass to the
    middle of a 28 × 28 field; a camera that draws its distance at random cannot match that.
    Per sample, after physics, the focal length and principal point change so that the
    labelled objects' projected box has ``fit`` pixels on its larger side and its centre
    (``box``: the box's; ``mass``: the camera-facing surface's area centroid) lands on pixel
    ``at``. Only the intrinsics change, so every label follows exactly.
    """

    fit: float | None = Field(None, gt=0, le=8192)  # output pixels, larger side of the box
    center: Literal["box", "mass"] = "box"
    at: tuple[float, float] | None = None  # output pixel (x, y); default: the image centre

    @field_validator("at")
    @classmethod
    def _finite_at(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(math.isfinite(c) and abs(c) <= 1e5 for c in v):
            raise ValueError(f"got {list(v)}, expected two finite pixel coordinates")
        return v


class CameraSpec(StrictModel):
    distance: Length = constant(1.0)
    elevation: Elevation = constant(45.0)  # degrees above the ground plane
    azimuth: Angle = constant(0.0)  # degrees, counter-clockwise from +x
    look_at: tuple[Coord, Coord, Coord] = (0.0, 0.0, 0.0)
    look_at_jitter: num(0, 100, "m") = constant(0.0)  # metres, uniform per axis in ±value
    fov: num(0, 179, "degrees", lo_open=True, hi_open=True) = constant(45.0)  # vertical
    near: float = Field(0.01, gt=0, le=1e4)
    far: float = Field(20.0, gt=0, le=1e7)
    frame: FrameSpec | None = None  # per-sample framing of the labelled objects (MNIST's)

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"frame"})

    @model_validator(mode="after")
    def _clipping_planes(self) -> CameraSpec:
        """Both backends clip at near and far: a scene outside them renders nothing."""
        near, far = self.near, self.far
        if not near < far:
            raise FieldProblem(
                "far", f"got {_num_text(far)}, expected more than camera.near ({_num_text(near)})"
            )
        if far / near > MAX_DEPTH_RATIO:
            raise FieldProblem(
                "far",
                f"got {_num_text(far)}, expected at most {_num_text(MAX_DEPTH_RATIO)} × "
                f"camera.near ({_num_text(near)}): depth precision is lost beyond that ratio",
            )
        reach = self.distance.value_range()[1]
        if reach >= far:
            raise FieldProblem(
                "distance",
                f"got {_short(self.distance.to_json())}, expected values below camera.far "
                f"({_num_text(far)}): the camera would look at a point beyond its far "
                "clipping plane and render nothing (raise camera.far)",
            )
        return self


def _one_of(names: tuple[str, ...], what: str) -> Any:
    """A categorical field whose every possible value is one of ``names``."""

    def validate(value: Any) -> Distribution:
        d = parse_distribution(value, numeric=False)
        bad = [v for v in d.support() if v not in names]
        if bad:
            raise ValueError(f"{what} among {', '.join(names)} (got {bad[0]!r})")
        return d

    return Annotated[Distribution, PlainValidator(validate), PlainSerializer(_ser, return_type=Any)]


def _uniform(lo: float, hi: float) -> Distribution:
    return parse_distribution({"uniform": [lo, hi]}, numeric=True)


class SunSpec(StrictModel):
    elevation: Elevation = constant(60.0)
    azimuth: Angle = constant(30.0)
    intensity: Intensity = constant(1.0)
    color: HSVColor = HSVColor(h=constant(0.0), s=constant(0.0), v=constant(1.0))


class LampPositionSpec(StrictModel):
    """Where each lamp of a group hangs (world metres; each lamp draws its own)."""

    x: Position = _uniform(-1.0, 1.0)
    y: Position = _uniform(-1.0, 1.0)
    z: Position = constant(2.5)


class LampSpec(StrictModel):
    """A group of ``count`` point, spot or area lights sharing power (watts, Blender's units),
    colour temperature (Kelvin), size and cone; each lamp has its own position and points at
    ``target`` (default: the camera's look-at point)."""

    type: Literal["point", "spot", "area"] = "point"
    count: num(0, 16) = constant(1)  # type: ignore[valid-type]
    power: num(0, 1e6, "W") = constant(100.0)  # type: ignore[valid-type]
    temperature: num(1000, 40000, "K") = constant(6500.0)  # type: ignore[valid-type]
    size: num(0, 100, "m") = constant(0.1)  # type: ignore[valid-type]  # radius; area: side
    position: LampPositionSpec = LampPositionSpec()
    target: tuple[Coord, Coord, Coord] | None = None
    spot_angle: num(1, 180, "degrees") = constant(60.0)  # type: ignore[valid-type]  # full cone
    spot_blend: Fraction = constant(0.15)


class LightsSpec(StrictModel):
    sun: SunSpec = SunSpec()
    ambient: Intensity = constant(0.4)
    lamps: list[LampSpec] = Field(default_factory=list, max_length=16)

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"lamps"})


def _hdri_value(value: Any) -> Distribution:
    from synthcv.render.environment_map import BUNDLED_HDRIS, HDRI_SUFFIXES

    d = parse_distribution(value, numeric=False)
    for v in d.support():
        if not isinstance(v, str) or not (
            v in BUNDLED_HDRIS or Path(v).suffix.lower() in HDRI_SUFFIXES
        ):
            import difflib

            close = difflib.get_close_matches(str(v), BUNDLED_HDRIS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"a bundled HDRI ({', '.join(BUNDLED_HDRIS)}) or an image file "
                f"({', '.join(HDRI_SUFFIXES)})"
                + (f" (got {_short(v)})" if d.kind != "constant" else "")
                + hint
            )
    return d


def _bool_values(value: Any) -> Distribution:
    d = parse_distribution(value, numeric=False)
    bad = [v for v in d.support() if not isinstance(v, bool)]
    if bad:
        raise ValueError(f"true or false, or a choice of them (got {_short(bad[0])})")
    return d


HdriName = Annotated[
    Distribution, PlainValidator(_hdri_value), PlainSerializer(_ser, return_type=Any)
]
Flag = Annotated[Distribution, PlainValidator(_bool_values), PlainSerializer(_ser, return_type=Any)]


def _dumped(value: Any) -> Any:
    """A field's value as the resolved spec writes it (models and distributions alike)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value.to_json() if isinstance(value, Distribution) else value


class WorldSpec(StrictModel):
    """``world:`` an environment map around the scene (docs/environments.md): Cycles lights
    the scene with it and camera rays see it; the tiny backend draws the background from it
    and lights with an estimated sun and ambient level. It changes pixels, never geometry, so
    it is left out of the scene hash."""

    hdri: HdriName
    strength: num(0, 1000) = constant(1.0)  # type: ignore[valid-type]
    rotation: Angle = constant(0.0)  # degrees, counter-clockwise seen from above
    visible_background: Flag = constant(True)


class SurfaceSpec(StrictModel):
    """A room surface's look: colour, texture (tiled in metres), roughness."""

    color: HSVColor = HSVColor(v=constant(0.7))
    texture: Cat = constant(None)
    texture_scale: num(0, 1000, "repeats per metre", lo_open=True) = constant(1.0)
    roughness: Fraction = constant(0.8)


class WindowsSpec(StrictModel):
    """Openings in the walls that let the world in; a room's windows share one size."""

    count: num(0, 8) = constant(1)  # type: ignore[valid-type]
    width: num(0.2, 20, "m") = _uniform(0.8, 1.6)  # type: ignore[valid-type]
    height: num(0.2, 10, "m") = _uniform(0.8, 1.3)  # type: ignore[valid-type]
    sill: num(0, 10, "m") = constant(0.9)  # type: ignore[valid-type]  # above the floor


class DoorSpec(StrictModel):
    """A closed door (semantic class ``door``) in one of the walls."""

    width: num(0.4, 5, "m") = constant(0.9)  # type: ignore[valid-type]
    height: num(1.0, 5, "m") = constant(2.0)  # type: ignore[valid-type]
    color: HSVColor = HSVColor(h=constant(0.08), s=constant(0.35), v=constant(0.45))


class TableSpec(StrictModel):
    """The table in the middle of the room: the objects are dropped onto it."""

    width: num(0.2, 10, "m") = _uniform(1.0, 1.6)  # type: ignore[valid-type]
    depth: num(0.2, 10, "m") = _uniform(0.6, 1.0)  # type: ignore[valid-type]
    height: num(0.2, 3, "m") = _uniform(0.7, 0.78)  # type: ignore[valid-type]
    yaw: Angle = constant(0.0)
    surface: SurfaceSpec = SurfaceSpec(
        color=HSVColor(h=constant(0.08), s=constant(0.45), v=_uniform(0.35, 0.6)),
        roughness=constant(0.5),
    )
    tray: Flag = constant(False)  # a tray on the table: the objects fall into it


class FurnitureSpec(StrictModel):
    """Pieces standing against the walls, placed without overlap (tables and shelves)."""

    count: num(0, 20) = constant(2)  # type: ignore[valid-type]
    kind: _one_of(FURNITURE_KINDS, "furniture kinds") = parse_distribution(  # type: ignore[valid-type]
        {"choice": list(FURNITURE_KINDS)}
    )
    scale: num(0.3, 3) = _uniform(0.8, 1.2)  # type: ignore[valid-type]
    surface: SurfaceSpec = SurfaceSpec(
        color=HSVColor(h=constant(0.08), s=constant(0.4), v=_uniform(0.3, 0.7)),
        roughness=constant(0.6),
    )


class RoomSpec(StrictModel):
    """``room:`` a closed room around the scene (docs/environments.md): floor, four walls,
    ceiling, windows, a door, a table in the middle and furniture by the walls. The interior is
    width (x) × depth (y) × height, centred on the origin, its floor at ``ground.height`` (the
    floor replaces the ground)."""

    width: num(1, 100, "m") = _uniform(4.0, 6.0)  # type: ignore[valid-type]
    depth: num(1, 100, "m") = _uniform(4.0, 6.0)  # type: ignore[valid-type]
    height: num(1.5, 20, "m") = _uniform(2.5, 3.0)  # type: ignore[valid-type]
    floor: SurfaceSpec = SurfaceSpec(
        color=HSVColor(h=constant(0.07), s=constant(0.35), v=_uniform(0.3, 0.55)),
        roughness=constant(0.6),
    )
    walls: SurfaceSpec = SurfaceSpec(
        color=HSVColor(h=_uniform(0.0, 1.0), s=_uniform(0.0, 0.2), v=_uniform(0.7, 0.9))
    )
    ceiling: SurfaceSpec = SurfaceSpec(color=HSVColor(v=constant(0.9)))
    windows: WindowsSpec = WindowsSpec()
    door: DoorSpec | None = DoorSpec()
    table: TableSpec | None = TableSpec()
    furniture: FurnitureSpec = FurnitureSpec()


class MaterialSpec(StrictModel):
    roughness: Fraction = constant(0.5)
    metallic: Fraction = constant(0.0)
    texture: Cat = constant(None)  # pybullet_data texture name, file path, or none
    procedural: Cat = constant(None)  # noise | checker (cycles)


class GroundSpec(StrictModel):
    enabled: bool = True
    height: float = Field(0.0, ge=-COORD, le=COORD)
    size: float = Field(20.0, gt=0, le=COORD)
    color: HSVColor = HSVColor(v=constant(0.5))
    texture: Cat = constant(None)
    texture_scale: num(0, 1000, "repeats per metre", lo_open=True) = constant(1.0)
    roughness: Fraction = constant(0.8)


PoseName = _one_of(POSES, "pose names")
SkinTone = num(1, 10, "Monk scale")


class AssetSpec(StrictModel):
    """Exactly one kind key: primitive, pybullet, mesh, glyph or person; other keys are its
    options."""

    primitive: Cat | None = None
    pybullet: Cat | None = None
    mesh: Cat | None = None
    glyph: Cat | None = None
    person: PoseName | None = None  # a posed body as a rigid object (people: for people)
    size: Length | None = None
    dims: tuple[Extent, Extent, Extent] | None = None
    radius: Length | None = None
    height: Length | None = None
    major_radius: Length | None = None
    minor_radius: Length | None = None
    units: float | None = Field(None, gt=0, le=1e4)
    font: Cat | None = None
    depth: Length | None = None
    # glyph: stroke width change, fraction of the glyph height
    stroke: num(-0.5, 0.5) | None = None
    shear: num(-60, 60, "degrees", lo_open=True, hi_open=True) | None = None  # glyph: slant
    wobble: num(0, 0.3) | None = None  # glyph: smooth random bend, fraction of the glyph height
    # glyph: seed of the bend and of the hand font's way of writing
    style: num(0, 2**32 - 1) | None = None
    aspect: num(0.3, 3) | None = None  # glyph: width against height, 1 = as drawn
    repertoire: num(1, 3) | None = None  # glyph, hand font: which set of ways of writing
    flourish: num(0, 4) | None = None  # glyph, hand font: overshoot, gaps and hooks at stroke ends
    pressure: num(0, 1) | None = None  # glyph, hand font: pen width varying along each stroke
    keypoints: dict[str, tuple[Coord, Coord, Coord]] | None = None
    phase: Fraction | None = None  # person: where in the clip
    build: num(0.7, 1.5) | None = None  # type: ignore[valid-type]  # person: girth

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {"person", "phase", "build", "aspect", "repertoire", "flourish", "pressure"}
    )

    @model_validator(mode="after")
    def _one_kind(self) -> AssetSpec:
        names = asset_kind_names()
        kinds = [k for k in names if getattr(self, k, None) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"exactly one of {', '.join(names)} (got {', '.join(kinds) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in asset_kind_names() if getattr(self, k, None) is not None)


# The kind keys, from the asset-kind registry (synthcv.assets.kinds): the fields above that name
# a kind. Kinds registered at run time are looked up live by the validator.
ASSET_KINDS = asset_kind_names()


class PoseSpec(StrictModel):
    """Where objects start. With physics on they are dropped from here and settle."""

    x: Position = _range_or_dist([-0.25, 0.25])
    y: Position = _range_or_dist([-0.25, 0.25])
    z: Position = constant(0.0)  # height of the lowest point above the ground (before the drop)
    drop_height: num(0, SIZE, "m") = _range_or_dist([0.05, 0.3])
    rotation: Literal["random", "upright", "euler"] = "random"
    roll: Angle = constant(0.0)  # degrees, used when rotation: euler
    pitch: Angle = constant(0.0)
    yaw: Angle = _range_or_dist([0.0, 360.0])
    # Placement without crowding: the largest IoU an object's ground footprint (the xy box of
    # its posed mesh) may have with an earlier object's; a position over it is redrawn (x and
    # y only) up to `placement_tries` times, then the object is left out.
    max_overlap: float | None = Field(None, ge=0, lt=1)
    placement_tries: int | None = Field(None, ge=1, le=10_000)

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"max_overlap", "placement_tries"})

    @model_validator(mode="after")
    def _tries_need_a_limit(self) -> PoseSpec:
        if self.placement_tries is not None and self.max_overlap is None:
            raise ValueError("max_overlap set too (placement_tries applies only with it)")
        return self


class ClassSpec(StrictModel):
    weight: float = Field(1.0, ge=0, le=1e6)
    asset: AssetSpec
    scale: Scale = constant(1.0)
    color: HSVColor = HSVColor(h=_range_or_dist([0, 1]), s=constant(0.7))
    material: MaterialSpec = MaterialSpec()
    mass: float = Field(1.0, gt=0, le=1e6)


class ObjectsSpec(StrictModel):
    count: Count = constant(1)
    classes: dict[str, ClassSpec] = Field(default_factory=dict)  # empty only with count 0
    pose: PoseSpec = PoseSpec()

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """``objects.defaults`` is merged under every class, saving repetition in YAML."""
        if isinstance(data, dict) and "defaults" in data:
            data = dict(data)
            defaults = data.pop("defaults")
            classes = data.get("classes")
            if isinstance(defaults, dict) and isinstance(classes, dict):
                data["classes"] = {
                    name: _deep_merge(defaults, c) if isinstance(c, dict) else c
                    for name, c in classes.items()
                }
        return data

    @field_validator("classes")
    @classmethod
    def _weights(cls, v: dict[str, ClassSpec]) -> dict[str, ClassSpec]:
        if v and sum(c.weight for c in v.values()) <= 0:
            raise ValueError("class weights that sum to more than 0")
        return v

    @model_validator(mode="after")
    def _classes_to_draw_from(self) -> ObjectsSpec:
        if not self.classes and self.count.value_range()[1] > 0:
            raise FieldProblem(
                "classes", "got none, expected at least one class (objects.count can be above 0)"
            )
        return self


class DistractorsSpec(StrictModel):
    count: Count = constant(0)
    assets: list[AssetSpec] = Field([AssetSpec(primitive=constant("cube"))], min_length=1)
    scale: Scale = _range_or_dist([0.5, 1.5])
    color: HSVColor = HSVColor(
        h=_range_or_dist([0, 1]), s=_range_or_dist([0, 1]), v=_range_or_dist([0.2, 1])
    )
    material: MaterialSpec = MaterialSpec()


class PhysicsSpec(StrictModel):
    enabled: bool = True
    steps: int = Field(
        480, ge=0, le=100_000, description="max simulation steps (stops early when at rest)"
    )
    timestep: float = Field(1 / 240, gt=0, le=1)
    friction: float = Field(0.8, ge=0, le=100)


class OutputsSpec(StrictModel):
    rgb: bool = True
    depth: bool = True
    instance: bool = True
    semantic: bool = True
    normals: bool = True
    parts: bool | None = None  # body-part map of people; None: on (written when people appear)
    # also write ``clean``: the image before the sensor's photometric stages (docs/sensor.md)
    pairs: bool | None = None
    # optical flow of clips (sequence:); None: on when the spec has a sequence
    flow: bool | None = None
    shard_size: int = Field(16, ge=1, le=100000)

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"parts", "pairs", "flow"})


# ------------------------------------------------------------------ sequences (docs/sequences.md)


class CameraPathSpec(StrictModel):
    """How the camera moves over a clip, from its drawn pose at frame 0 (each a distribution,
    drawn once per clip): an orbit about the look-at point, a dolly along the line of sight,
    and handheld shake (a smooth random rotation of at most ``shake`` degrees)."""

    orbit: num(-3600, 3600, "degrees/s") = constant(0.0)  # counter-clockwise seen from above
    dolly: num(-100, 100, "m/s") = constant(0.0)  # positive: towards the look-at point
    shake: num(0, 30, "degrees") = constant(0.0)


class ObjectMotionSpec(StrictModel):
    """Velocities given to every labelled object and distractor at frame 0 (a random direction
    each; the vertical component of a throw is kept non-negative so nothing is shot into the
    ground)."""

    linear: num(0, 100, "m/s") = constant(0.0)
    angular: num(0, 7200, "degrees/s") = constant(0.0)


class PeopleMotionSpec(StrictModel):
    """People in a clip: their motion clips play in time (looping) and, with ``travel``, they
    walk along their heading at the clip's own speed. Static poses stay still."""

    animate: bool = True
    travel: bool = True


class SequenceSpec(StrictModel):
    """Each sample is a clip of ``frames`` frames at ``fps``: physics runs forward in time,
    the camera follows its path, instance ids stay fixed (tracks), and every frame has the
    single-frame labels plus exact optical flow to its neighbours."""

    frames: int = Field(24, ge=1, le=1000)
    fps: float = Field(24.0, gt=0, le=1000)
    # settled: frame 0 is the single-frame scene (objects at rest), then the objects get their
    # velocities; drop: frame 0 is the moment of the drop, objects fall in real time
    start: Literal["settled", "drop"] = "settled"
    objects: ObjectMotionSpec = ObjectMotionSpec()
    camera: CameraPathSpec = CameraPathSpec()
    people: PeopleMotionSpec = PeopleMotionSpec()


# ------------------------------------------------------------------ sensor (docs/sensor.md)


class DistortionSpec(StrictModel):
    """Brown–Conrady lens distortion on normalised coordinates (OpenCV's k1, k2, p1, p2);
    every geometric label moves with it."""

    k1: num(-1, 1) = constant(0.0)
    k2: num(-1, 1) = constant(0.0)
    p1: num(-0.1, 0.1) = constant(0.0)
    p2: num(-0.1, 0.1) = constant(0.0)


class DefocusSpec(StrictModel):
    """A thin lens focused at ``focus_distance``: blur grows with |1/d_focus − 1/depth|."""

    focus_distance: Length
    f_number: num(0.5, 64) = constant(2.8)
    focal_length_mm: num(1, 2000, "mm") = constant(35.0)


class MotionBlurSpec(StrictModel):
    """Camera shake during the exposure: a line of ``length`` pixels at ``angle`` degrees."""

    length: num(0, 200, "px") = constant(0.0)
    angle: Angle = constant(0.0)


class NoiseSpec(StrictModel):
    """Photon shot noise and read noise, in electrons, before the gain (ISO)."""

    full_well: num(1, 1e7, "electrons") = constant(10000.0)
    read_noise: num(0, 1e4, "electrons") = constant(2.0)
    bit_depth: int = Field(12, ge=8, le=16)


class WhiteBalanceSpec(StrictModel):
    """Channel gains after the sensor (green is 1): a camera's white balance error."""

    red: num(0.05, 20) = constant(1.0)
    blue: num(0.05, 20) = constant(1.0)


class ResponseSpec(StrictModel):
    """The camera response curve that encodes linear light into the 8-bit image."""

    curve: Literal["srgb", "gamma", "linear"] = "srgb"
    gamma: num(0.1, 10) = constant(2.2)  # used by curve: gamma (encoded = linear^(1/gamma))


def _iso(value: Any) -> Distribution | str:
    if value == "auto":
        return "auto"
    return _bounded(lambda v: parse_distribution(v, numeric=True), Bounds(1, 1e6))(value)


Iso = Annotated[
    Any,
    PlainValidator(_iso),
    PlainSerializer(lambda v: v if isinstance(v, str) else v.to_json(), return_type=Any),
]


class SensorSpec(StrictModel):
    """What the camera does after rendering, in a fixed order (docs/sensor.md): lens
    distortion, chromatic aberration, vignetting, defocus, motion blur, exposure, shot and read
    noise, gain, ADC, white balance, response curve, JPEG. Every stage is off unless set."""

    distortion: DistortionSpec | None = None
    chromatic_aberration: num(-0.05, 0.05) | None = None
    vignetting: num(0, 1) | None = None
    defocus: DefocusSpec | None = None
    motion_blur: MotionBlurSpec | None = None
    exposure_ev: num(-20, 20, "stops") | None = None  # light on the sensor vs the render
    iso: Iso = "auto"  # auto: gain 2^-exposure_ev, as an auto-exposing camera
    noise: NoiseSpec | None = None
    white_balance: WhiteBalanceSpec | None = None
    response: ResponseSpec = ResponseSpec()
    jpeg_quality: num(1, 100) | None = None


# ------------------------------------------------------------------ people (docs/people.md)


class HairSpec(StrictModel):
    style: _one_of(HAIR_STYLES, "hair styles") = parse_distribution(  # type: ignore[valid-type]
        {"choice": ["short", "long", "none"]}
    )
    color: HSVColor = HSVColor(
        h=_range_or_dist([0.06, 0.11]), s=_range_or_dist([0.3, 0.7]), v=_range_or_dist([0.05, 0.55])
    )


Pattern = _one_of(("none", "noise", "checker"), "patterns")


class TopSpec(StrictModel):
    sleeves: _one_of(SLEEVES, "sleeve lengths") = parse_distribution(  # type: ignore[valid-type]
        {"choice": ["none", "short", "long"]}
    )
    color: HSVColor = HSVColor(
        h=_range_or_dist([0, 1]), s=_range_or_dist([0, 0.8]), v=_range_or_dist([0.15, 0.9])
    )
    pattern: Pattern = constant("none")  # noise | checker: Cycles only (tiny: plain colour)


class BottomSpec(StrictModel):
    length: _one_of(LEG_LENGTHS, "trouser lengths") = parse_distribution(  # type: ignore[valid-type]
        {"choice": ["long", "shorts"]}
    )
    color: HSVColor = HSVColor(
        h=_range_or_dist([0, 1]), s=_range_or_dist([0, 0.6]), v=_range_or_dist([0.1, 0.7])
    )
    pattern: Pattern = constant("none")


class ShoesSpec(StrictModel):
    color: HSVColor = HSVColor(
        h=_range_or_dist([0, 1]), s=_range_or_dist([0, 0.5]), v=_range_or_dist([0.05, 0.9])
    )


class EyesSpec(StrictModel):
    iris: HSVColor = HSVColor(
        h=_range_or_dist([0.05, 0.6]), s=_range_or_dist([0.3, 0.8]), v=_range_or_dist([0.15, 0.6])
    )
    opening: Fraction = _uniform(0.6, 1.0)  # eyelid: 1 wide open, 0 shut


class PointSpec(StrictModel):
    x: Position = constant(0.0)
    y: Position = constant(0.0)
    z: Position = constant(1.0)


class GazeSpec(StrictModel):
    """Where the eyes look: at the ``camera``, at a world ``point``, or straight ``ahead`` (of
    the head), turned by ``yaw``/``pitch`` degrees (> 0: to the person's left / up); each eye
    is held within ±40° yaw and ±30° pitch of the head's forward direction."""

    target: Literal["camera", "ahead", "point"] = "camera"
    point: PointSpec | None = None  # with target: point, metres (world)
    yaw: Angle = constant(0.0)
    pitch: Angle = constant(0.0)

    @model_validator(mode="after")
    def _point_with_point(self) -> GazeSpec:
        if (self.target == "point") != (self.point is not None):
            raise FieldProblem(
                "point",
                "expected point: {x, y, z} exactly when target is point"
                f" (target is {self.target})",
            )
        return self


class BlendSpec(StrictModel):
    """A second pose mixed into the first: every joint turned ``weight`` of the way (slerp)."""

    pose: PoseName = constant("standing")
    phase: Fraction = _uniform(0.0, 1.0)
    weight: Fraction = _uniform(0.0, 0.5)


class HeadTurnSpec(StrictModel):
    """The head turned on the neck on top of the pose (degrees)."""

    yaw: num(-80, 80, "degrees") = constant(0.0)  # type: ignore[valid-type]
    pitch: num(-60, 60, "degrees") = constant(0.0)  # type: ignore[valid-type]
    roll: num(-45, 45, "degrees") = constant(0.0)  # type: ignore[valid-type]


class PeoplePlacementSpec(StrictModel):
    """Where people stand (x, y on the ground) and which way they face: ``facing`` is degrees
    from facing the camera (0: toward it, 180: back to it)."""

    x: Position = _uniform(-1.0, 1.0)
    y: Position = _uniform(-1.0, 1.0)
    facing: Angle = _uniform(-60.0, 60.0)
    gap: float = Field(0.05, ge=0, le=100)  # metres kept between footprints
    tries: int = Field(50, ge=1, le=10_000)


class PeopleSpec(StrictModel):
    """``people:``: posed, clothed people standing on the ground (docs/people.md)."""

    count: Count = constant(1)
    pose: PoseName = constant("standing")  # a motion clip or a static pose
    phase: Fraction = _uniform(0.0, 1.0)  # where in the clip
    perturb: num(0, 45, "degrees") = constant(0.0)  # type: ignore[valid-type]
    blend: BlendSpec | None = None  # a second pose mixed in
    contact: Literal["ground", "clip"] = "ground"
    height: num(0.5, 2.5, "m") = _uniform(1.55, 1.95)  # type: ignore[valid-type]
    build: num(0.7, 1.5) = _uniform(0.85, 1.2)  # type: ignore[valid-type]
    leg_ratio: num(0.8, 1.2) = constant(1.0)  # type: ignore[valid-type]
    arm_ratio: num(0.8, 1.2) = constant(1.0)  # type: ignore[valid-type]
    torso_ratio: num(0.8, 1.2) = constant(1.0)  # type: ignore[valid-type]
    skin_tone: SkinTone = parse_distribution({"choice": list(range(1, 11))})
    hair: HairSpec = HairSpec()
    top: TopSpec = TopSpec()
    bottom: BottomSpec = BottomSpec()
    shoes: ShoesSpec = ShoesSpec()
    eyes: EyesSpec = EyesSpec()
    gaze: GazeSpec = GazeSpec()
    head: HeadTurnSpec = HeadTurnSpec()
    placement: PeoplePlacementSpec = PeoplePlacementSpec()


class SweepSpec(StrictModel):
    """Hold everything fixed and step one field; each step re-uses the same ``count`` scenes."""

    field: str = Field(max_length=200)
    values: list[Any] | None = Field(None, max_length=MAX_SWEEP_STEPS)
    linspace: tuple[float, float, int] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SweepSpec:
        if (self.values is None) == (self.linspace is None):
            raise ValueError("exactly one of values: [...] or linspace: [start, stop, num]")
        if self.linspace is not None and not 1 <= self.linspace[2] <= MAX_SWEEP_STEPS:
            raise FieldProblem(
                ("linspace", 2),
                f"got {self.linspace[2]}, expected a number of steps in [1, {MAX_SWEEP_STEPS}]",
            )
        if self.values is not None and not self.values:
            raise ValueError("values: a non-empty list")
        return self

    def checked_values(self) -> list[tuple[tuple[str | int, ...], Any]]:
        """(location, value) of every value a step can take, for validation: each of
        ``values``, or the two ends of ``linspace`` (the steps between lie within them)."""
        if self.values is not None:
            return [(("values", i), v) for i, v in enumerate(self.values)]
        a, b, n = self.linspace  # type: ignore[misc]
        return [(("linspace", 0), float(a))] + ([(("linspace", 1), float(b))] if n > 1 else [])

    def steps(self) -> list[Any]:
        if self.values is not None:
            return list(self.values)
        a, b, n = self.linspace  # type: ignore[misc]
        if n == 1:
            return [float(a)]
        return [float(a + (b - a) * i / (n - 1)) for i in range(int(n))]


class Spec(StrictModel):
    count: int = Field(16, ge=1, le=MAX_COUNT, description="samples (per sweep step for sweeps)")
    seed: int = Field(0, ge=-(2**63), le=2**63 - 1)
    image: ImageSpec = ImageSpec()
    renderer: RendererSpec = Field(default_factory=lambda: _default_renderer())
    camera: CameraSpec = CameraSpec()
    lights: LightsSpec = LightsSpec()
    ground: GroundSpec = GroundSpec()
    background: HSVColor = HSVColor(v=constant(0.0))
    objects: ObjectsSpec = ObjectsSpec(count=constant(0))  # optional with people:
    distractors: DistractorsSpec = DistractorsSpec()
    physics: PhysicsSpec = PhysicsSpec()
    outputs: OutputsSpec = OutputsSpec()
    sweep: SweepSpec | None = None
    people: PeopleSpec | None = None
    sensor: SensorSpec | None = None  # the camera after the renderer (docs/sensor.md)
    sequence: SequenceSpec | None = None  # clips instead of single frames (docs/sequences.md)
    world: WorldSpec | None = None  # an environment map (docs/environments.md)
    room: RoomSpec | None = None  # a room around the scene (docs/environments.md)
    #: Asset files written as relative paths: absolute path (as resolved against the spec's
    #: file, and recorded everywhere else in the resolved spec) → the path as written. The
    #: hashes use the written form, so a spec with its files moved elsewhere (another
    #: checkout, another machine) seeds the same samples.
    written_paths: dict[str, str] | None = None

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {"written_paths", "people", "sensor", "sequence", "world", "room"}
    )

    @model_validator(mode="after")
    def _something_to_label(self) -> Spec:
        if not self.objects.classes and self.people is None:
            raise FieldProblem(
                "objects", "got no classes, expected objects.classes (or a people: section)"
            )
        return self

    @model_validator(mode="after")
    def _frames_in_range(self) -> Spec:
        if self.sequence is not None:
            rows = self.total_count * self.sequence.frames
            if rows > MAX_COUNT:
                raise FieldProblem(
                    ("sequence", "frames"),
                    f"got {self.sequence.frames} frames × {self.total_count:,} clips = {rows:,} "
                    f"frames, expected at most {MAX_COUNT:,} in a dataset",
                )
        return self

    @model_validator(mode="after")
    def _pair_samples_need_pairs(self) -> Spec:
        if getattr(self.renderer, "pair_samples", None) is not None and not self.outputs.pairs:
            raise FieldProblem(
                ("renderer", "pair_samples"),
                f"got {self.renderer.pair_samples}, expected it only with outputs.pairs: true "
                "(the low-sample render is the noisy half of each pair)",
            )
        return self

    @model_validator(mode="after")
    def _world_lights_the_scene(self) -> Spec:
        if self.world is None:
            return self
        # compared with the defaults, not "was it written": a resolved spec writes them all
        defaults = LightsSpec()
        for name in ("sun", "ambient"):
            mine, default = getattr(self.lights, name), getattr(defaults, name)
            if _dumped(mine) != _dumped(default):
                raise FieldProblem(
                    ("lights", name),
                    "got a value beside world.hdri, expected none: the environment map lights "
                    "the scene (the tiny backend estimates its sun and ambient level from the "
                    "map); remove lights." + name + " or world",
                )
        return self

    @model_validator(mode="after")
    def _camera_inside_room(self) -> Spec:
        """A camera that could leave the room would film its outside walls: say so up front."""
        if self.room is None:
            return self
        cam, room = self.camera, self.room
        dist = cam.distance.value_range()[1]
        el_lo, el_hi = cam.elevation.value_range()
        jitter = cam.look_at_jitter.value_range()[1]
        horiz = dist * max(
            math.cos(math.radians(e)) for e in (el_lo, el_hi, 0.0) if el_lo <= e <= el_hi
        )
        half = min(room.width.value_range()[0], room.depth.value_range()[0]) / 2
        reach_xy = horiz + math.hypot(cam.look_at[0], cam.look_at[1]) + jitter * math.sqrt(2)
        top = cam.look_at[2] + jitter + dist * max(0.0, math.sin(math.radians(el_hi)))
        low = cam.look_at[2] - jitter + dist * min(0.0, math.sin(math.radians(el_lo)))
        if reach_xy > half - 0.05:
            raise FieldProblem(
                ("camera", "distance"),
                f"the camera can be {_num_text(round(reach_xy, 3))} m from the room's centre "
                f"across the floor, but the smallest room (room.width/depth) leaves "
                f"{_num_text(round(half - 0.05, 3))} m inside the walls: bring the camera "
                "closer or make the room larger",
            )
        if top > room.height.value_range()[0] - 0.05 or low < self.ground.height + 0.05:
            raise FieldProblem(
                ("camera", "elevation"),
                f"the camera can reach heights {_num_text(round(low, 3))}.."
                f"{_num_text(round(top, 3))} m, outside the room between its floor and its "
                "lowest ceiling "
                f"({_num_text(room.height.value_range()[0])} m): lower the camera or raise "
                "room.height",
            )
        return self

    @model_validator(mode="after")
    def _person_class_free(self) -> Spec:
        if self.people is not None and PERSON_CLASS in self.objects.classes:
            raise FieldProblem(
                ("objects", "classes", PERSON_CLASS),
                f"the class name {PERSON_CLASS!r} is taken by people: (rename this class)",
            )
        return self

    @model_validator(mode="after")
    def _totals_and_sweep(self) -> Spec:
        if self.sweep is None:
            return self
        steps = self.sweep.values or range(int(self.sweep.linspace[2]))  # type: ignore[index]
        if self.count * len(steps) > MAX_COUNT:
            raise FieldProblem(
                "count",
                f"got {self.count} × {len(steps)} sweep steps = {self.count * len(steps):,} "
                f"samples, expected at most {MAX_COUNT:,}",
            )
        _check_sweep_field(self, self.sweep.field)
        _check_sweep_values(self)
        return self

    # ------------------------------------------------------------------ derived facts
    @property
    def class_names(self) -> list[str]:
        """Semantic classes in id order (1-based): the object classes, then ``person`` when
        the spec has ``people:``, then the room's classes (floor, wall, …) with ``room:``."""
        names = list(self.objects.classes)
        names = [*names, PERSON_CLASS] if self.people is not None else names
        return [*names, *STUFF_CLASSES] if self.room is not None else names

    @property
    def stuff_class_names(self) -> list[str]:
        """Classes of room geometry (no instances: only in the semantic map)."""
        return list(STUFF_CLASSES) if self.room is not None else []

    @property
    def sweep_steps(self) -> list[Any]:
        return self.sweep.steps() if self.sweep else [None]

    @property
    def total_count(self) -> int:
        return self.count * len(self.sweep_steps)

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def spec_hash(self) -> str:
        """Identity of the dataset this spec produces (everything but ``count``)."""
        return _hash(self.resolved(), ("count",))

    @property
    def scene_hash(self) -> str:
        """What seeds every sample: the spec minus count, renderer, outputs, sensor, sequence
        and world, so the same index gives the same scene whichever backend renders it,
        whatever is written, whatever the camera does after the lens, however the scene then
        moves and whatever environment map surrounds it (sensor, sequence and world draw from
        their own streams)."""
        return _hash(
            self.resolved(), ("count", "renderer", "outputs", "sensor", "sequence", "world")
        )

    def with_count(self, count: int) -> Spec:
        """This spec with another ``count`` (same range checks as in the file)."""
        steps = len(self.sweep_steps)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise SpecError(
                [f"count: got {_short(count)}, expected an integer in [1, {MAX_COUNT:,}]"]
            )
        if count * steps > MAX_COUNT:
            raise SpecError(
                [
                    f"count: got {count} × {steps} sweep steps = {count * steps:,} samples, "
                    f"expected at most {MAX_COUNT:,}"
                ]
            )
        return self.model_copy(update={"count": count})

    def sweep_variant(self, value: Any) -> Spec:
        """The spec one sweep step renders: the swept field fixed to ``value``, no sweep
        (validated like a spec written that way; raises ``ValidationError``)."""
        assert self.sweep is not None
        data = self.model_dump(mode="json", exclude={"sweep"})
        return Spec.model_validate(_with_value(data, self.sweep.field, value))


def _default_renderer() -> Any:
    from synthcv.render import backends

    return next(iter(backends().values())).options()


def _hash(resolved: dict[str, Any], drop: tuple[str, ...]) -> str:
    written = resolved.get("written_paths") or {}
    d = {k: v for k, v in resolved.items() if k not in drop and k != "written_paths"}
    if written:
        d = _as_written(d, written)
    return sha256_text(json.dumps(d, sort_keys=True, separators=(",", ":")))


def _as_written(value: Any, written: dict[str, str]) -> Any:
    """``value`` with every resolved asset path replaced by the path as written."""
    if isinstance(value, str):
        return written.get(value, value)
    if isinstance(value, dict):
        return {written.get(k, k): _as_written(v, written) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_written(v, written) for v in value]
    return value


#: In a spec that ``extends:`` another, a mapping holding ``$patch: replace`` replaces the
#: parent's value whole instead of merging into it (Kubernetes' strategic-merge directive):
#: ``yaw: {$patch: replace, uniform: [-40, 40]}`` over ``yaw: {normal: [0, 10], clip: ...}``.
PATCH_KEY = "$patch"


def _without_patch(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_patch(x) for k, x in v.items() if k != PATCH_KEY}
    return v


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and v.get(PATCH_KEY) == "replace":
            out[k] = _without_patch(v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = _without_patch(v)
    return out


_SWEEP_EXPECTED = "the spec path of a value drawn per sample, such as camera.elevation"


def _check_sweep_field(spec: Spec, path: str) -> None:
    """A sweep field must name a distribution-valued field of the spec (reported at
    ``sweep.field``)."""
    node: Any = spec
    where: list[str] = []
    for part in path.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            inside = ".".join(where) or "the spec"
            raise FieldProblem(
                ("sweep", "field"),
                f"got {_short(path)}, expected {_SWEEP_EXPECTED} ({part!r} is not a field of "
                f"{_short(inside, 60)})",
            )
        where.append(part)
    if node is None:
        raise FieldProblem(
            ("sweep", "field"),
            f"got {_short(path)}, expected {_SWEEP_EXPECTED} ({_short(path, 60)} is not set in "
            "the spec; give it a value to sweep it)",
        )
    if not isinstance(node, Distribution):
        raise FieldProblem(
            ("sweep", "field"),
            f"got {_short(path)}, expected {_SWEEP_EXPECTED} ({_short(path, 60)} is a fixed "
            "setting or a section, not a value drawn per sample)",
        )


def _with_value(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at dotted ``path`` (containers on the path copied)."""
    head, _, rest = path.partition(".")
    out = dict(data)
    out[head] = _with_value(out[head], rest, value) if rest else value
    return out


def _check_sweep_values(spec: Spec) -> None:
    """Every sweep value must be a value the swept field accepts, exactly as if written there;
    problems are reported at ``sweep.values[i]`` (or ``sweep.linspace[i]``)."""
    sweep = spec.sweep
    assert sweep is not None
    field, errors, seen = sweep.field, [], {}
    for loc, value in sweep.checked_values():
        if isinstance(value, dict | list | tuple):
            detail = (
                f"got {_short(value)}, expected one value for {field} (each sweep step fixes "
                "the field to a constant)"
            )
        else:
            key = (type(value).__name__, value)
            if key not in seen:
                seen[key] = _sweep_value_problem(spec, field, value)
            detail = seen[key]
        if detail:
            errors.append(
                InitErrorDetails(
                    type="value_error",
                    loc=("sweep", *loc),
                    input=value,
                    ctx={"error": FieldProblem((), detail)},
                )
            )
    if errors:
        raise ValidationError.from_exception_data("Spec", errors)


def _sweep_value_problem(spec: Spec, field: str, value: Any) -> str | None:
    try:
        spec.sweep_variant(value)
    except ValidationError as err:
        parts = [
            f"{p.detail} (as {field})"
            if p.path == field
            else f"with {field} = {_short(value)}: {p}"
            for p in validation_problems(err, Spec)
        ]
        return "; ".join(parts)
    return None


# --------------------------------------------------------------------------- errors


class SpecError(ConfigError):
    """A spec failed validation; ``problems`` lists ``path: got X, expected Y`` lines."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        super().__init__(problems, source)


def format_validation_error(err: ValidationError, root: type[BaseModel] | None = None) -> list[str]:
    """:func:`synthcv.validation.format_validation_error`, rooted at :class:`Spec` by default."""
    return _format_validation_error(err, root or Spec)


# --------------------------------------------------------------------------- loading

MAX_EXTENDS = 8  # files in an ``extends:`` chain
ASSET_ROOT_ENV = "SYNTHCV_ASSET_ROOT"


def _inside(path: Path, root: Path | None) -> bool:
    return root is None or path == root or path.is_relative_to(root)


def _asset_root(asset_root: str | os.PathLike[str] | None) -> Path | None:
    """The directory no asset path or ``extends:`` may leave: the argument, else
    ``$SYNTHCV_ASSET_ROOT``, else none (symlinks resolved)."""
    raw = asset_root if asset_root is not None else os.environ.get(ASSET_ROOT_ENV) or None
    if raw is None:
        return None
    source = "asset_root" if asset_root is not None else ASSET_ROOT_ENV
    try:
        root = Path(raw).expanduser().resolve()
        ok = root.is_dir()
    except (OSError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise SpecError(
            [f"asset root: got {_short(str(raw))}, expected an existing directory"], source
        )
    return root


def _is_file_value(kind: str, value: str) -> bool:
    """Whether an asset value names a file (resolved against the spec's directory) rather
    than something bundled (a pybullet_data texture, a matplotlib font) or a keyword."""
    from synthcv.assets.glyphs import is_font_file
    from synthcv.assets.textures import is_texture_file

    if kind == "texture":
        return is_texture_file(value)
    if kind == "hdri":
        from synthcv.render.environment_map import BUNDLED_HDRIS, HDRI_SUFFIXES

        return value not in BUNDLED_HDRIS and (
            Path(value).suffix.lower() in HDRI_SUFFIXES or "/" in value or os.sep in value
        )
    if kind == "font":
        return is_font_file(value)
    return bool(value)  # mesh: always a file


def _path_slots(data: dict[str, Any]) -> Iterator[tuple[str, Any, Any, str]]:
    """``(field path, container, key, kind)`` of every asset-file value in raw spec data:
    textures, fonts and mesh files, wherever a spec may write them (``objects.defaults``
    included, and ``sweep.values`` when the sweep steps one of them). Malformed sections are
    skipped: validation reports them."""

    def section(d: Any, key: str) -> dict[str, Any] | None:
        v = d.get(key) if isinstance(d, dict) else None
        return v if isinstance(v, dict) else None

    def material(where: str, m: Any) -> Iterator[tuple[str, Any, Any, str]]:
        if isinstance(m, dict) and "texture" in m:
            yield f"{where}.texture", m, "texture", "texture"

    def asset(where: str, a: Any) -> Iterator[tuple[str, Any, Any, str]]:
        for k in ("font", "mesh"):
            if isinstance(a, dict) and k in a:
                yield f"{where}.{k}", a, k, k

    ground = section(data, "ground")
    if ground is not None and "texture" in ground:
        yield "ground.texture", ground, "texture", "texture"
    world = section(data, "world")
    if world is not None and "hdri" in world:
        yield "world.hdri", world, "hdri", "hdri"
    room = section(data, "room")
    if room is not None:
        for part in ("floor", "walls", "ceiling"):
            yield from material(f"room.{part}", room.get(part))
        for part in ("table", "furniture"):
            yield from material(f"room.{part}.surface", (section(room, part) or {}).get("surface"))
    objects = section(data, "objects")
    defaults = section(objects, "defaults")
    if defaults is not None:
        yield from material("objects.defaults.material", defaults.get("material"))
        yield from asset("objects.defaults.asset", defaults.get("asset"))
    for name, c in (section(objects, "classes") or {}).items():
        if isinstance(c, dict):
            where = format_loc(("objects", "classes", str(name)))
            yield from material(f"{where}.material", c.get("material"))
            yield from asset(f"{where}.asset", c.get("asset"))
    distractors = section(data, "distractors")
    if distractors is not None:
        yield from material("distractors.material", distractors.get("material"))
        assets = distractors.get("assets")
        for i, a in enumerate(assets if isinstance(assets, list) else []):
            yield from asset(f"distractors.assets[{i}]", a)
    sweep = section(data, "sweep")
    if sweep is not None and isinstance(sweep.get("field"), str):
        field, values = sweep["field"], sweep.get("values")
        kind = (
            "texture"
            if field == "ground.texture" or field.endswith(".material.texture")
            else field.rsplit(".", 1)[-1]
        )
        if kind in ("texture", "font", "mesh") and isinstance(values, list):
            for i in range(len(values)):
                yield f"sweep.values[{i}]", values, i, kind


def _resolve_asset_paths(
    data: dict[str, Any],
    base_dir: Path,
    root: Path | None,
    problems: list[str],
    written: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``data`` with every relative asset file made absolute against ``base_dir`` (the spec
    file's directory; symlinks resolved), so the resolved spec records the file that is read
    whatever the working directory; files outside ``root`` are reported in ``problems``.
    Absolute paths stay as written. ``data`` itself is never modified. ``written`` collects
    resolved path → path as written (the hashes use the written form)."""

    def one(where: str, kind: str, value: Any) -> Any:
        if not isinstance(value, str) or not _is_file_value(kind, value):
            return value
        try:
            p = Path(value).expanduser()
            full = (p if p.is_absolute() else base_dir / p).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            problems.append(f"{where}: got {_short(value)}, expected a file path ({exc})")
            return value
        if not _inside(full, root):
            via = "" if str(full) == value else f" (it resolves to {_short(str(full), 120)})"
            problems.append(
                f"{where}: got {_short(value)}, expected a path inside the asset root {root}{via}"
            )
        if p.is_absolute():
            return value
        if written is not None:
            written[str(full)] = value
        return str(full)

    def rewrite(where: str, kind: str, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"choice"}:
            c = value["choice"]
            if isinstance(c, list):
                return {"choice": [one(where, kind, v) for v in c]}
            if isinstance(c, dict):
                return {"choice": {one(where, kind, k): w for k, w in c.items()}}
        return one(where, kind, value)

    changes = []
    for where, container, key, kind in _path_slots(data):
        new = rewrite(where, kind, container[key])
        if new != container[key]:
            changes.append((where, key, new))
    if not changes:
        return data
    import copy

    out = copy.deepcopy(data)
    slots = {where: (container, key) for where, container, key, _ in _path_slots(out)}
    for where, key, new in changes:
        container, _ = slots[where]
        container[key] = new
    return out


def _load_text(text: str, label: str) -> Any:
    try:
        return load_yaml(text)
    except YAMLProblem as exc:
        raise SpecError([str(exc)], label) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        else:  # a reader error (a control character) knows only its offset
            where = f"character {getattr(exc, 'position', '?')}"
        raise SpecError([f"YAML syntax error at {where}: {exc}"], label) from None


def _extend(
    data: dict[str, Any],
    base_dir: Path,
    label: str,
    root: Path | None,
    problems: list[str],
    depth: int = 0,
    written: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``extends: other.yaml`` (relative to this file): this spec deep-merged over that one."""
    data = dict(data)
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent or len(parent) > 4096:
        raise SpecError([f"extends: got {_short(parent)}, expected the path of a spec file"], label)
    path = base_dir / parent
    if depth >= MAX_EXTENDS:
        raise SpecError([f"extends: chain deeper than {MAX_EXTENDS} files at {path}"], label)
    try:
        full = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise SpecError(
            [f"extends: got {_short(parent)}, expected a spec file ({exc})"], label
        ) from None
    if not _inside(full, root):
        raise SpecError(
            [f"extends: got {_short(parent)}, expected a spec file inside the asset root {root}"],
            label,
        )
    try:
        text = read_text(path)
    except YAMLProblem as exc:
        what = "a spec file" if exc.detail == "not found" else "a UTF-8 YAML spec file"
        raise SpecError(
            [f"extends: got {_short(parent)}, expected {what} ({path}: {exc.detail})"], label
        ) from None
    try:
        base = load_yaml(text)
    except YAMLProblem as exc:
        raise SpecError([f"extends: {path}: {exc}"], label) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"extends: {path} is not valid YAML: {exc}"], label) from None
    if not isinstance(base, dict):
        raise SpecError([f"extends: {path} does not hold a mapping"], label)
    base = _resolve_asset_paths(base, path.parent, root, problems, written)
    if "extends" in base:
        base = _extend(base, path.parent, label, root, problems, depth + 1, written)
    return _deep_merge(base, data)


def _names_a_file(text: str) -> bool:
    """Whether a string given to :func:`load_spec` is a file name rather than YAML text."""
    if "\n" in text or "\0" in text or len(text) > 4096:
        return False
    if Path(text).suffix in (".yaml", ".yml", ".json"):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def load_spec(
    source: str | Path | dict,
    *,
    overrides: dict[str, Any] | None = None,
    asset_root: str | os.PathLike[str] | None = None,
) -> Spec:
    """Validate a spec from a YAML file path, YAML text or a dict. Raises :class:`SpecError`.

    Relative asset files (textures, fonts, meshes) and ``extends:`` resolve against the spec
    file's directory (the working directory for text and dicts) and are recorded as absolute
    paths. With ``asset_root`` (default: ``$SYNTHCV_ASSET_ROOT``) no asset file or
    ``extends:`` may lie outside that directory, symlinks resolved: for specs from someone
    else. Input is read within the limits of :mod:`synthcv.safeyaml` (size, nesting, aliases).
    """
    label = "spec"
    root = _asset_root(asset_root)
    base_dir = Path.cwd()
    if isinstance(source, dict):
        data: Any = source
    else:
        text = str(source)
        if isinstance(source, Path) or _names_a_file(text):
            path = Path(source)
            label = str(path)
            try:
                text = read_text(path)
            except YAMLProblem as exc:
                line = (
                    f"file not found: {path}"
                    if exc.detail == "not found"
                    else f"(file): {exc.detail}, expected a UTF-8 YAML spec file"
                )
                raise SpecError([line], label) from None
            base_dir = path.absolute().parent
        data = _load_text(text, label)
    shape = check_shape(data)
    if shape:
        raise SpecError([str(p) for p in shape], label)
    if not isinstance(data, dict):
        raise SpecError([f"(top level): got {_short(data)}, expected a mapping"], label)
    problems: list[str] = []
    written: dict[str, str] = {}
    data = _resolve_asset_paths(data, base_dir, root, problems, written)
    if "extends" in data:
        data = _extend(data, base_dir, label, root, problems, written=written)
    if overrides:
        shape = check_shape(overrides)
        if shape:
            raise SpecError([f"overrides: {p}" for p in shape], label)
        over = _resolve_asset_paths(overrides, Path.cwd(), root, problems, written)
        data = _deep_merge(data, over)
    if written:  # merged with what a resolved spec (e.g. from a manifest) already records
        known = data.get("written_paths")
        data = {**data, "written_paths": {**(known if isinstance(known, dict) else {}), **written}}
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        problems += format_validation_error(err)
    except RecursionError:  # a structure within the limits that pydantic still cannot walk
        problems.append("(top level): nested too deeply to validate")
    if problems:
        raise SpecError(problems, label)
    return spec
