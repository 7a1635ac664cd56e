"""Handwritten digits: pen-stroke skeletons, varied per ``style`` seed, drawn with a round pen.

A printed font gives one shape per character; handwriting varies in how a character is built
(a "7" with or without a crossbar, an open or closed "4", a "1" with or without a flag) and in
how each stroke wanders. Here every digit has a few *templates* — strokes through control
points in a unit box (x right, y up, the ink 1 unit tall) — and a ``style`` seed picks one and
perturbs it: control points jitter, a smooth random field bends the whole figure, the width
changes. The pen is a disc, so the outline is the skeleton buffered with round caps and joins,
and every stroke keeps its width wherever the skeleton bends.

Each stroke is a list of *pieces*; a Catmull–Rom spline passes through the points of a piece
and consecutive pieces meet at a shared point with a corner there (the top of a "7").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

HAND_FONT = "hand"
PEN_WIDTH = 0.12  # pen diameter as a fraction of the ink height (MNIST strokes are ~2.5/20)
_SPAN_STEPS = 8  # spline points per control-point span

Piece = list[tuple[float, float]]
Stroke = list[Piece]


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float, turn: float) -> Piece:
    """Points along an ellipse from angle ``start`` (degrees) through ``turn`` degrees."""
    n = max(4, int(abs(turn) / 30))
    a = np.radians(start + np.linspace(0.0, turn, n + 1))
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in a]


# Digit -> templates; a template is a list of strokes. Coordinates: y in [0, 1] bottom to top.
TEMPLATES: dict[str, list[list[Stroke]]] = {
    "0": [
        [[_ellipse(0.36, 0.5, 0.36, 0.5, 100, 370)]],
        [[_ellipse(0.3, 0.5, 0.27, 0.5, 80, 375)]],
    ],
    "1": [
        [[[(0.3, 1.0), (0.3, 0.0)]]],
        [[[(0.1, 0.78), (0.33, 1.0)], [(0.33, 1.0), (0.3, 0.0)]]],
        [[[(0.12, 0.8), (0.33, 1.0)], [(0.33, 1.0), (0.32, 0.0)]], [[(0.1, 0.0), (0.55, 0.0)]]],
    ],
    "2": [
        [
            [
                [(0.04, 0.74), (0.2, 0.95), (0.42, 0.98), (0.58, 0.8), (0.52, 0.58), (0.02, 0.0)],
                [(0.02, 0.0), (0.66, 0.02)],
            ]
        ],
        [  # the looped 2: the descender curls up and over itself before the base
            [
                [
                    (0.04, 0.76),
                    (0.25, 0.98),
                    (0.5, 0.95),
                    (0.58, 0.72),
                    (0.44, 0.48),
                    (0.18, 0.12),
                    (0.02, 0.1),
                    (0.04, 0.32),
                    (0.25, 0.32),
                    (0.36, 0.1),
                    (0.52, 0.0),
                    (0.75, 0.05),
                ]
            ]
        ],
        [
            [
                [(0.05, 0.78), (0.25, 0.98), (0.5, 0.93), (0.56, 0.7), (0.32, 0.34), (0.05, 0.04)],
                [(0.05, 0.04), (0.14, 0.16), (0.25, 0.08), (0.45, 0.0), (0.68, 0.05)],
            ]
        ],
        [  # the round-bottomed 2: the descender closes a loop in the lower half, a tail leaves
            [
                [
                    (0.08, 0.78),
                    (0.3, 0.98),
                    (0.55, 0.92),
                    (0.6, 0.7),
                    (0.45, 0.47),
                    (0.2, 0.36),
                    (0.03, 0.18),
                    (0.14, 0.0),
                    (0.4, 0.04),
                    (0.48, 0.22),
                    (0.36, 0.4),
                ]
            ],
            [[(0.3, 0.03), (0.55, 0.0), (0.8, 0.06)]],
        ],
        [  # repertoire 3: L-like, a short top hook, a near-vertical descender, a flat base
            [
                [(0.06, 0.8), (0.2, 0.98), (0.36, 0.96), (0.4, 0.8), (0.3, 0.45), (0.2, 0.02)],
                [(0.2, 0.02), (0.45, 0.03), (0.7, 0.06)],
            ]
        ],
    ],
    "3": [
        [
            [
                [
                    (0.04, 0.84),
                    (0.25, 1.0),
                    (0.5, 0.94),
                    (0.54, 0.74),
                    (0.28, 0.56),
                    (0.54, 0.44),
                    (0.6, 0.2),
                    (0.4, 0.01),
                    (0.14, 0.01),
                    (0.0, 0.14),
                ]
            ]
        ],
        [
            [
                [(0.04, 1.0), (0.6, 1.0)],
                [(0.6, 1.0), (0.28, 0.6)],
                [(0.28, 0.6), (0.52, 0.5), (0.6, 0.24), (0.42, 0.02), (0.16, 0.0), (0.0, 0.14)],
            ]
        ],
    ],
    "4": [
        [[[(0.46, 0.0), (0.46, 1.0)], [(0.46, 1.0), (0.0, 0.32)], [(0.0, 0.32), (0.66, 0.32)]]],
        [
            [[(0.04, 1.0), (0.02, 0.4)], [(0.02, 0.4), (0.62, 0.42)]],
            [[(0.5, 0.86), (0.47, 0.0)]],
        ],
        [
            [[(0.3, 1.0), (0.0, 0.36)], [(0.0, 0.36), (0.66, 0.36)]],
            [[(0.52, 0.7), (0.5, 0.0)]],
        ],
        [  # the rounded open 4: the left stroke curls into the bar; the stem rises above it
            [[(0.06, 0.92), (0.03, 0.62), (0.1, 0.44), (0.3, 0.4), (0.68, 0.45)]],
            [[(0.52, 1.0), (0.5, 0.5), (0.47, 0.0)]],
        ],
        [  # the open 4 with a short left stroke and a tall stem crossing the bar
            [[(0.08, 0.86), (0.04, 0.44)], [(0.04, 0.44), (0.7, 0.47)]],
            [[(0.5, 1.0), (0.46, 0.0)]],
        ],
    ],
    "5": [
        [
            [
                [(0.12, 1.0), (0.08, 0.56)],
                [(0.08, 0.56), (0.32, 0.62), (0.55, 0.5), (0.6, 0.24), (0.42, 0.02), (0.14, 0.02)],
                [(0.14, 0.02), (0.0, 0.14)],
            ],
            [[(0.12, 1.0), (0.62, 1.0)]],
        ],
        [
            [[(0.62, 1.0), (0.14, 1.0)], [(0.14, 1.0), (0.1, 0.58)]],
            [[(0.1, 0.58), (0.4, 0.64), (0.6, 0.4), (0.5, 0.08), (0.2, 0.0), (0.02, 0.12)]],
        ],
    ],
    "6": [
        [
            [
                [
                    (0.56, 1.0),
                    (0.3, 0.8),
                    (0.08, 0.46),
                    (0.05, 0.2),
                    (0.25, 0.0),
                    (0.5, 0.05),
                    (0.58, 0.28),
                    (0.42, 0.46),
                    (0.2, 0.44),
                    (0.07, 0.3),
                ]
            ]
        ],
        [
            [
                [
                    (0.42, 1.0),
                    (0.14, 0.6),
                    (0.08, 0.24),
                    (0.26, 0.0),
                    (0.52, 0.1),
                    (0.52, 0.36),
                    (0.3, 0.46),
                    (0.1, 0.34),
                ]
            ]
        ],
        [  # a large round bottom loop under a curved ascender, the tail ending inside it
            [
                [
                    (0.6, 0.98),
                    (0.32, 0.82),
                    (0.12, 0.56),
                    (0.06, 0.28),
                    (0.2, 0.04),
                    (0.46, 0.02),
                    (0.62, 0.2),
                    (0.54, 0.46),
                    (0.3, 0.54),
                    (0.14, 0.4),
                ]
            ]
        ],
        [  # the b-like 6: a nearly straight ascender, the loop hanging off its foot
            [
                [
                    (0.22, 1.0),
                    (0.13, 0.62),
                    (0.1, 0.26),
                    (0.24, 0.02),
                    (0.5, 0.04),
                    (0.6, 0.24),
                    (0.5, 0.44),
                    (0.27, 0.45),
                    (0.12, 0.3),
                ]
            ]
        ],
    ],
    "7": [
        [[[(0.0, 1.0), (0.64, 1.0)], [(0.64, 1.0), (0.24, 0.0)]]],
        [[[(0.0, 1.0), (0.64, 1.0)], [(0.64, 1.0), (0.26, 0.0)]], [[(0.18, 0.5), (0.6, 0.52)]]],
        [[[(0.0, 0.94), (0.3, 1.0), (0.64, 1.0)], [(0.64, 1.0), (0.44, 0.6), (0.3, 0.0)]]],
        [[[(0.0, 0.86), (0.02, 1.0)], [(0.02, 1.0), (0.62, 1.0)], [(0.62, 1.0), (0.36, 0.0)]]],
        [  # repertoire 3: a rounded corner, then a stem falling nearly straight down
            [
                [
                    (0.02, 0.9),
                    (0.2, 0.98),
                    (0.42, 1.0),
                    (0.58, 0.94),
                    (0.6, 0.78),
                    (0.52, 0.5),
                    (0.44, 0.22),
                    (0.42, 0.0),
                ]
            ]
        ],
        [  # repertoire 3: crossed, a nearly upright stem, the bar reaching both sides of it
            [[(0.04, 1.0), (0.6, 1.0)], [(0.6, 1.0), (0.5, 0.55), (0.44, 0.0)]],
            [[(0.2, 0.5), (0.5, 0.53), (0.72, 0.55)]],
        ],
    ],
    "8": [
        [
            [
                [
                    (0.56, 0.88),
                    (0.34, 1.0),
                    (0.1, 0.92),
                    (0.12, 0.7),
                    (0.5, 0.36),
                    (0.58, 0.14),
                    (0.34, 0.0),
                    (0.08, 0.1),
                    (0.12, 0.32),
                    (0.48, 0.66),
                    (0.56, 0.86),
                ]
            ]
        ],
        [[_ellipse(0.3, 0.76, 0.2, 0.24, 270, 365)], [_ellipse(0.3, 0.26, 0.27, 0.26, 90, 365)]],
        [  # one stroke, a small upper loop: the strokes cross well above the middle
            [
                [
                    (0.5, 0.9),
                    (0.3, 1.0),
                    (0.12, 0.9),
                    (0.16, 0.72),
                    (0.44, 0.54),
                    (0.58, 0.28),
                    (0.44, 0.02),
                    (0.16, 0.03),
                    (0.08, 0.22),
                    (0.28, 0.46),
                    (0.52, 0.74),
                    (0.5, 0.9),
                ]
            ]
        ],
        [  # the open-topped 8: an S, then a straight return that overshoots the start
            [
                [
                    (0.56, 0.9),
                    (0.34, 1.0),
                    (0.12, 0.9),
                    (0.14, 0.7),
                    (0.44, 0.5),
                    (0.58, 0.28),
                    (0.42, 0.03),
                    (0.14, 0.05),
                    (0.1, 0.24),
                    (0.34, 0.5),
                    (0.64, 0.98),
                ]
            ]
        ],
    ],
    "9": [
        [
            [
                [
                    (0.58, 0.74),
                    (0.44, 0.58),
                    (0.2, 0.55),
                    (0.04, 0.72),
                    (0.14, 0.94),
                    (0.38, 1.0),
                    (0.56, 0.9),
                    (0.58, 0.74),
                ],
                [(0.58, 0.74), (0.55, 0.3), (0.5, 0.0)],
            ]
        ],
        [
            [
                [
                    (0.56, 0.8),
                    (0.4, 0.6),
                    (0.14, 0.6),
                    (0.06, 0.8),
                    (0.24, 0.98),
                    (0.5, 0.96),
                    (0.58, 0.8),
                ],
                [(0.58, 0.8), (0.54, 0.36), (0.4, 0.04), (0.14, 0.04)],
            ]
        ],
    ],
}


def is_hand_font(font: object) -> bool:
    """Whether ``font`` names the built-in hand (case-insensitive)."""
    return isinstance(font, str) and font.lower() == HAND_FONT


# How often each template is written, where not all equally: most people write a plain "1".
# Most write a looped "2" (the descender curls over itself before the base).
TEMPLATE_WEIGHTS: dict[str, list[int]] = {
    "1": [4, 1, 1],
    "2": [2, 3, 1, 2, 2],
    "7": [3, 2, 1, 1, 2, 2],
}

#: The hand's repertoires: which templates a digit may be written with. Repertoire 1 is the
#: original hand, kept as it was so that a spec draws the same digits it always drew; 2 adds
#: the ways of writing a 4, 6 and 8 that real *training* digits use and no digit of repertoire
#: 1 resembled (open 4s with a tall stem, a large-looped and a b-like 6, an 8 with a small top
#: loop and an open-topped 8); 3 adds an L-like 2, a round-cornered 7 and a crossed 7 with an
#: upright stem, the ways of writing behind the real training digits a repertoire-2 model
#: misread most after 8s. Per repertoire: how many of a digit's templates it uses (all when
#: the digit is not listed). New templates are only ever appended, in a new repertoire.
REPERTOIRES: dict[int, dict[str, int]] = {
    1: {"2": 4, "4": 3, "6": 2, "7": 4, "8": 2},
    2: {"2": 4, "7": 4},
    3: {},
}
DEFAULT_REPERTOIRE = 1


def _check_repertoire(repertoire: int) -> int:
    if repertoire not in REPERTOIRES:
        raise ValueError(f"repertoire {repertoire!r} is not one of {sorted(REPERTOIRES)}")
    return repertoire


def hand_variants(char: str, repertoire: int = DEFAULT_REPERTOIRE) -> int:
    """How many stroke templates the built-in hand has for ``char`` in ``repertoire`` (0 if
    none)."""
    every = len(TEMPLATES.get(char, []))
    return min(every, REPERTOIRES[_check_repertoire(repertoire)].get(char, every))


def hand_variant(char: str, style: int, repertoire: int = DEFAULT_REPERTOIRE) -> int:
    """The template that ``style`` writes ``char`` with (weighted by ``TEMPLATE_WEIGHTS``)."""
    n = hand_variants(char, repertoire)
    weights = TEMPLATE_WEIGHTS.get(char, [1] * n)[:n]
    slot = int(style) % sum(weights)
    return int(np.searchsorted(np.cumsum(weights), slot, side="right"))


def _catmull_rom(points: np.ndarray) -> np.ndarray:
    """Uniform Catmull–Rom spline through ``points``, end tangents by reflection."""
    if len(points) == 2:
        return np.linspace(points[0], points[1], _SPAN_STEPS + 1)
    p = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0.0, 1.0, _SPAN_STEPS + 1)[:-1, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
            )
        )
    out.append(points[-1:])
    return np.vstack(out)


def smooth_field(
    rng: np.random.Generator,
    amplitude: float,
    waves: int = 3,
    cycles: tuple[float, float] = (0.33, 1.0),
):
    """A smooth random displacement ``f(points) -> points``: a few sine waves per axis.

    ``cycles`` bounds the waves' frequency per glyph height; the default (wavelengths of 1–3
    heights) bends strokes and changes proportions without crinkling them. ``amplitude`` is
    the scale of the shift (same units as the points).
    """
    k = rng.uniform(*cycles, size=(2, waves, 1)) * 2 * math.pi
    direction = rng.normal(size=(2, waves, 2))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    phase = rng.uniform(0, 2 * math.pi, size=(2, waves, 1))
    weight = rng.uniform(-1.0, 1.0, size=(2, waves, 1)) / waves

    def apply(points: np.ndarray) -> np.ndarray:
        arg = k * (direction @ points.T) + phase  # (2, waves, n)
        shift = amplitude * np.sum(weight * np.sin(arg), axis=1)  # (2, n)
        return points + shift.T

    return apply


def _arc_lengths(line: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])


def _trim_start(line: np.ndarray, length: float) -> np.ndarray:
    """``line`` without its first ``length`` of arc (interpolated where the cut falls)."""
    s = _arc_lengths(line)
    k = int(np.searchsorted(s, length, side="right"))
    if k >= len(line):
        return line[-2:]
    t = (length - s[k - 1]) / max(s[k] - s[k - 1], 1e-12)
    return np.vstack([line[k - 1] + t * (line[k] - line[k - 1]), line[k:]])


def _tangent_out(line: np.ndarray) -> np.ndarray:
    """Unit direction in which ``line`` leaves its first point, backwards (away from it),
    from the chord to a point a little along it so a spline's last span does not dominate."""
    s = _arc_lengths(line)
    k = min(int(np.searchsorted(s, 0.08)), len(line) - 1)
    d = line[0] - line[max(k, 1)]
    return d / max(float(np.linalg.norm(d)), 1e-12)


