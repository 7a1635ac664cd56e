"""Text glyphs as solid 3D objects: a TTF outline, holes resolved, extruded into a closed mesh.

Frame: the glyph lies in the object's x–y plane as it is read (x to the right, y up) and is
extruded along z; the reading face is the +z face. A camera on the +z axis looking down -z with
its image "up" along +y sees the character the right way round.

Outlines come from matplotlib's :class:`~matplotlib.textpath.TextPath` (no extra dependency)
and are flattened here with fixed steps per Bézier piece. Contours are classified by nesting
depth (even = solid, odd = hole), which works whatever direction a font winds its contours;
overlapping solid contours are merged with a union, as the nonzero fill rule of fonts implies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.assets._common import (
    AssetError,
    check_keys,
    describe,
    did_you_mean,
    finalize,
    positive,
)
from synthcv.assets.handwriting import (
    DEFAULT_REPERTOIRE,
    HAND_FONT,
    REPERTOIRES,
    TEMPLATES,
    hand_outline,
    hand_variant,
    hand_variants,
    is_hand_font,
    smooth_field,
)
from synthcv.assets.kinds import AssetKind
from synthcv.scene import Mesh

DEFAULT_FONT = "DejaVuSans"
GLYPH_KEYS = (
    *("glyph", "font", "height", "depth", "fit"),
    *("stroke", "shear", "wobble", "style", "aspect", "repertoire", "flourish", "pressure"),
    "keypoints",
)
FIT_MODES = ("ink", "em")
# Never listed: a placeholder font that draws a box with the code range for every character.
_EXCLUDED_FONTS = {"LastResortHE-Regular"}
# TeX symbol fonts whose character map claims ASCII codes for unrelated symbols: not text.
_PSEUDO_CHARMAP_FONTS = {"cmex10", "cmsy10"}
_QUAD_STEPS = 6
_CUBIC_STEPS = 8
_SIMPLIFY = 1e-4  # outline simplification tolerance, relative to the ink height
_PINCH = 1e-5  # outward offset, relative to the ink height, that opens point contacts
_CREASE_DEG = 35.0  # wall vertices split at outline corners sharper than this
# Thinning takes at most this share of a glyph's mean stroke half-width (area / perimeter), so a
# negative ``stroke`` makes every font thin rather than making the thinnest ones vanish.
_MAX_THINNING = 0.8


@functools.cache
def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts (DejaVu, STIX, Computer Modern)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.cache
def _bundled() -> dict[str, Path]:
    return {p.stem: p for p in sorted(font_dir().glob("*.ttf")) if p.stem not in _EXCLUDED_FONTS}


@functools.cache
def _charmap(path: Path) -> frozenset[int]:
    from matplotlib import ft2font

    return frozenset(ft2font.FT2Font(str(path)).get_charmap())


def available_fonts(chars: str | None = None) -> list[str]:
    """Names of matplotlib's bundled fonts; with ``chars``, only text fonts that have them all.

    ``available_fonts("0123456789")`` is the list to draw digits from: fonts without those
    characters and TeX symbol fonts (cmex10, cmsy10, whose ASCII codes draw symbols) are left out.
    """
    names = list(_bundled())
    if chars is None:
        return names
    codes = {ord(c) for c in chars}
    return [n for n in names if n not in _PSEUDO_CHARMAP_FONTS and codes <= _charmap(_bundled()[n])]


FONT_SUFFIXES = (".ttf", ".otf", ".ttc")


def is_font_file(font: Any) -> bool:
    """Whether a font value names a file rather than a bundled font or the hand: a path with
    a separator, or a .ttf/.otf/.ttc name that is not bundled (``DejaVuSans.ttf`` is)."""
    if not isinstance(font, str) or not font or is_hand_font(font):
        return False
    if "/" in font or "\\" in font:
        return True
    if Path(font).suffix.lower() in FONT_SUFFIXES:
        stem = font[:-4] if font.lower().endswith(".ttf") else font
        return stem.lower() not in {n.lower() for n in _bundled()}
    return False


# The first bytes of TrueType, OpenType (CFF), Apple TrueType, collection and Type 1 files.
_FONT_MAGIC = (b"\x00\x01\x00\x00", b"OTTO", b"true", b"ttcf", b"typ1")


def _font_magic(path: Path) -> None:
    """Read the file's first bytes ourselves: a device or /proc file fails here with a plain
    OSError, not inside FreeType's read callback (which only prints it)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _FONT_MAGIC:
        raise ValueError(f"it does not start like a font file ({head!r})")


