"""From "these image features drifted" to "render this": the feature → factor mapping, the
probes that calibrate it on the renderer itself, and the spec overlay they produce.

A fixed table ("darker means ambient × 0.5") would be wrong for every spec but one. Instead each
rule names a spec field (or an augmentation) and probe values; the loop renders a few images at
each value through the same path training data takes, measures the feature, and inverts that
measured curve at the current batch's quantiles. The overlay is ordinary spec YAML over the
champion's spec (``extends:``), so it is recorded, diffable and re-renderable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from synthcv.safeyaml import YAMLProblem, load_yaml
from synthcv.validation import ConfigError, short_value

#: |Spearman rho| below which a probe curve is "not monotone": the rule is skipped.
MIN_MONOTONE = 0.8


@dataclass
class Rule:
    feature: str
    #: spec fields set together to each probe value (lights.ambient and lights.sun.intensity)
    paths: list[str] = field(default_factory=list)
    augment: str | None = None
    param: str | None = None
    probe: list[float] = field(default_factory=list)
    classes: bool = False
    #: the field takes one number, not a distribution: the region's midpoint is used
    single: bool = False


#: the bundled mapping for each kind of champion (module synthcv.loop.model_kinds)
DEFAULT_MAPPINGS = {"classifier": "mapping.yaml", "detector": "mapping_detection.yaml"}


def load_mapping(path: str | Path | None = None, kind: str = "classifier") -> dict[str, Rule]:
    """The mapping file (default: the one bundled for ``kind``), checked: every problem names
    its line."""
    if path is None:
        name = DEFAULT_MAPPINGS[kind]
        text = resources.files("synthcv.loop").joinpath(name).read_text("utf-8")
        where = f"synthcv/loop/{name}"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"mapping file not found: {p}")
        text, where = p.read_text(encoding="utf-8"), str(p)
    try:
        raw = load_yaml(text)
    except YAMLProblem as exc:
        raise ConfigError([str(exc)], where) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], where) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): got {short_value(raw)}, expected a mapping"], where)
    from synthcv.augment.ops import OPS
    from synthcv.monitor.features import COLOUR_FEATURES, FEATURES
    from synthcv.monitor.sources import OBJECT_FEATURES

    known = {*FEATURES, *COLOUR_FEATURES, *OBJECT_FEATURES, "class_mix"}
    rules, problems = {}, []
    for feat, r in raw.items():
        if feat not in known:
            problems.append(f"{feat}: not a monitored feature; expected one of {sorted(known)}")
            continue
        if not isinstance(r, dict):
            problems.append(f"{feat}: got {short_value(r)}, expected a mapping")
            continue
        unknown = set(r) - {"path", "augment", "param", "probe", "classes", "single"}
        if unknown:
            problems.append(f"{feat}: unknown keys {sorted(unknown)}")
            continue
        if r.get("classes"):
            rules[feat] = Rule(feat, classes=True)
            continue
        probe = r.get("probe")
        if (
            not isinstance(probe, list)
            or len(probe) < 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in probe)
        ):
            problems.append(f"{feat}.probe: got {short_value(probe)}, expected 3 or more numbers")
            continue
        if ("path" in r) == ("augment" in r):
            problems.append(f"{feat}: expected exactly one of 'path' or 'augment'")
            continue
        if "augment" in r:
            op, param = r["augment"], r.get("param")
            if op not in OPS:
                problems.append(f"{feat}.augment: got {op!r}, expected one of {sorted(OPS)}")
                continue
            fields = set(OPS[op].__dataclass_fields__) - {"name", "needs_depth"}
            if param not in fields:
                problems.append(f"{feat}.param: got {param!r}, expected one of {sorted(fields)}")
                continue
        else:
            paths = r["path"] if isinstance(r["path"], list) else [r["path"]]
            if not paths or not all(isinstance(x, str) and x for x in paths):
                problems.append(
                    f"{feat}.path: got {short_value(r['path'])}, expected a spec field or a "
                    "list of them"
                )
                continue
        rules[feat] = Rule(
            feat,
            paths if "path" in r else [],
            r.get("augment"),
            r.get("param"),
            [float(v) for v in probe],
            single=bool(r.get("single", False)),
        )
    if problems:
        raise ConfigError(problems, where)
    return rules


def nested(paths: str | list[str], value: Any) -> dict[str, Any]:
    """``"a.b.c", v`` -> ``{"a": {"b": {"c": v}}}``: fields of a spec overlay, each set to
    ``value``."""
    out: dict[str, Any] = {}
    for path in [paths] if isinstance(paths, str) else paths:
        one: Any = value
        for key in reversed(path.split(".")):
            one = {key: one}
        out = merge(out, one)
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass
class Region:
    """What one rule concluded: the probe curve, the current quantiles, the range it keeps."""

    feature: str
    target: str  # the spec path or "augment.<op>.<param>"
    probe: list[float]
    medians: list[float]
    current: tuple[float, float]
    range: tuple[float, float] | None
    note: str = ""
    #: how the range was read: "excess" (the within-probe spread removed) or "span"
    method: str = "span"
    #: the current batch's median, and the central interval left once the spread one probe
    #: value shows by itself (at that median) is taken out ("excess" only)
    current_median: float | None = None
    excess: tuple[float, float] | None = None
    probe_spread: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "feature": self.feature,
            "target": self.target,
            "probe": self.probe,
            "probe_medians": self.medians,
            "current_quantiles": list(self.current),
            "range": None if self.range is None else list(self.range),
            "method": self.method,
            "note": self.note,
        }
        if self.method == "excess":
            out["current_median"] = self.current_median
            out["excess_interval"] = None if self.excess is None else list(self.excess)
            out["probe_spread_at_median"] = (
                None if self.probe_spread is None else list(self.probe_spread)
            )
        return out


def invert_curve(
    feature: str,
    target: str,
    probe: list[float],
    medians: list[float],
    current: tuple[float, float],
) -> Region:
    """The probe values whose feature medians span ``current`` (linear between probes; clipped
    to the probed range, which the note then says). Not monotone: no range."""
    x, y = np.asarray(probe, float), np.asarray(medians, float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    rho = stats.spearmanr(x, y).statistic if np.ptp(y) > 0 else 0.0
    if not np.isfinite(rho) or abs(rho) < MIN_MONOTONE:
        return Region(feature, target, list(x), list(y), current, None,
                      f"the probe does not move {feature} monotonically (Spearman {rho:.2f}); "
                      "rule skipped")  # fmt: skip
    # a monotone envelope so np.interp sees increasing y
    inc = rho > 0
    ymono = np.maximum.accumulate(y) if inc else np.minimum.accumulate(y)
    yy, xx = (ymono, x) if inc else (ymono[::-1], x[::-1])
    yy = yy + np.arange(len(yy)) * 1e-12  # strictly increasing for interp
    lo_v, hi_v = sorted(current)
    ends = np.interp([lo_v, hi_v], yy, xx)
    note = ""
    if lo_v < yy[0] or hi_v > yy[-1]:
        note = (f"the current {feature} ({lo_v:.4g}..{hi_v:.4g}) reaches beyond the probed "
                f"{yy[0]:.4g}..{yy[-1]:.4g}; range clipped to the probes")  # fmt: skip
    lo, hi = float(min(ends)), float(max(ends))
    return Region(feature, target, list(x), list(y), current, (lo, hi), note)


def excess_interval(
    current: tuple[float, float],
    median: float,
    medians: list[float],
    below: list[float],
    above: list[float],
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The current central interval ``current`` (around ``median``) less the spread that one
    probe value shows by itself, and that spread.

    At a single probe value the feature still varies (classes, fonts, writers, poses the spec
    keeps random), so a batch's spread is that within-probe spread plus the spread of the
    factor. Reading the factor's range off the batch's whole spread (``span``) asks for far
    more of the factor than the batch shows: the bundled test digits' ink angle spans -10..55
    degrees, which is also what digits at one fixed yaw span. Each side's half-width is taken
    as the root of the difference of squares (independent parts add in variance), the
    within-probe half-widths ``below``/``above`` interpolated at ``median`` along the probe
    medians."""
    m = np.asarray(medians, float)
    order = np.argsort(m)
    low = float(np.interp(median, m[order], np.asarray(below, float)[order]))
    high = float(np.interp(median, m[order], np.asarray(above, float)[order]))
    lo_c, hi_c = sorted(current)
    lo = median - float(np.sqrt(max((median - lo_c) ** 2 - low**2, 0.0)))
    hi = median + float(np.sqrt(max((hi_c - median) ** 2 - high**2, 0.0)))
    return (lo, hi), (low, high)