def stroke_ends(
    lines: list[np.ndarray], rng: np.random.Generator, amount: float
) -> list[np.ndarray]:
    """How a hand starts and stops a stroke, scaled by ``amount`` (0: exactly the skeleton):
    each end overshoots or stops short by up to ~0.1 of the ink height (loops left open or
    crossing, bars running past a stem), and a stroke may start, less often end, with a hook
    (the pen's approach: a flick at an angle). Lengths in units of the ink height."""
    out = []
    for line in lines:
        total = float(_arc_lengths(line)[-1])
        for at_end in (False, True):  # the start, then (the line reversed) the end
            change = amount * float(rng.uniform(-0.12, 0.1))
            hook = rng.random() < (0.15 if at_end else 0.35) * min(amount, 1.0)
            turn = np.radians(float(rng.uniform(100, 160)) * (1 if rng.random() < 0.5 else -1))
            hook_len = amount * float(rng.uniform(0.04, 0.1))
            if change < 0:
                line = _trim_start(line, min(-change, 0.25 * total))
            elif change > 0:
                line = np.vstack([line[:1] + change * _tangent_out(line), line])
            if hook:  # the outward tangent turned by ``turn``, then walked backwards
                cos, sin = math.cos(turn), math.sin(turn)
                back = np.array([[cos, -sin], [sin, cos]]) @ _tangent_out(line)
                line = np.vstack([line[:1] - hook_len * back, line])
            line = line[::-1]
        out.append(line)
    return out