def _shown(text: str, n: int = 80) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def resolve_font(font: Any, where: str = "glyph") -> tuple[str, Path]:
    """(label, path) of a bundled font name (case-insensitive, ``.ttf`` optional) or a font file.

    A file must hold a font face FreeType can load (else AssetError with ``key="font"``)."""
    if not isinstance(font, str) or not font:
        raise AssetError.at(
            where, "font", f"got {font!r}, expected a font name or a .ttf/.otf path"
        )
    bundled = _bundled()
    stem = font[:-4] if font.lower().endswith(".ttf") else font
    lower = {n.lower(): n for n in bundled}
    if "/" not in font and "\\" not in font and stem.lower() in lower:
        name = lower[stem.lower()]
        return name, bundled[name]
    try:
        path = Path(font).expanduser()
        is_path = path.suffix.lower() in FONT_SUFFIXES or "/" in font
        found = is_path and path.is_file()
        if is_path:
            path = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise AssetError.at(
            where, "font", f"got {_shown(font)}, expected a font file path ({exc})"
        ) from None
    if is_path:
        if not found:
            raise AssetError(
                f"{where}: font file not found: {path}",
                key="font",
                detail=f"got {_shown(font)}, expected a font file (font file not found: {path})",
            )
        try:
            _font_magic(path)
            _charmap(path)
        except Exception as exc:  # FreeType raises RuntimeError (and others) for non-fonts
            raise AssetError.at(
                where,
                "font",
                f"got {_shown(font)}, expected a TrueType/OpenType font file ({path}: {exc})",
            ) from None
        return str(path), path
    raise AssetError(
        f"{where}: unknown font {_shown(font)}{did_you_mean(stem[:80], bundled)}; expected a "
        f".ttf path or one of {list(bundled)}",
        key="font",
        detail=f"got {_shown(font)}, expected a bundled font name{did_you_mean(stem[:80], bundled)}"
        " or a .ttf/.otf path",
    )


def font_label(font: Any, where: str = "glyph") -> str:
    """The name a font goes by in sources and factors: ``hand``, a bundled name or a path."""
    return HAND_FONT if is_hand_font(font) else resolve_font(font, where)[0]


def _char(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)  # YAML reads `glyph: 7` as an int
    if not isinstance(value, str) or len(value) != 1:
        raise AssetError(f"{where}: glyph got {value!r}, expected exactly one character")
    return value


