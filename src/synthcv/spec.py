"""The dataset spec: a YAML document validated by pydantic into a :class:`Spec`.

Every problem in a bad spec is reported at once as ``field.path: got X, expected Y``; unknown keys
get a "did you mean" hint. The scene hash (canonical JSON of the resolved spec minus ``count``,
``renderer`` and ``outputs``) seeds every sample, so growing ``count`` keeps the existing samples
and every backend renders the same scenes.
"""

from __future__ import annotations

import json
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
    model_serializer,
    model_validator,
)

from synthcv.assets.kinds import names as asset_kind_names
from synthcv.distributions import Distribution, constant, parse_distribution
from synthcv.fileio import sha256_text
from synthcv.validation import ConfigError
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


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    #: Optional fields added after format 2 (e.g. a new asset kind's key): left out of the
    #: resolved spec while unset, so adding an option never changes the scene hash, and thus
    #: the samples, of a spec that does not use it. List every such new field here.
    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unset_new_fields(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.HASH_STABLE_OPTIONAL:
                if getattr(self, name, None) is None:
                    data.pop(name, None)
        return data


class HSVColor(StrictModel):
    """A colour drawn in HSV (each channel in [0, 1]); ``[lo, hi]`` is a uniform range."""

    h: Range = constant(0.0)
    s: Range = constant(0.0)
    v: Range = constant(0.8)


class ImageSpec(StrictModel):
    width: int = Field(256, ge=8, le=8192)
    height: int = Field(256, ge=8, le=8192)
    channels: Literal[1, 3] = 3
    supersample: int = Field(
        1, ge=1, le=8, description="render at N× and box-filter RGB down (labels: centre sample)"
    )


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


class CameraSpec(StrictModel):
    distance: Num = constant(1.0)
    elevation: Num = constant(45.0)  # degrees above the ground plane
    azimuth: Num = constant(0.0)  # degrees, counter-clockwise from +x
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0)
    look_at_jitter: Num = constant(0.0)  # metres, uniform per axis in ±value
    fov: Num = constant(45.0)  # vertical, degrees
    near: float = Field(0.01, gt=0)
    far: float = Field(20.0, gt=0)


class SunSpec(StrictModel):
    elevation: Num = constant(60.0)
    azimuth: Num = constant(30.0)
    intensity: Num = constant(1.0)
    color: HSVColor = HSVColor(h=constant(0.0), s=constant(0.0), v=constant(1.0))


class LightsSpec(StrictModel):
    sun: SunSpec = SunSpec()
    ambient: Num = constant(0.4)


class MaterialSpec(StrictModel):
    roughness: Num = constant(0.5)
    metallic: Num = constant(0.0)
    texture: Cat = constant(None)  # pybullet_data texture name, file path, or none
    procedural: Cat = constant(None)  # noise | checker (cycles)


class GroundSpec(StrictModel):
    enabled: bool = True
    height: float = 0.0
    size: float = Field(20.0, gt=0)
    color: HSVColor = HSVColor(v=constant(0.5))
    texture: Cat = constant(None)
    texture_scale: Num = constant(1.0)
    roughness: Num = constant(0.8)


class AssetSpec(StrictModel):
    """Exactly one kind key: primitive, pybullet, mesh or glyph; other keys are its options."""

    primitive: Cat | None = None
    pybullet: Cat | None = None
    mesh: Cat | None = None
    glyph: Cat | None = None
    size: Num | None = None
    dims: tuple[float, float, float] | None = None
    radius: Num | None = None
    height: Num | None = None
    major_radius: Num | None = None
    minor_radius: Num | None = None
    units: float | None = None
    font: Cat | None = None
    depth: Num | None = None
    stroke: Num | None = None  # glyph: stroke width change, fraction of the glyph height
    shear: Num | None = None  # glyph: slant in degrees
    wobble: Num | None = None  # glyph: smooth random bend, fraction of the glyph height
    style: Num | None = None  # glyph: seed of the bend and of the hand font's way of writing
    keypoints: dict[str, tuple[float, float, float]] | None = None

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

    x: Num = _range_or_dist([-0.25, 0.25])
    y: Num = _range_or_dist([-0.25, 0.25])
    z: Num = constant(0.0)  # height of the lowest point above the ground (before the drop)
    drop_height: Num = _range_or_dist([0.05, 0.3])
    rotation: Literal["random", "upright", "euler"] = "random"
    roll: Num = constant(0.0)  # degrees, used when rotation: euler
    pitch: Num = constant(0.0)
    yaw: Num = _range_or_dist([0.0, 360.0])


class ClassSpec(StrictModel):
    weight: float = Field(1.0, ge=0)
    asset: AssetSpec
    scale: Num = constant(1.0)
    color: HSVColor = HSVColor(h=_range_or_dist([0, 1]), s=constant(0.7))
    material: MaterialSpec = MaterialSpec()
    mass: float = Field(1.0, gt=0)


class ObjectsSpec(StrictModel):
    count: Num = constant(1)
    classes: dict[str, ClassSpec]
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
    def _nonempty(cls, v: dict[str, ClassSpec]) -> dict[str, ClassSpec]:
        if not v:
            raise ValueError("at least one class")
        if sum(c.weight for c in v.values()) <= 0:
            raise ValueError("class weights that sum to more than 0")
        return v


class DistractorsSpec(StrictModel):
    count: Num = constant(0)
    assets: list[AssetSpec] = [AssetSpec(primitive=constant("cube"))]
    scale: Num = _range_or_dist([0.5, 1.5])
    color: HSVColor = HSVColor(
        h=_range_or_dist([0, 1]), s=_range_or_dist([0, 1]), v=_range_or_dist([0.2, 1])
    )
    material: MaterialSpec = MaterialSpec()