def hand_outline(
    char: str,
    style: int,
    wobble: float,
    pen: float = PEN_WIDTH,
    aspect: float | None = None,
    repertoire: int = DEFAULT_REPERTOIRE,
    flourish: float = 0.0,
    pressure: float = 0.0,
) -> Any:
    """Filled region (shapely, ink about 1 unit tall) of digit ``char`` in handwriting ``style``.

    ``style`` picks the template (:func:`hand_variant`) and seeds the perturbation;
    ``wobble`` scales it (0: the template exactly). ``pen`` is the pen diameter. ``aspect``
    sets how wide the writing is against the template (the skeleton is scaled, so the pen
    stays round); without it the width varies with ``wobble`` (log-normal, sigma 2·wobble),
    which lets a large wobble write digits wider or narrower than people do. ``repertoire``
    is the set of templates ``style`` picks from (:data:`REPERTOIRES`). ``pressure`` (0..1)
    varies the pen's width along each stroke (:func:`pressure_widths`); 0 keeps the round pen.
    """
    from shapely.geometry import LineString, MultiLineString

    template = TEMPLATES[char][hand_variant(char, style, repertoire)]
    rng = np.random.default_rng([0x5EED, int(style)])
    # Control points move with a shorter-wave field (loops grow, bars tilt) plus a little
    # independent noise; a shared joint moves with both of its pieces.
    shift = smooth_field(rng, wobble, waves=4, cycles=(1.0, 2.5))
    jitter: dict[tuple[float, float], np.ndarray] = {}

    def moved(p: tuple[float, float]) -> np.ndarray:
        key = (round(p[0], 6), round(p[1], 6))
        if key not in jitter:
            q = np.asarray([p], dtype=np.float64)
            jitter[key] = shift(q)[0] + rng.normal(0.0, 0.3 * wobble, size=2)
        return jitter[key]

    lines = []
    for stroke in template:
        pts: list[np.ndarray] = []
        for piece in stroke:
            curve = _catmull_rom(np.array([moved(p) for p in piece]))
            pts.append(curve if not pts else curve[1:])
        lines.append(np.vstack(pts))
    width = math.exp(rng.normal(0.0, 2.0 * wobble))  # wider or narrower writing
    if aspect is not None:  # drawn all the same, so the bend below stays the style's own
        width = aspect
    bend = smooth_field(rng, 1.5 * wobble)
    lines = [bend(line * [width, 1.0]) for line in lines]
    if flourish > 0:  # a stream of its own: the digits without it stay exactly as they were
        lines = stroke_ends(lines, np.random.default_rng([0xF10, int(style)]), flourish)
    if pressure > 0:  # a stream of its own, as for flourish
        pressed = np.random.default_rng([0x9E55, int(style)])
        return _variable_pen(
            lines, [pressure_widths(line, pressed, pressure) * pen for line in lines]
        )
    skeleton = MultiLineString([LineString(line) for line in lines])
    return skeleton.buffer(pen / 2, quad_segs=6, cap_style="round", join_style="round")