def _flatten(path: Any) -> list[np.ndarray]:
    """Closed polylines of a matplotlib Path, curves sampled at fixed steps."""
    rings: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    pen = np.zeros(2)
    tq = np.linspace(0, 1, _QUAD_STEPS + 1)[1:, None]
    tc = np.linspace(0, 1, _CUBIC_STEPS + 1)[1:, None]
    for verts, code in path.iter_segments(curves=True, simplify=False):
        pts = np.asarray(verts, dtype=np.float64).reshape(-1, 2)
        if code == 1:  # MOVETO
            if current:
                rings.append(current)
            current, pen = [pts[0]], pts[0]
        elif code == 2:  # LINETO
            current.append(pts[0])
            pen = pts[0]
        elif code == 3:  # quadratic Bézier: control, end
            c, e = pts
            current.extend((1 - tq) ** 2 * pen + 2 * (1 - tq) * tq * c + tq**2 * e)
            pen = e
        elif code == 4:  # cubic Bézier: control, control, end
            c1, c2, e = pts
            current.extend(
                (1 - tc) ** 3 * pen
                + 3 * (1 - tc) ** 2 * tc * c1
                + 3 * (1 - tc) * tc**2 * c2
                + tc**3 * e
            )
            pen = e
        elif code == 79:  # CLOSEPOLY
            if current:
                rings.append(current)
            current = []
    if current:
        rings.append(current)
    out = []
    for ring in rings:
        r = np.array(ring)
        keep = np.ones(len(r), dtype=bool)
        keep[1:] = np.any(np.abs(np.diff(r, axis=0)) > 1e-9, axis=1)
        r = r[keep]
        if len(r) > 1 and np.allclose(r[0], r[-1], atol=1e-9):
            r = r[:-1]
        if len(r) >= 3:
            out.append(r)
    return out


def _polygons(rings: list[np.ndarray]) -> Any:
    """Solid region of a glyph from its contours, holes resolved by nesting depth."""
    from shapely.geometry import Polygon
    from shapely.ops import unary_union
    from shapely.validation import make_valid

    polys = []
    for r in rings:
        p = Polygon(r)
        if not p.is_valid:
            p = unary_union([g for g in _parts(make_valid(p)) if g.area > 0])
        if p.area > 1e-12:
            polys.append(p)
    polys.sort(key=lambda p: -p.area)
    covered_by = [[j for j in range(i) if polys[j].covers(polys[i])] for i in range(len(polys))]
    depth = [len(c) for c in covered_by]
    holes: dict[int, list[Any]] = {i: [] for i in range(len(polys)) if depth[i] % 2 == 0}
    for i, d in enumerate(depth):
        if d % 2 == 1:
            parents = [j for j in covered_by[i] if depth[j] == d - 1]
            holes[max(parents)].append(polys[i])  # the latest index = the smallest such parent
    solids = [polys[i].difference(unary_union(hs)) if hs else polys[i] for i, hs in holes.items()]
    return unary_union(solids)


def _parts(geom: Any) -> list[Any]:
    """The polygons inside any shapely geometry (Polygon, MultiPolygon, collection)."""
    if geom.geom_type == "Polygon":
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _parts(g)]
    return []


