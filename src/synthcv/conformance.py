"""Factor conformance: does a dataset's realized factor distribution match what its spec asked?

A dataset records every realized factor under the spec path it was drawn from, and its manifest
records the resolved spec. :func:`check_conformance` tests each factor column against the
distribution at that path, so a sampler bug, a hand-edited parquet file or a manifest that does
not describe its samples shows up as a flagged row instead of a silently skewed dataset.

How each factor is tested:

- ``uniform``, ``loguniform``, ``normal``: Kolmogorov–Smirnov against the exact CDF.
- ``normal`` with ``clip``: the clip bounds are atoms (every draw beyond a bound lands on it).
  The counts (at the low bound, strictly inside, at the high bound) get a goodness-of-fit test
  against the atom masses, the inside values a KS test against the truncated normal; the two
  p-values are independent under the null (given how many values fall inside, those values are
  iid truncated normal) and are combined with Fisher's method.
- ``randint``, ``choice`` (weights respected): chi-square goodness of fit. Bins expected to hold
  fewer than 5 values are pooled (smallest first) until every bin holds 5; when pooling leaves
  a single bin (one category holds nearly everything) the p-value is a seeded Monte Carlo
  multinomial test of the unpooled chi-square statistic instead.
- A value the distribution cannot draw (outside a uniform's range, a category not in the
  choice) makes the p-value 0: no sample size excuses an impossible value.

The sampler's own transforms are applied to the distribution first: hues are recorded modulo 1
(``color_h``: the CDF is wrapped), counts are rounded (``objects.count``: a continuous count
becomes a discrete distribution over integers), categories record ``"none"`` for no texture.
Per-object factors are tested per class (``objects.classes.<class>.<field>``, after
``objects.defaults`` were merged in) and pooled over classes whose distribution is identical;
distractors are tested against ``distractors.<field>``; the class column against the class
weights. For a sweep only the first step's samples are used: every step re-renders the same
base scenes, so later steps repeat the same draws.

Multiple testing: Holm–Bonferroni over all tested rows at ``alpha``. Rows that cannot be tested
say why: constant or degenerate, the swept field, no distribution at that path (a derived
factor such as an RGB colour or the jittered look-at point), the placed count or size-selected
objects under ``objects.pose.max_overlap``, physics-settled quantities, fewer than 20 values.

Layer 1: it reads the manifest's resolved spec JSON with :mod:`synthcv.distributions` rather
than rebuilding a :class:`synthcv.spec.Spec`, so it needs no pydantic model, renderer or asset.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats

from synthcv.distributions import Distribution, parse_distribution
from synthcv.format import open_dataset
from synthcv.format.layout import (
    OBJECT_ID_COLUMNS,
    OBJECT_LABEL_COLUMNS,
    SAMPLE_ID_COLUMNS,
    SAMPLE_OUTCOME_COLUMNS,
)

#: Fewer realized values than this are not tested (a test would have almost no power).
MIN_VALUES = 20
#: Chi-square bins are pooled until each is expected to hold at least this many values.
MIN_EXPECTED = 5.0
#: Draws of the Monte Carlo multinomial test (seeded: the same dataset gives the same p).
MONTE_CARLO_DRAWS = 20_000
#: A hue distribution wrapping more often than this around [0, 1) is not tested.
MAX_WRAPS = 1000

#: samples.parquet columns that locate files or describe the rendering, not drawn factors.
SAMPLE_COLUMNS = SAMPLE_ID_COLUMNS | SAMPLE_OUTCOME_COLUMNS
#: objects.parquet columns that are identifiers or labels, not factors.
LABEL_COLUMNS = OBJECT_ID_COLUMNS | OBJECT_LABEL_COLUMNS
#: Per-object attribute column → the path under its class (or ``distractors``) it is drawn at.
OBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "scale": ("scale",),
    "color_h": ("color", "h"),
    "color_s": ("color", "s"),
    "color_v": ("color", "v"),
    "roughness": ("material", "roughness"),
    "metallic": ("material", "metallic"),
    "texture": ("material", "texture"),
    "procedural": ("material", "procedural"),
    "glyph.text": ("asset", "glyph"),
    "glyph.font": ("asset", "font"),
    "glyph.stroke": ("asset", "stroke"),
    "glyph.shear": ("asset", "shear"),
    "glyph.wobble": ("asset", "wobble"),
    "glyph.aspect": ("asset", "aspect"),
    "glyph.repertoire": ("asset", "repertoire"),
    "glyph.flourish": ("asset", "flourish"),
    "glyph.pressure": ("asset", "pressure"),
}
#: Per-object factors that shape an object's footprint: placement with ``max_overlap`` keeps
#: only objects that found room, so the kept ones are selected on these.
FOOTPRINT_FIELDS = frozenset(
    {"scale", "glyph.text", "glyph.font"}
    | {
        f"glyph.{k}"
        for k in ("stroke", "shear", "wobble", "aspect", "repertoire", "flourish", "pressure")
    }
)
#: Scene factors recorded after rounding the draw (``max(0, round(x))``).
ROUNDED = frozenset({"objects.count", "distractors.count", "sensor.jpeg_quality"})

NOT_TESTED_DERIVED = "no distribution at this spec path: a derived factor"
OBJECT_DERIVED = {
    "asset": f"{NOT_TESTED_DERIVED} (the mesh the asset built)",
    "glyph.variant": f"{NOT_TESTED_DERIVED} (the hand font's way of writing, from glyph and style)",
}


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ConformanceRow:
    """One factor (or one group of classes sharing a distribution) and its test.

    ``test`` is None for a row that was not tested; ``note`` then says why. ``p_adjusted`` is
    the Holm–Bonferroni adjusted p-value; ``flagged`` means it is at most the report's alpha.
    """

    factor: str
    spec_path: str
    distribution: str
    n: int
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    flagged: bool = False
    note: str = ""

    @property
    def tested(self) -> bool:
        return self.p_value is not None


@dataclass
class ConformanceReport:
    """Every factor column of a dataset, tested or with the reason it was not."""

    rows: list[ConformanceRow]
    alpha: float
    dataset: str = ""

    @property
    def flagged(self) -> list[ConformanceRow]:
        """Rows whose values do not follow the spec (Holm-adjusted p ≤ alpha), worst first."""
        return [r for r in self.sorted_rows() if r.flagged]

    @property
    def tested(self) -> list[ConformanceRow]:
        return [r for r in self.rows if r.tested]

    @property
    def skipped(self) -> list[ConformanceRow]:
        return [r for r in self.rows if not r.tested]

    def row(self, factor: str) -> ConformanceRow:
        """The row of ``factor`` (KeyError if the dataset has no such factor row)."""
        for r in self.rows:
            if r.factor == factor:
                return r
        raise KeyError(factor)

    def sorted_rows(self) -> list[ConformanceRow]:
        """Flagged rows first, then tested rows by p-value (worst first), then the untested."""

        def key(r: ConformanceRow) -> tuple[Any, ...]:
            if not r.tested:
                return (2, 0.0, 0.0, r.factor)
            return (0 if r.flagged else 1, r.p_adjusted, r.p_value, r.factor)

        return sorted(self.rows, key=key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite statistics become None."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "dataset": self.dataset,
            "alpha": self.alpha,
            "tested": len(self.tested),
            "flagged": [r.factor for r in self.flagged],
            "rows": [{k: clean(v) for k, v in asdict(r).items()} for r in self.sorted_rows()],
        }

    def to_markdown(self) -> str:
        """A table, flagged rows first, then by p-value (worst first), untested rows last."""
        head = (
            f"{len(self.tested)} factors tested, {len(self.flagged)} flagged "
            f"(Holm–Bonferroni, alpha {self.alpha:g})"
        )
        lines = [
            head,
            "",
            "| factor | spec path | distribution | n | test | statistic | p | p (Holm) | "
            "flagged | note |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.sorted_rows():
            cells = [
                r.factor,
                r.spec_path,
                r.distribution,
                str(r.n),
                r.test or "not tested",
                _num(r.statistic),
                _num(r.p_value),
                _num(r.p_adjusted),
                "**yes**" if r.flagged else ("no" if r.tested else ""),
                r.note,
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if x == 0 or abs(x) >= 1e-3 else f"{x:.2e}"


# --------------------------------------------------------------------------- entry point


def check_conformance(
    dataset_dir: str | os.PathLike[str], alpha: float = 0.01
) -> ConformanceReport:
    """Test every factor column of the dataset at ``dataset_dir`` against its spec.

    Returns a :class:`ConformanceReport`: one row per factor (per class group for per-object
    factors), Holm–Bonferroni adjusted across the tested rows at ``alpha``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: got {alpha!r}, expected a number in (0, 1)")
    ds = open_dataset(dataset_dir)
    spec = ds.manifest.get("spec")
    if not isinstance(spec, dict):
        raise ValueError(f"{dataset_dir}: manifest.json records no spec to test against")
    ctx = _Context(spec)
    samples, objects = ds.samples, ds.objects
    if ctx.sweep_field is not None:  # later steps repeat the first step's base scenes
        count = int(spec.get("count", len(samples)))
        samples = _first(samples, count)
        objects = _first(objects, count)
    rows = list(_scene_rows(ctx, samples))
    order = [c.get("name") for c in ds.classes if isinstance(c, dict)]
    rows += list(_object_rows(ctx, objects, order))
    return ConformanceReport(_holm(rows, alpha), alpha, str(dataset_dir))