def pressure_widths(line: np.ndarray, rng: np.random.Generator, pressure: float) -> np.ndarray:
    """Relative pen width at each point of ``line``: 1 + pressure · a smooth random wave of
    the arc length (a few cycles per ink height), clipped to [0.2, 2].

    Why: a real pen presses and lifts along a stroke, so real strokes are thin in places (a
    2's base, an 8's joins). Thinning such a digit breaks it there, as eroding real ink does;
    a constant-width pen only ever gets thinner everywhere at once."""
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    waves = 3
    k = rng.uniform(1.0, 3.0, size=(waves, 1)) * 2 * math.pi
    phase = rng.uniform(0, 2 * math.pi, size=(waves, 1))
    weight = rng.uniform(0.5, 1.0, size=(waves, 1))
    g = np.sum(weight * np.sin(k * s + phase), axis=0) / np.sum(weight)
    return np.clip(1.0 + pressure * g / max(np.abs(g).max(), 1e-9), 0.2, 2.0)


def _variable_pen(lines: list[np.ndarray], widths: list[np.ndarray]) -> Any:
    """The union of a round pen dragged along each line with a changing diameter: each
    segment is the convex hull of the pen's discs at its two ends."""
    import shapely
    from shapely.ops import unary_union

    pieces = []
    for line, width in zip(lines, widths, strict=True):
        discs = shapely.buffer(shapely.points(line), width / 2, quad_segs=6)
        pieces.extend(discs[:1])
        pieces.extend(shapely.convex_hull(shapely.union(discs[:-1], discs[1:])))
    return unary_union(pieces)