def glyph_outline(
    char: Any,
    font: str = DEFAULT_FONT,
    height: float = 0.1,
    fit: str = "ink",
    stroke: float = 0.0,
    shear: float = 0.0,
    wobble: float = 0.0,
    style: int = 0,
    aspect: float | None = None,
    repertoire: int = DEFAULT_REPERTOIRE,
    flourish: float = 0.0,
    pressure: float = 0.0,
) -> Any:
    """The glyph's filled 2D region (shapely, metres), centred on its ink bounding box.

    ``fit="ink"`` scales the drawn character to exactly ``height`` (so a "7" and a "1" are the
    same height); ``fit="em"`` makes ``height`` the font size (em), keeping relative sizes.
    ``stroke`` grows (> 0) or thins (< 0) every stroke by that fraction of the height, and
    thinning stops at 0.8 of the glyph's own mean stroke half-width (its area over its
    perimeter), so thin fonts saturate instead of vanishing while thicker ones and the hand
    go on thinning (:func:`thinning_limit`). ``shear`` slants the glyph by that many degrees
    (positive leans right), so one font yields the pen-width and slant variety of handwriting.
    ``wobble`` bends the outline with a smooth random field of that amplitude (fraction of the
    height) seeded by ``style``.

    ``font="hand"`` draws digits with a round pen along stroke skeletons (see
    :mod:`synthcv.assets.handwriting`): ``style`` picks one of a few ways of writing the digit
    and seeds its perturbation, ``wobble`` sets how far strokes wander.

    ``aspect`` scales the glyph's width against its height before ``stroke`` and ``shear``
    (1: as the font or template draws it): how wide a writer writes, a trait of its own
    rather than a side effect of ``wobble``. The hand scales its skeleton, so the pen stays
    round; a printed font scales its outline.

    ``repertoire`` (hand only) is the set of ways of writing ``style`` picks from: 1, the
    original hand, 2, which adds open 4s, two 6s and two 8s, or 3, which adds an L-like 2
    and two 7s (``REPERTOIRES``); printed fonts ignore it, so one spec may choose between
    the hand and fonts.

    ``flourish`` (hand only, 0..4) is how a hand starts and stops its strokes: ends that
    overshoot or stop short (loops left open, bars past a stem) and the hook of the pen's
    approach (:func:`~synthcv.assets.handwriting.stroke_ends`); 0 draws the skeleton's ends.
    """
    from shapely import affinity

    hand = is_hand_font(font)
    label = font_label(font)
    where = f"glyph {char!r} in font {label}"
    ch = _char(char, where)
    if fit not in FIT_MODES:
        raise AssetError(f"{where}: fit got {fit!r}, expected one of {list(FIT_MODES)}")
    if not (isinstance(height, int | float) and math.isfinite(height) and height > 0):
        raise AssetError(f"{where}: height got {height!r}, expected a positive number")
    if not (isinstance(wobble, int | float) and 0 <= wobble <= 0.3):
        raise AssetError(f"{where}: wobble got {wobble!r}, expected a fraction in [0, 0.3]")
    if aspect is not None and not (
        isinstance(aspect, int | float) and math.isfinite(aspect) and 0.3 <= aspect <= 3.0
    ):
        raise AssetError(f"{where}: aspect got {aspect!r}, expected a width factor in [0.3, 3]")
    aspect = None if aspect is None else float(aspect)
    if not (isinstance(flourish, int | float) and 0 <= flourish <= 4):
        raise AssetError(f"{where}: flourish got {flourish!r}, expected a number in [0, 4]")
    if not (isinstance(pressure, int | float) and 0 <= pressure <= 1):
        raise AssetError(f"{where}: pressure got {pressure!r}, expected a number in [0, 1]")
    if isinstance(style, float) and style.is_integer():
        style = int(style)
    if not (isinstance(style, int | np.integer) and not isinstance(style, bool) and style >= 0):
        raise AssetError(f"{where}: style got {style!r}, expected an integer >= 0")
    if isinstance(repertoire, float) and repertoire.is_integer():
        repertoire = int(repertoire)
    if repertoire not in REPERTOIRES or isinstance(repertoire, bool):
        raise AssetError(
            f"{where}: repertoire got {repertoire!r}, expected one of {sorted(REPERTOIRES)}"
        )
    if hand:
        if not hand_variants(ch):
            raise AssetError(
                f"{where}: the hand font writes only the digits {''.join(TEMPLATES)}, not {ch!r}"
            )
        geom = _clean(
            hand_outline(
                ch,
                int(style),
                float(wobble),
                aspect=aspect,
                repertoire=repertoire,
                flourish=float(flourish),
                pressure=float(pressure),
            )
        )
    else:
        geom = _font_outline(ch, font, where, float(wobble), int(style))
        if aspect is not None and aspect != 1:
            geom = _clean(affinity.scale(geom, aspect, 1.0, origin=(0, 0)))
    if stroke or shear:
        y0, y1 = geom.bounds[1], geom.bounds[3]
        geom = _restyle(geom, stroke * (y1 - y0), shear, where)
    x0, y0, x1, y1 = geom.bounds
    s = height / (y1 - y0) if fit == "ink" or hand else height
    geom = affinity.translate(geom, -(x0 + x1) / 2, -(y0 + y1) / 2)
    return affinity.scale(geom, s, s, origin=(0, 0))