def _first(table: pa.Table, count: int) -> pa.Table:
    if not len(table):
        return table
    keep = np.asarray(table.column("sample_index").to_numpy(zero_copy_only=False)) < count
    return table.filter(pa.array(keep))


def _holm(rows: list[ConformanceRow], alpha: float) -> list[ConformanceRow]:
    """Rows with Holm–Bonferroni adjusted p-values (step-down, monotone) and flags."""
    tested = sorted((r.p_value, i) for i, r in enumerate(rows) if r.p_value is not None)
    m, running = len(tested), 0.0
    adjusted: dict[int, float] = {}
    for k, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    out = []
    for i, r in enumerate(rows):
        if i in adjusted:
            r = replace(r, p_adjusted=adjusted[i], flagged=adjusted[i] <= alpha)
        out.append(r)
    return out


# --------------------------------------------------------------------------- the spec


class _Context:
    """What the resolved spec says beyond single fields: the sweep, placement, asset paths."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        sweep = spec.get("sweep")
        self.sweep_field: str | None = sweep.get("field") if isinstance(sweep, dict) else None
        pose = _lookup(spec, ("objects", "pose"))[1]
        self.max_overlap = isinstance(pose, dict) and pose.get("max_overlap") is not None
        written = spec.get("written_paths")
        self.written: dict[str, str] = written if isinstance(written, dict) else {}


def _lookup(spec: Any, path: Iterable[str | int]) -> tuple[bool, Any]:
    """(found, value) at ``path`` in the resolved spec JSON."""
    node = spec
    for part in path:
        if isinstance(node, list) and isinstance(part, str) and part.isdigit():
            part = int(part)  # a factor names a list item by its index: lights.lamps.0.power
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_dict or in_list):
            return False, None
        node = node[part]
    return True, node


def _distribution(spec: Any, path: Iterable[str | int]) -> Distribution | None:
    """The distribution at ``path``, or None where there is none (a section, a fixed setting,
    no such field)."""
    found, value = _lookup(spec, path)
    if not found or isinstance(value, list | tuple):
        return None
    try:
        return parse_distribution(value)
    except ValueError:
        return None


def _dist_text(d: Distribution) -> str:
    """The distribution as the spec writes it (choice weights to 6 significant digits)."""
    j = d.to_json()
    if isinstance(j, dict) and isinstance(j.get("choice"), dict):
        j = {"choice": {k: float(f"{w:.6g}") for k, w in j["choice"].items()}}
    return json.dumps(j, separators=(", ", ": "), default=str)


# --------------------------------------------------------------------------- scene factors


def _scene_rows(ctx: _Context, samples: pa.Table) -> Iterable[ConformanceRow]:
    for col in samples.column_names:
        if col in SAMPLE_COLUMNS:
            continue
        values = samples.column(col).to_pylist()
        yield _scene_row(ctx, col, values, pa.types.is_string(samples.schema.field(col).type))


def _scene_row(ctx: _Context, col: str, values: list[Any], text: bool) -> ConformanceRow:
    def skip(note: str, dist: Distribution | None = None) -> ConformanceRow:
        return ConformanceRow(col, col, _dist_text(dist) if dist else "", len(values), note=note)

    if col.startswith("physics."):
        return skip("physics-settled quantity, not drawn from the spec")
    if col in ("sweep.step", "sweep.value"):
        return skip("sweep bookkeeping: set per step, not drawn")
    if col.startswith("augment."):
        return skip("augmentation parameter (synthcv augment), not drawn from the spec")
    dist = _distribution(ctx.spec, col.split("."))
    if col == ctx.sweep_field:
        return skip("swept field: sweep.field overrides it per step", dist)
    if col == "objects.count" and ctx.max_overlap:
        return skip(
            "with objects.pose.max_overlap this is the placed count, not the drawn one", dist
        )
    if dist is None:
        return skip(_derived_note(col))
    if col == "sensor.iso" and dist.kind == "constant" and dist.params[0] == "auto":
        return skip(f"{NOT_TESTED_DERIVED} (iso: auto is 100 · 2^-sensor.exposure_ev)")
    transform = "round" if col in ROUNDED else ("category" if text else "number")
    return _test_row(col, col, dist, transform, values, ctx.written)


def _derived_note(col: str) -> str:
    """Why a factor column has no distribution of its own at its path."""
    head, _, last = col.rpartition(".")
    if last in ("r", "g", "b") and head in ("lights.sun.color", "ground.color", "background"):
        return f"{NOT_TESTED_DERIVED} (RGB of the HSV colour drawn at {head}.h/s/v)"
    if head == "camera.look_at":
        return f"{NOT_TESTED_DERIVED} (camera.look_at plus a uniform ±look_at_jitter)"
    if col == "camera.frame.zoom":
        return f"{NOT_TESTED_DERIVED} (the focal-length factor camera.frame applied)"
    if col == "objects.left_out":
        return f"{NOT_TESTED_DERIVED} (drawn objects that found no room)"
    if col.startswith("world.sun.") or col == "world.ambient":
        return (
            f"{NOT_TESTED_DERIVED} (estimated from the environment map: the tiny backend's light)"
        )
    if col in ("room.windows.placed", "room.furniture.placed"):
        return f"{NOT_TESTED_DERIVED} (how many found a place in the room)"
    if last in ("r", "g", "b") and head.startswith("room."):
        return f"{NOT_TESTED_DERIVED} (RGB of the HSV colour drawn at {head}.h/s/v)"
    return NOT_TESTED_DERIVED


# --------------------------------------------------------------------------- object factors


@dataclass
class _Owner:
    """A class (or the distractors): where its per-object factors are drawn in the spec."""

    name: str
    path: tuple[str | int, ...]
    text: str  # dotted, as the sampler names draws (``objects.classes.cube``)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _object_rows(ctx: _Context, objects: pa.Table, order: list[str]) -> Iterable[ConformanceRow]:
    """Per-object factor rows; classes in class-id order (``order``: the manifest's classes;
    the manifest's spec JSON has its keys sorted)."""
    if not len(objects) or "class_name" not in objects.column_names:
        return
    names = np.array(objects.column("class_name").to_pylist(), dtype=object)
    if "is_distractor" in objects.column_names:
        distractor = np.array(objects.column("is_distractor").to_pylist(), dtype=bool)
    else:
        distractor = names == "distractor"
    owners: list[_Owner] = []
    classes = _lookup(ctx.spec, ("objects", "classes"))[1] or {}
    for name in sorted(classes, key=lambda c: order.index(c) if c in order else len(order)):
        rows = (names == name) & ~distractor
        owners.append(_Owner(name, ("objects", "classes", name), f"objects.classes.{name}", rows))
    owners.append(_Owner("distractor", ("distractors",), "distractors", distractor))
    owners = [o for o in owners if o.rows.any()]

    yield from _class_weights(ctx, classes, names[~distractor])
    for col in objects.column_names:
        if col in LABEL_COLUMNS:
            continue
        values = np.array(objects.column(col).to_pylist(), dtype=object)
        text = pa.types.is_string(objects.schema.field(col).type)
        yield from _object_column(ctx, col, values, text, owners)


def _class_weights(
    ctx: _Context, classes: dict[str, Any], names: np.ndarray
) -> Iterable[ConformanceRow]:
    """The class of each object, against the class weights."""
    weights = {
        n: float(c.get("weight", 1.0))
        for n, c in classes.items()
        if isinstance(c, dict) and float(c.get("weight", 1.0)) > 0
    }
    if not weights or not len(names):
        return
    total = sum(weights.values())
    dist = Distribution(
        "choice", tuple(weights), weights=tuple(w / total for w in weights.values())
    )
    text = json.dumps({"choice": weights}, separators=(", ", ": "))  # as written, not normalised
    path = "objects.classes.*.weight"
    if ctx.max_overlap:
        yield ConformanceRow(
            "class_name",
            path,
            text,
            len(names),
            note="placement with objects.pose.max_overlap keeps only objects that found room, "
            "which selects on size",
        )
        return
    if len(weights) == 1:
        yield ConformanceRow("class_name", path, text, len(names), note="one class")
        return
    row = _test_row("class_name", path, dist, "category", list(names), {})
    yield replace(row, distribution=text)


def _object_column(
    ctx: _Context, col: str, values: np.ndarray, text: bool, owners: list[_Owner]
) -> Iterable[ConformanceRow]:
    """Rows for one per-object column: owners grouped by identical distribution (or by the
    same reason not to test), each group tested on its pooled values."""
    groups: dict[Any, list[_Owner]] = {}
    dists: dict[str, Distribution | None] = {}
    for o in owners:
        mine = values[o.rows]
        if all(v is None for v in mine):
            continue  # e.g. glyph.stroke of a cube class: not a factor of this owner
        key = _object_key(ctx, col, o)
        dists[o.name] = key[1]
        if key[1] is not None and key[1].kind == "constant":
            key = ("constant", None, key[2])  # one row for all constant owners
        groups.setdefault(key, []).append(o)
    transform = "mod1" if col == "color_h" else ("category" if text else "number")
    for key, members in groups.items():
        names = [o.name for o in members]
        factor = col if len(groups) == 1 else f"{col}[{', '.join(names)}]"
        sub = ".".join(key[2]) if key[2] else col
        where = _owners_path(members, sub)
        mask = np.logical_or.reduce([o.rows for o in members])
        mine = [v for v in values[mask] if v is not None or transform == "category"]
        reason, dist = key[0], key[1]
        if reason is not None:
            texts = {_dist_text(d) for o in members if (d := dists[o.name]) is not None}
            shown = texts.pop() if len(texts) == 1 else ("differs per class" if texts else "")
            yield ConformanceRow(factor, where, shown, len(mine), note=reason)
        else:
            yield _test_row(factor, where, dist, transform, mine, ctx.written)


def _object_key(ctx: _Context, col: str, o: _Owner) -> tuple[Any, ...]:
    """(reason not to test or None, distribution or None, sub-path) of ``col`` for owner
    ``o``: owners with equal keys are pooled."""
    sub = OBJECT_FIELDS.get(col)
    if sub is None:
        return (OBJECT_DERIVED.get(col, NOT_TESTED_DERIVED), None, None)
    path: tuple[str | int, ...] = (*o.path, *sub)
    text = ".".join([o.text, *sub])
    if sub[0] == "asset" and o.name == "distractor":
        assets = _lookup(ctx.spec, ("distractors", "assets"))[1]
        if not isinstance(assets, list) or len(assets) != 1:
            return ("a mixture over distractors.assets", None, sub)
        path = ("distractors", "assets", 0, *sub[1:])
        text = ".".join(["distractors.assets[0]", *sub[1:]])
    dist = _distribution(ctx.spec, path)
    if text == ctx.sweep_field:
        return ("swept field: sweep.field overrides it per step", dist, sub)
    if ctx.max_overlap and col in FOOTPRINT_FIELDS and o.name != "distractor":
        return (
            "placement with objects.pose.max_overlap keeps only objects that found room, "
            "which selects on size",
            dist,
            sub,
        )
    if dist is None:
        return (NOT_TESTED_DERIVED, None, sub)
    return (None, dist, sub)


def _owners_path(members: list[_Owner], sub: str) -> str:
    classes = [o.name for o in members if o.name != "distractor"]
    parts = []
    if len(classes) == 1:
        parts.append(f"objects.classes.{classes[0]}.{sub}")
    elif classes:
        parts.append(f"objects.classes.{{{','.join(classes)}}}.{sub}")
    if any(o.name == "distractor" for o in members):
        parts.append(f"distractors.{sub}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- models


@dataclass
class _Model:
    """A distribution as the dataset records it: atoms (value → probability) plus a
    continuous part of mass ``cont_mass`` with conditional CDF ``cdf`` on ``support``."""

    atoms: dict[Any, float]
    cont_mass: float = 0.0
    cdf: Callable[[np.ndarray], np.ndarray] | None = None
    support: tuple[float, float] = (-math.inf, math.inf)
    name: str = ""  # what the continuous part is, for the test's name


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _category(v: Any, written: dict[str, str]) -> Any:
    """How the sampler records a categorical value: no texture/procedural/… is ``"none"``."""
    if v is None:
        return "none"
    s = str(v)
    if s.strip().lower() in ("", "none"):
        return "none"
    return written.get(s, s)


def _point(v: Any, transform: str, written: dict[str, str]) -> Any:
    """One value of a discrete distribution as it is recorded (None: never recordable)."""
    if transform == "category":
        return _category(v, written)
    x = _as_number(v)
    if x is None:
        return None
    if transform == "round":
        return float(max(0, round(x)))
    if transform == "mod1":
        return x % 1.0
    return x


def _continuous(d: Distribution) -> tuple[_Model, float, float]:
    """The model of a continuous kind before any transform, and the range it lies in."""
    k, p = d.kind, d.params
    if k == "uniform":
        a, b = float(p[0]), float(p[1])
        if a == b:
            return _Model({a: 1.0}), a, b
        return _Model({}, 1.0, stats.uniform(a, b - a).cdf, (a, b), "uniform"), a, b
    if k == "loguniform":
        a, b = float(p[0]), float(p[1])
        if a == b:
            return _Model({a: 1.0}), a, b
        return _Model({}, 1.0, stats.loguniform(a, b).cdf, (a, b), "loguniform"), a, b
    mu, sigma = float(p[0]), float(p[1])
    if d.clip is None:
        if sigma == 0:
            return _Model({mu: 1.0}), mu, mu
        lo, hi = mu - 40 * sigma, mu + 40 * sigma  # the CDF is 0 / 1 to double precision
        return _Model({}, 1.0, stats.norm(mu, sigma).cdf, (-math.inf, math.inf), "normal"), lo, hi
    lo, hi = float(d.clip[0]), float(d.clip[1])
    if sigma == 0 or lo == hi:
        x = float(min(max(mu, lo), hi))
        return _Model({x: 1.0}), x, x
    below, above = stats.norm.cdf(lo, mu, sigma), stats.norm.sf(hi, mu, sigma)
    atoms = {lo: float(below), hi: float(above)} if lo != hi else {lo: 1.0}
    inside = float(1.0 - below - above)
    if inside <= 0:  # the whole mass sits on the bounds
        return _Model(atoms), lo, hi
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    tn = stats.truncnorm(a, b, loc=mu, scale=sigma)
    return _Model(atoms, inside, tn.cdf, (lo, hi), "truncated normal"), lo, hi


def _model(d: Distribution, transform: str, written: dict[str, str]) -> _Model | str:
    """The recorded-value model of ``d`` under the sampler's ``transform``, or why none."""
    if d.kind in ("choice", "randint"):
        if transform == "category" and d.kind == "randint":
            return "a numeric distribution for a text column"
        if d.kind == "randint":
            lo, hi = int(d.params[0]), int(d.params[1])
            if hi - lo >= 100_000:
                if transform == "mod1":
                    return _Model({0.0: 1.0})
                return _Model({}, 1.0, None, (lo, hi), "randint")  # binned, see _randint_test
            points: Iterable[Any] = range(lo, hi + 1)
            probs: Iterable[float] = [1.0 / (hi - lo + 1)] * (hi - lo + 1)
        else:
            points = d.params
            probs = d.weights or [1.0 / len(d.params)] * len(d.params)
        atoms: dict[Any, float] = {}
        for v, w in zip(points, probs, strict=True):
            key = _point(v, transform, written)
            if key is not None and w > 0:
                atoms[key] = atoms.get(key, 0.0) + float(w)
        return _Model(atoms)
    if transform == "category":
        return "a numeric distribution for a text column"
    base, lo, hi = _continuous(d)
    if transform == "number":
        return base
    if transform == "round":
        return _rounded(base, lo, hi)
    return _wrapped(base, lo, hi)


def _rounded(m: _Model, lo: float, hi: float) -> _Model:
    """``max(0, round(x))`` of ``x ~ m``: a discrete distribution over integers."""
    atoms: dict[Any, float] = {}
    for x, w in m.atoms.items():
        k = float(max(0, round(x)))
        atoms[k] = atoms.get(k, 0.0) + w
    if m.cont_mass > 0 and m.cdf is not None:
        ks = np.arange(math.floor(lo) - 1, math.ceil(hi) + 2, dtype=np.float64)
        mass = m.cont_mass * np.diff(m.cdf(np.concatenate([ks - 0.5, ks[-1:] + 0.5])))
        for k, w in zip(ks, mass, strict=True):
            if w > 0:
                key = float(max(0.0, k))
                atoms[key] = atoms.get(key, 0.0) + float(w)
    return _Model(atoms)


def _wrapped(m: _Model, lo: float, hi: float) -> _Model | str:
    """``x % 1`` of ``x ~ m`` (hues): atoms move, the continuous CDF wraps around [0, 1)."""
    atoms: dict[Any, float] = {}
    for x, w in m.atoms.items():
        atoms[x % 1.0] = atoms.get(x % 1.0, 0.0) + w
    if m.cont_mass <= 0 or m.cdf is None:
        return _Model(atoms)
    if lo >= 0 and hi <= 1:  # the continuous part never reaches 1 itself
        return _Model(atoms, m.cont_mass, m.cdf, m.support, m.name)
    first, last = math.floor(lo), math.floor(hi)
    if last - first > MAX_WRAPS:
        return f"the hue distribution wraps around [0, 1) more than {MAX_WRAPS} times"
    cdf = m.cdf

    def wrapped(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        total = np.zeros_like(x)
        for k in range(first, last + 1):
            total += cdf(k + x) - cdf(float(k))
        return np.clip(total, 0.0, 1.0)

    return _Model(atoms, m.cont_mass, wrapped, (0.0, 1.0), f"{m.name} modulo 1")


# --------------------------------------------------------------------------- tests


@dataclass
class _Result:
    test: str
    statistic: float
    p_value: float
    note: str = ""


def _test_row(
    factor: str,
    spec_path: str,
    dist: Distribution,
    transform: str,
    values: list[Any],
    written: dict[str, str],
) -> ConformanceRow:
    """Test ``values`` against ``dist`` as the sampler records it, or say why not."""
    text = _dist_text(dist)
    if transform != "category":
        nums = [_as_number(v) for v in values]
        values = [v for v in nums if v is not None and math.isfinite(v)]
    n = len(values)

    def skip(note: str) -> ConformanceRow:
        return ConformanceRow(factor, spec_path, text, n, note=note)

    if dist.kind == "constant":
        return skip("constant")
    model = _model(dist, transform, written)
    if isinstance(model, str):
        return skip(model)
    if model.cont_mass == 0 and len(model.atoms) == 1:
        (only,) = model.atoms
        return skip(f"degenerate: always {only!r}")
    if n < MIN_VALUES:
        return skip(f"fewer than {MIN_VALUES} values")
    if transform == "category":
        values = [_category(v, {}) for v in values]
    r = _test(model, values)
    return ConformanceRow(factor, spec_path, text, n, r.test, r.statistic, r.p_value, note=r.note)


def _test(m: _Model, values: list[Any]) -> _Result:
    if m.cont_mass > 0 and m.cdf is None:  # a randint too wide to list
        return _randint_test(np.asarray(values, dtype=np.float64), m.support)
    if m.cont_mass == 0:
        return _discrete_test(values, m.atoms)
    x = np.asarray(values, dtype=np.float64)
    lo, hi = m.support
    tol = 1e-12 * max([1.0, *(abs(b) for b in (lo, hi) if math.isfinite(b))])
    on_atom = np.isin(x, np.array(list(m.atoms), dtype=np.float64))
    inside = ~on_atom & (x >= lo - tol) & (x <= hi + tol)
    outside = int((~on_atom & ~inside).sum())
    if outside:
        bad = x[~on_atom & ~inside]
        return _Result(
            "support",
            float(outside),
            0.0,
            f"{outside} values outside [{lo:g}, {hi:g}] (e.g. {bad[0]:g})",
        )
    cont = np.clip(x[inside], lo, hi)
    if not m.atoms:
        ks = stats.kstest(cont, m.cdf)
        return _Result(f"KS ({m.name})", float(ks.statistic), float(ks.pvalue))
    # Mixed (a clipped normal): atom masses, then the inside values against the truncated CDF.
    keys = [*m.atoms, "inside"]
    counts = {k: int((x == k).sum()) for k in m.atoms} | {"inside": int(inside.sum())}
    probs = {**m.atoms, "inside": m.cont_mass}
    atoms = _discrete_from_counts([counts[k] for k in keys], [probs[k] for k in keys])
    parts = [f"bounds and inside: {atoms.test} p={_num(atoms.p_value)}"]
    ps = [atoms.p_value]
    if len(cont) >= 5:
        ks = stats.kstest(cont, m.cdf)
        parts.append(f"inside: KS ({m.name}) D={ks.statistic:.3g} p={_num(float(ks.pvalue))}")
        ps.append(float(ks.pvalue))
    if len(ps) == 1:
        return _Result(atoms.test, atoms.statistic, atoms.p_value, parts[0])
    if min(ps) == 0:
        return _Result("KS + bound masses (Fisher)", math.inf, 0.0, "; ".join(parts))
    stat, p = stats.combine_pvalues(ps, method="fisher")
    return _Result("KS + bound masses (Fisher)", float(stat), float(p), "; ".join(parts))


def _discrete_test(values: list[Any], atoms: dict[Any, float]) -> _Result:
    """Chi-square of the category counts against the atom probabilities."""
    index = {k: i for i, k in enumerate(atoms)}
    counts = [0] * len(atoms)
    outside: list[Any] = []
    for v in values:
        i = index.get(v)
        if i is None:
            outside.append(v)
        else:
            counts[i] += 1
    if outside:
        return _Result(
            "support",
            float(len(outside)),
            0.0,
            f"{len(outside)} values the distribution cannot draw (e.g. {outside[0]!r})",
        )
    return _discrete_from_counts(counts, list(atoms.values()))


def _discrete_from_counts(counts: list[int], probs: list[float]) -> _Result:
    """Goodness of fit of ``counts`` to ``probs``: chi-square, sparse bins pooled; a Monte
    Carlo multinomial test when pooling would leave one bin."""
    obs = np.asarray(counts, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if (obs[p <= 0] > 0).any():
        return _Result("support", float(obs[p <= 0].sum()), 0.0, "values on a zero-mass value")
    obs, p = obs[p > 0], p[p > 0]
    p = p / p.sum()
    n = obs.sum()
    if len(p) < 2:
        return _Result("none", 0.0, 1.0, "one possible value")
    exp = n * p
    if exp.min() >= MIN_EXPECTED:
        r = stats.chisquare(obs, exp)
        return _Result(f"chi-square ({len(p)} bins)", float(r.statistic), float(r.pvalue))
    order = np.argsort(exp, kind="stable")
    pool = [int(i) for i in order if exp[i] < MIN_EXPECTED]
    rest = [int(i) for i in order if exp[i] >= MIN_EXPECTED]
    while exp[pool].sum() < MIN_EXPECTED and rest:
        pool.append(rest.pop(0))
    if rest:
        o2 = np.array([obs[pool].sum(), *obs[rest]])
        e2 = np.array([exp[pool].sum(), *exp[rest]])
        r = stats.chisquare(o2, e2)
        return _Result(
            f"chi-square ({len(p)} bins pooled to {len(e2)})",
            float(r.statistic),
            float(r.pvalue),
        )
    stat = float(((obs - exp) ** 2 / exp).sum())
    rng = np.random.default_rng(0)
    hits, left = 0, MONTE_CARLO_DRAWS
    while left:
        k = min(left, 2000)
        sim = rng.multinomial(int(n), p, size=k)
        hits += int((((sim - exp) ** 2 / exp).sum(axis=1) >= stat - 1e-9).sum())
        left -= k
    pv = (hits + 1) / (MONTE_CARLO_DRAWS + 1)
    return _Result(f"multinomial (Monte Carlo, {MONTE_CARLO_DRAWS} draws)", stat, pv)


def _randint_test(x: np.ndarray, support: tuple[float, float]) -> _Result:
    """A randint too wide to list: chi-square over contiguous integer ranges of equal size."""
    lo, hi = int(support[0]), int(support[1])
    bad = (x != np.round(x)) | (x < lo) | (x > hi)
    if bad.any():
        return _Result(
            "support",
            float(bad.sum()),
            0.0,
            f"{int(bad.sum())} values outside the integers [{lo}, {hi}] (e.g. {x[bad][0]:g})",
        )
    size = hi - lo + 1
    bins = max(2, int(len(x) // MIN_EXPECTED))
    edges = np.unique(np.round(np.linspace(lo, hi + 1, bins + 1)))
    counts = np.histogram(x, bins=edges - 0.5)[0]
    return _discrete_from_counts(list(counts), list(np.diff(edges) / size))
