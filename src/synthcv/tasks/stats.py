"""Intervals for the questions the harness answers: how sure is a mean over seeds (Student
t), how sure is an accuracy measured on n samples (Wilson score), and how sure is a change
measured on the same n samples (a paired bootstrap)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean and two-sided t-interval over repeated runs; ``half`` is NaN for one run."""
    from scipy import stats

    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        raise ValueError("mean_ci: no values")
    m = sum(v) / n
    if n == 1:
        return {"mean": m, "lo": m, "hi": m, "half": float("nan"), "n": 1, "std": float("nan")}
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": m, "lo": m - half, "hi": m + half, "half": half, "n": n, "std": sd}


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials: honest at small n and at 0 or 1,
    where the normal approximation collapses to a zero-width interval."""
    if n <= 0:
        return (float("nan"), float("nan"))
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_mean_ci(
    per_item: Sequence[float], level: float = 0.95, resamples: int = 4000, seed: int = 0
) -> dict[str, float]:
    """Mean and percentile-bootstrap interval of per-item values, typically the paired
    difference of two models' correctness on the same digits.

    Why paired: two accuracies on one test set share its easy and hard items, so their
    difference is known far better than either Wilson interval suggests, and a gain of a few
    items can be told from noise (or not) only this way."""
    import numpy as np
    from scipy import stats

    v = np.asarray(per_item, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("paired_mean_ci: no values")
    m = float(v.mean())
    if v.size == 1 or np.all(v == v[0]):  # no spread to resample: the interval is the point
        return {"mean": m, "lo": m, "hi": m, "n": int(v.size)}
    res = stats.bootstrap(
        (v,),
        np.mean,
        confidence_level=level,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return {"mean": m, "lo": float(ci.low), "hi": float(ci.high), "n": int(v.size)}


def fmt_ci(s: dict[str, float], scale: float = 100.0, digits: int = 2) -> str:
    """'97.31 ± 0.42' (or '97.31 (1 seed)')."""
    if math.isnan(s["half"]):
        return f"{s['mean'] * scale:.{digits}f} (1 seed)"
    return f"{s['mean'] * scale:.{digits}f} ± {s['half'] * scale:.{digits}f}"