def _font_outline(ch: str, font: Any, where: str, wobble: float, style: int) -> Any:
    """The outline of ``ch`` in a TrueType font, in font units (em = 1), cleaned for extrusion."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    label, path = resolve_font(font)
    if ord(ch) not in _charmap(path):
        raise AssetError(
            f"{where}: character {ch!r} (U+{ord(ch):04X}) is not in font {label} ({path})"
        )
    try:
        text = TextPath((0, 0), ch, size=1.0, prop=FontProperties(fname=str(path)))
    except (AttributeError, ValueError, IndexError):  # matplotlib fails on outline-free glyphs
        text = None
    geom = _polygons(_flatten(text)) if text is not None and len(text.vertices) else None
    if geom is None or geom.is_empty or geom.area <= 0:
        raise AssetError(
            f"{where}: character {ch!r} (U+{ord(ch):04X}) has no outline in font {label} "
            "(a blank character cannot become a 3D object)"
        )
    geom = _clean(geom)
    if wobble:
        geom = _bend(geom, wobble * (geom.bounds[3] - geom.bounds[1]), style)
    return geom


def _clean(geom: Any) -> Any:
    """An outline made safe to extrude into a closed solid."""
    h = geom.bounds[3] - geom.bounds[1]
    # Drop near-collinear points and sub-micron zigzags left by curve flattening: they make
    # earcut emit sliver triangles that break the closed surface. 1e-4 of the glyph is invisible.
    geom = geom.simplify(_SIMPLIFY * h, preserve_topology=True)
    # Where a hole touches the outline at a point (a "pinch") the solid would be non-manifold;
    # growing it by a hundred-thousandth of its height turns every pinch into a thin neck.
    geom = geom.buffer(_PINCH * h, join_style="mitre")
    return geom.simplify(1e-3 * _PINCH * h, preserve_topology=True)  # buffer's dust


def _bend(geom: Any, amplitude: float, style: int) -> Any:
    """Displace a densified outline by a smooth random field; re-clean what it folds."""
    import shapely
    from shapely.validation import make_valid

    h = geom.bounds[3] - geom.bounds[1]
    field = smooth_field(np.random.default_rng([0xB3D, style]), amplitude / h)
    dense = shapely.segmentize(geom, 0.01 * h)
    bent = shapely.transform(dense, lambda p: field(p / h) * h)
    if not bent.is_valid:  # a strong field can fold a thin stroke over itself
        from shapely.ops import unary_union

        bent = unary_union([g for g in _parts(make_valid(bent)) if g.area > 0])
    return _clean(bent)


def _restyle(geom: Any, grow: float, shear: float, where: str) -> Any:
    """Change stroke width by ``grow`` (outline units) and slant by ``shear`` degrees."""
    from shapely import affinity

    if not -60 < shear < 60:
        raise AssetError(f"{where}: shear got {shear!r}, expected degrees in (-60, 60)")
    if shear:
        geom = affinity.skew(geom, xs=shear, origin=(0, 0))
    if grow:
        grow = max(grow, -thinning_limit(geom))
        geom = geom.buffer(grow, join_style="round", quad_segs=4)
        if geom.is_empty or geom.area <= 0:
            raise AssetError(f"{where}: stroke {grow!r} thins the glyph away; use a larger value")
        h = geom.bounds[3] - geom.bounds[1]
        # re-apply the pinch guard and drop the buffer's dust, as for the plain outline
        geom = geom.buffer(_PINCH * h, join_style="mitre")
        geom = geom.simplify(_SIMPLIFY * h, preserve_topology=True)
    return geom


def thinning_limit(geom: Any) -> float:
    """How far (outline units) thinning may erode ``geom``: a share of its mean half-width.

    A stroke of width w and length L has area ~ wL and perimeter ~ 2L, so area / perimeter is
    half the mean stroke width, below the largest inscribed radius of stroke-like shapes:
    eroding by less leaves every built-in glyph some ink (tests/test_glyph_style.py), and a
    glyph that still vanishes is an AssetError. Hairlines thinner than the mean may break.
    """
    return _MAX_THINNING * float(geom.area) / float(geom.length)


def _ring(coords: Any) -> np.ndarray:
    """A shapely ring's points without the repeated closing point."""
    r = np.asarray(coords, dtype=np.float64)[:, :2]
    return r[:-1] if len(r) > 1 and np.array_equal(r[0], r[-1]) else r