def estimate_region(
    feature: str,
    target: str,
    probe: list[float],
    medians: list[float],
    below: list[float],
    above: list[float],
    current: tuple[float, float],
    median: float,
    quantile: float,
) -> Region:
    """The factor range whose renders show the current batch's excess spread (see
    :func:`excess_interval`), as a uniform range: its [q, 1 - q] quantiles are the inverted
    interval, so the support is wider by 1 / (1 - 2q). A range narrower than one probe
    spacing is widened to it (the curve says nothing finer); a range pinned to one end of the
    probes (the batch lies beyond them) stays a point there."""
    (lo_f, hi_f), spread = excess_interval(current, median, medians, below, above)
    region = invert_curve(feature, target, probe, medians, (lo_f, hi_f))
    region.current = tuple(sorted(current))  # type: ignore[assignment]
    region.method, region.current_median = "excess", median
    region.excess, region.probe_spread = (lo_f, hi_f), spread
    if region.range is None:
        return region
    x = np.sort(np.asarray(probe, float))
    lo, hi = region.range
    if not (lo == hi and lo in (x[0], x[-1])):
        width = (hi - lo) / (1 - 2 * quantile)
        lo, hi = lo - quantile * width, hi + quantile * width
        centre = (lo + hi) / 2
        i = int(np.clip(np.searchsorted(x, centre), 1, len(x) - 1))
        step = float(x[i] - x[i - 1])
        if hi - lo < step:
            lo, hi = centre - step / 2, centre + step / 2
        lo, hi = max(lo, float(x[0])), min(hi, float(x[-1]))
    region.range = (float(lo), float(hi))
    return region