class PhysicsSpec(StrictModel):
    enabled: bool = True
    steps: int = Field(480, ge=0, description="max simulation steps (stops early when at rest)")
    timestep: float = Field(1 / 240, gt=0)
    friction: float = Field(0.8, ge=0)


class OutputsSpec(StrictModel):
    rgb: bool = True
    depth: bool = True
    instance: bool = True
    semantic: bool = True
    normals: bool = True
    shard_size: int = Field(16, ge=1, le=100000)


class SweepSpec(StrictModel):
    """Hold everything fixed and step one field; each step re-uses the same ``count`` scenes."""

    field: str
    values: list[Any] | None = None
    linspace: tuple[float, float, int] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SweepSpec:
        if (self.values is None) == (self.linspace is None):
            raise ValueError("exactly one of values: [...] or linspace: [start, stop, num]")
        if self.linspace is not None and self.linspace[2] < 1:
            raise ValueError("linspace: [start, stop, num] with num >= 1")
        if self.values is not None and not self.values:
            raise ValueError("values: a non-empty list")
        return self

    def steps(self) -> list[Any]:
        if self.values is not None:
            return list(self.values)
        a, b, n = self.linspace  # type: ignore[misc]
        if n == 1:
            return [float(a)]
        return [float(a + (b - a) * i / (n - 1)) for i in range(int(n))]


class Spec(StrictModel):
    count: int = Field(16, ge=1, description="samples (per sweep step for sweeps)")
    seed: int = 0
    image: ImageSpec = ImageSpec()
    renderer: RendererSpec = Field(default_factory=lambda: _default_renderer())
    camera: CameraSpec = CameraSpec()
    lights: LightsSpec = LightsSpec()
    ground: GroundSpec = GroundSpec()
    background: HSVColor = HSVColor(v=constant(0.0))
    objects: ObjectsSpec
    distractors: DistractorsSpec = DistractorsSpec()
    physics: PhysicsSpec = PhysicsSpec()
    outputs: OutputsSpec = OutputsSpec()
    sweep: SweepSpec | None = None

    @model_validator(mode="after")
    def _sweep_field_exists(self) -> Spec:
        if self.sweep is not None:
            _check_sweep_field(self, self.sweep.field)
        return self

    # ------------------------------------------------------------------ derived facts
    @property
    def class_names(self) -> list[str]:
        return list(self.objects.classes)

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
        """What seeds every sample: the spec minus count, renderer and outputs, so the same
        index gives the same scene whichever backend renders it and whatever is written."""
        return _hash(self.resolved(), ("count", "renderer", "outputs"))

    def with_count(self, count: int) -> Spec:
        return self.model_copy(update={"count": count})


def _default_renderer() -> Any:
    from synthcv.render import backends

    return next(iter(backends().values())).options()


def _hash(resolved: dict[str, Any], drop: tuple[str, ...]) -> str:
    d = {k: v for k, v in resolved.items() if k not in drop}
    return sha256_text(json.dumps(d, sort_keys=True, separators=(",", ":")))


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def _check_sweep_field(spec: Spec, path: str) -> None:
    """A sweep field must name a distribution-valued field of the spec."""
    node: Any = spec
    for part in path.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ValueError(f"sweep.field {path!r} does not name a spec field (at {part!r})")
    if not isinstance(node, Distribution):
        raise ValueError(f"sweep.field {path!r} must name a numeric or categorical value field")


# --------------------------------------------------------------------------- errors


class SpecError(ConfigError):
    """A spec failed validation; ``problems`` lists ``path: got X, expected Y`` lines."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        super().__init__(problems, source)


def format_validation_error(err: ValidationError, root: type[BaseModel] | None = None) -> list[str]:
    """:func:`synthcv.validation.format_validation_error`, rooted at :class:`Spec` by default."""
    return _format_validation_error(err, root or Spec)


def _extend(data: dict[str, Any], base_dir: Path, label: str, depth: int = 0) -> dict[str, Any]:
    """``extends: other.yaml`` (relative to this file): this spec deep-merged over that one."""
    data = dict(data)
    parent = data.pop("extends")
    path = base_dir / str(parent)
    if depth > 8:
        raise SpecError([f"extends: chain deeper than 8 files at {path}"], label)
    if not path.is_file():
        raise SpecError(
            [f"extends: got {str(parent)!r}, expected a spec file ({path} not found)"], label
        )
    try:
        base = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError([f"extends: {path} is not valid YAML: {exc}"], label) from None
    if not isinstance(base, dict):
        raise SpecError([f"extends: {path} does not hold a mapping"], label)
    if "extends" in base:
        base = _extend(base, path.parent, label, depth + 1)
    return _deep_merge(base, data)


def load_spec(source: str | Path | dict, *, overrides: dict[str, Any] | None = None) -> Spec:
    """Validate a spec from a YAML file path, YAML text or a dict. Raises :class:`SpecError`."""
    label = "spec"
    if isinstance(source, dict):
        data = source
    else:
        text = str(source)
        single_line = "\n" not in text
        looks_like_file = single_line and Path(text).suffix in (".yaml", ".yml", ".json")
        if isinstance(source, Path) or looks_like_file or (single_line and Path(text).is_file()):
            path = Path(source)
            if not path.is_file():
                raise SpecError([f"file not found: {path}"], str(path))
            label, text = str(path), path.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            raise SpecError([f"YAML syntax error at {where}: {exc}"], label) from None
    if not isinstance(data, dict):
        raise SpecError([f"(top level): got {_short(data)}, expected a mapping"], label)
    if "extends" in data:
        data = _extend(data, Path(label).parent if label != "spec" else Path.cwd(), label)
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err), label) from None
