"""Distributions usable for any numeric or categorical spec field.

A spec value is either a constant or a one-key mapping naming a distribution::

    3.0                           constant
    {uniform: [a, b]}             a <= x < b
    {normal: [mu, sigma], clip: [lo, hi]}   clip optional
    {loguniform: [a, b]}          0 < a <= b
    {randint: [lo, hi]}           integers, both ends included
    {choice: [x, y, z]}           uniform over the list
    {choice: {x: 0.7, y: 0.3}}    weighted (weights are normalised)

Every draw takes an explicit ``numpy.random.Generator``: no hidden global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

DIST_KEYS = ("uniform", "normal", "loguniform", "randint", "choice")
NORMAL_REACH = 6.0  # a normal without clip is range-checked over mu ± 6 sigma
RANDINT_LIMIT = 2**53  # randint bounds: integers exact as floats, far inside int64


@dataclass(frozen=True)
class Distribution:
    kind: str  # "constant" | one of DIST_KEYS
    params: tuple[Any, ...]
    weights: tuple[float, ...] | None = None
    clip: tuple[float, float] | None = None

    def sample(self, rng: np.random.Generator) -> Any:
        k, p = self.kind, self.params
        if k == "constant":
            return p[0]
        if k == "uniform":
            return float(rng.uniform(p[0], p[1]))
        if k == "normal":
            x = float(rng.normal(p[0], p[1]))
            return float(np.clip(x, *self.clip)) if self.clip else x
        if k == "loguniform":
            return float(math.exp(rng.uniform(math.log(p[0]), math.log(p[1]))))
        if k == "randint":
            return int(rng.integers(p[0], p[1] + 1))
        if k == "choice":
            i = (
                int(rng.choice(len(p), p=self.weights))
                if self.weights
                else int(rng.integers(len(p)))
            )
            return p[i]
        raise AssertionError(k)

    @property
    def is_numeric(self) -> bool:
        if self.kind in ("uniform", "normal", "loguniform", "randint"):
            return True
        return all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.params)

    def value_range(self) -> tuple[float, float]:
        """The smallest and largest value a numeric distribution can draw, for range checks.

        Exact for constants, ``uniform``, ``loguniform``, ``randint`` and ``choice``; a
        ``normal`` counts as reaching ``mu ± 6 sigma`` (a draw outside has probability 2e-9),
        then clipped to its ``clip`` range, if any."""
        k, p = self.kind, self.params
        if k == "normal":
            lo, hi = p[0] - NORMAL_REACH * p[1], p[0] + NORMAL_REACH * p[1]
            if self.clip:
                lo, hi = (min(max(x, self.clip[0]), self.clip[1]) for x in (lo, hi))
            return float(lo), float(hi)
        values = [float(v) for v in p]
        return min(values), max(values)

    def support(self) -> tuple[Any, ...]:
        """Values or bounds a user can expect; used in docs and `inspect`."""
        return self.params

    def to_json(self) -> Any:
        if self.kind == "constant":
            return self.params[0]
        if self.kind == "choice":
            if self.weights:
                return {"choice": dict(zip(self.params, self.weights, strict=True))}
            return {"choice": list(self.params)}
        out: dict[str, Any] = {self.kind: list(self.params)}
        if self.clip:
            out["clip"] = list(self.clip)
        return out


def constant(value: Any) -> Distribution:
    return Distribution("constant", (value,))


def _number(text: Any) -> Any:
    """``"30"`` -> 30, ``"0.5"`` -> 0.5 (the inverse of JSON's key stringification)."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        return text
    return x if math.isfinite(x) else text  # "nan", "inf" stay categories


def _finite(where: tuple[str | int, ...], v: Any) -> None:
    """Reject NaN and ±inf (and integers too large for a float) where a number is expected."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            ok = math.isfinite(v)
        except OverflowError:  # an int beyond float range
            ok = False
        if not ok:
            from synthcv.validation import FieldProblem, short_value

            raise FieldProblem(where, f"got {short_value(v)}, expected a finite number")


def _pair(name: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{name} needs a list of two numbers [a, b]")
    for i, v in enumerate(value):
        _finite((name, i), v)
    return float(value[0]), float(value[1])


def parse_distribution(value: Any, *, numeric: bool | None = None) -> Distribution:
    """Parse a spec value into a Distribution; raise ValueError with what was expected.

    ``numeric=True`` rejects categorical values, ``numeric=False`` rejects numeric ones.
    """
    if isinstance(value, Distribution):
        return value
    if isinstance(value, dict):
        keys = set(value)
        kinds = keys & set(DIST_KEYS)
        extra = keys - set(DIST_KEYS) - {"clip"}
        if len(kinds) != 1 or extra or ("clip" in keys and "normal" not in keys):
            raise ValueError(
                "a distribution with exactly one of "
                + ", ".join(DIST_KEYS)
                + " (clip only with normal)"
            )
        (kind,) = kinds
        arg = value[kind]
        if kind == "choice":
            if isinstance(arg, dict):
                for k, w in arg.items():
                    _finite(("choice",), k)
                    _finite(("choice", str(k)), w)
                if not arg or not all(
                    isinstance(w, int | float) and not isinstance(w, bool) and w >= 0
                    for w in arg.values()
                ):
                    raise ValueError("choice weights as {value: weight >= 0, ...}")
                total = float(sum(arg.values()))
                if total <= 0:
                    raise ValueError("choice weights that sum to more than 0")
                weights = tuple(float(w) for w in arg.values())
                # Normalise once; weights that already sum to 1 stay as written, so a spec and
                # its resolved JSON parse to the same spec (and seed the same samples).
                if abs(total - 1.0) > 1e-9:
                    weights = tuple(w / total for w in weights)
                dist = Distribution("choice", tuple(arg), weights=weights)
            elif isinstance(arg, list | tuple) and arg:
                for i, v in enumerate(arg):
                    _finite(("choice", i), v)
                dist = Distribution("choice", tuple(arg))
            else:
                raise ValueError("choice as a non-empty list or a {value: weight} mapping")
        elif kind == "randint":
            a, b = _pair("randint", arg)
            if a != int(a) or b != int(b) or a > b:
                raise ValueError("randint: [lo, hi] integers with lo <= hi")
            if max(abs(a), abs(b)) > RANDINT_LIMIT:
                raise ValueError("randint: [lo, hi] integers within ±2**53")
            dist = Distribution("randint", (int(a), int(b)))
        else:
            a, b = _pair(kind, arg)
            if kind == "normal":
                if b < 0:
                    raise ValueError("normal: [mu, sigma] with sigma >= 0")
                clip = _pair("clip", value["clip"]) if "clip" in value else None
                if clip and clip[0] > clip[1]:
                    raise ValueError("clip: [lo, hi] with lo <= hi")
                dist = Distribution("normal", (a, b), clip=clip)
            elif kind == "loguniform":
                if not 0 < a <= b:
                    raise ValueError("loguniform: [a, b] with 0 < a <= b")
                dist = Distribution("loguniform", (a, b))
            else:
                if a > b:
                    raise ValueError("uniform: [a, b] with a <= b")
                dist = Distribution("uniform", (a, b))
    elif isinstance(value, str | int | float | bool) or value is None:
        _finite((), value)
        dist = constant(value)
    else:
        raise ValueError(
            "a constant or a distribution ({uniform: [a, b]}, {normal: [mu, sigma]}, "
            "{loguniform: [a, b]}, {randint: [lo, hi]}, {choice: [...]})"
        )
    if numeric is True and not dist.is_numeric and dist.kind == "choice" and dist.weights:
        # JSON writes mapping keys as strings ({30: 0.5} -> {"30": 0.5}); a numeric field
        # reads them back as numbers, so a resolved spec parses to the spec it came from
        params = tuple(_number(p) for p in dist.params)
        if all(isinstance(p, int | float) for p in params):
            dist = Distribution("choice", params, weights=dist.weights)
    if numeric is True and not dist.is_numeric:
        raise ValueError("a number or a numeric distribution")
    if numeric is False and dist.kind in ("uniform", "normal", "loguniform", "randint"):
        raise ValueError("a category or {choice: [...]}")
    return dist