def _split_t_junctions(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Split triangles whose edge passes through another outline point.

    earcut may bridge along collinear outline edges (fonts are full of them: "#", "D", "4"),
    leaving a point in the middle of a triangle edge; the cap would then not share that edge
    with the wall and the solid would leak. Splitting there restores a conforming mesh, and
    zero-area slivers (a corner on the opposite edge) are dropped since their neighbours split.
    Orientation is kept: both halves of a counter-clockwise triangle are counter-clockwise.
    """
    tol = 1e-7 * float(np.ptp(points, axis=0).max())
    out = []
    stack = [tuple(int(i) for i in t) for t in tris]
    while stack:
        a, b, c = stack.pop()
        for p, q, r in ((a, b, c), (b, c, a), (c, a, b)):
            d = points[q] - points[p]
            length2 = float(d @ d)
            if length2 == 0.0:
                continue
            w = points - points[p]
            t = (w @ d) / length2
            dist = np.abs(w[:, 0] * d[1] - w[:, 1] * d[0]) / np.sqrt(length2)
            on_edge = (t > 1e-9) & (t < 1 - 1e-9) & (dist < tol)
            if on_edge[r]:  # a sliver: its third corner lies on this edge; its neighbours split
                break
            on_edge[[p, q]] = False
            if on_edge.any():
                candidates = np.flatnonzero(on_edge)
                h = int(candidates[np.argmin(t[candidates])])
                stack += [(p, h, r), (h, q, r)]
                break
        else:
            out.append((a, b, c))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def _extrude(polygon: Any, depth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed prism over one polygon with holes: two earcut caps plus side walls.

    Caps and walls have separate vertices, and walls split at corners sharper than
    ``_CREASE_DEG``, so a renderer that averages vertex normals keeps edges crisp. Positions
    are shared exactly, so merging coincident vertices gives a watertight solid.
    """
    import mapbox_earcut
    from shapely.geometry.polygon import orient

    polygon = orient(polygon, 1.0)  # exterior counter-clockwise, holes clockwise
    rings = [_ring(polygon.exterior.coords)] + [_ring(h.coords) for h in polygon.interiors]
    flat = np.vstack(rings)
    ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
    tris = np.asarray(mapbox_earcut.triangulate_float64(flat, ends), dtype=np.int64)
    tris = tris.reshape(-1, 3)
    a, b, c = flat[tris[:, 0]], flat[tris[:, 1]], flat[tris[:, 2]]
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    tris = np.where((cross < 0)[:, None], tris[:, ::-1], tris)  # all counter-clockwise
    tris = _split_t_junctions(flat, tris)
    n = len(flat)
    verts = [np.c_[flat, np.zeros(n)], np.c_[flat, np.full(n, depth)]]
    faces = [tris[:, ::-1], tris + n]  # bottom faces -z, top faces +z
    lo, span = flat.min(axis=0), np.ptp(flat, axis=0)
    cap_uv = (flat - lo) / span
    uvs = [cap_uv, cap_uv]
    base = 2 * n
    cos_crease = np.cos(np.radians(_CREASE_DEG))
    for ring in rings:
        m = len(ring)
        edge = np.roll(ring, -1, axis=0) - ring  # edge k goes from point k to k + 1
        unit = edge / np.linalg.norm(edge, axis=1, keepdims=True)
        sharp = np.sum(unit * np.roll(unit, 1, axis=0), axis=1) < cos_crease  # at point k
        # Wall columns, each a (bottom, top) vertex pair: one per point, a second one where the
        # corner is sharp, and a closing copy of point 0 (the UV seam).
        cols: list[int] = []  # ring point of each column
        starts: list[int] = []  # for each edge k, the column it starts from
        ends_: list[int] = []  # for each edge k, the column it ends on
        for k in range(m):
            cols.append(k)
            if k > 0:
                ends_.append(len(cols) - 1)
                if sharp[k]:
                    cols.append(k)
            starts.append(len(cols) - 1)
        cols.append(0)
        ends_.append(len(cols) - 1)
        pts = ring[cols]
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        u = arc / arc[-1]
        ncol = len(cols)
        verts += [np.c_[pts, np.zeros(ncol)], np.c_[pts, np.full(ncol, depth)]]
        uvs += [np.c_[u, np.zeros(ncol)], np.c_[u, np.ones(ncol)]]
        bi, bj = base + np.array(starts), base + np.array(ends_)
        ti, tj = bi + ncol, bj + ncol
        faces += [np.stack([bi, bj, tj], axis=1), np.stack([bi, tj, ti], axis=1)]
        base += 2 * ncol
    return np.vstack(verts), np.vstack(faces), np.vstack(uvs)


def build_glyph(asset: Mapping[str, Any]) -> Mesh:
    """Mesh of ``{"glyph": CHAR, "font": F, "height": h, "depth": d, "fit": "ink"|"em"}``."""
    check_keys(asset, GLYPH_KEYS)
    font = asset.get("font") or DEFAULT_FONT
    height = positive(asset, "height", 0.1)
    depth = positive(asset, "depth", 0.02)
    label = font_label(font, describe(asset, "glyph"))
    geom = glyph_outline(
        asset["glyph"],
        font,
        height,
        asset.get("fit", "ink"),
        stroke=float(asset.get("stroke", 0.0)),
        shear=float(asset.get("shear", 0.0)),
        wobble=float(asset.get("wobble", 0.0)),
        style=asset.get("style", 0),
        aspect=None if asset.get("aspect") is None else float(asset["aspect"]),
        repertoire=asset.get("repertoire", DEFAULT_REPERTOIRE),
        flourish=float(asset.get("flourish", 0.0)),
        pressure=float(asset.get("pressure", 0.0)),
    )
    verts, faces, uvs = [], [], []
    offset = 0
    for polygon in _parts(geom):
        v, f, uv = _extrude(polygon, depth)
        verts.append(v)
        faces.append(f + offset)
        uvs.append(uv)
        offset += len(v)
    ch = _char(asset["glyph"], describe(asset, "glyph"))
    return finalize(
        asset, np.vstack(verts), np.vstack(faces), f"glyph:{label}:{ch}", uv=np.vstack(uvs)
    )


def glyph_factors(asset: Mapping[str, Any], mesh: Mesh) -> dict[str, Any]:
    """Per-object factors to slice results by: the character, the font, the handwriting
    parameters given and, for the built-in hand, which way of writing the character was drawn."""
    out: dict[str, Any] = {
        "glyph.text": str(asset["glyph"]),
        "glyph.font": str(asset.get("font", DEFAULT_FONT)),
    }
    for k in ("stroke", "shear", "wobble", "aspect", "flourish", "pressure"):
        if k in asset:
            out[f"glyph.{k}"] = float(asset[k])
    if "repertoire" in asset:
        out["glyph.repertoire"] = int(asset["repertoire"])
    if is_hand_font(out["glyph.font"]):
        repertoire = int(asset.get("repertoire", DEFAULT_REPERTOIRE))
        out["glyph.variant"] = hand_variant(
            str(asset["glyph"]), int(asset.get("style", 0)), repertoire
        )
    return out


KIND = AssetKind(key="glyph", build=build_glyph, factors=glyph_factors)
