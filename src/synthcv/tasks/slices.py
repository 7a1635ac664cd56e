"""Break a per-sample metric down by any realized factor, worst slice first.

Every synthcv sample records its factors (camera elevation, light, font...), so a model's
errors can be located without re-rendering: numeric factors are binned (quantile or uniform
edges), categorical ones grouped by value, missing values get their own slice. For each
factor the slices partition the samples, and each slice reports accuracy with a Wilson
interval so a 3-sample slice at 0% is not mistaken for a proven failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from synthcv.tasks.stats import wilson

MISSING = "(missing)"


def _is_numeric(v: np.ndarray) -> bool:
    return v.dtype.kind in "iuf" and v.dtype.kind != "b"


def bin_labels(
    values: np.ndarray, bins: int = 5, binning: Literal["quantile", "uniform"] = "quantile"
) -> tuple[np.ndarray, list[str]]:
    """Slice label per sample and the ordered slice names for one factor."""
    v = np.asarray(values)
    if v.dtype == object:
        # Try numbers stored as objects (None for missing) before treating as categories.
        try:
            v = np.array([np.nan if x is None else float(x) for x in v])
        except (TypeError, ValueError):
            labels = np.array([MISSING if x is None else str(x) for x in v], dtype=object)
            return labels, sorted(set(labels.tolist()))
    if not _is_numeric(v):
        labels = np.array([str(x) for x in v], dtype=object)
        return labels, sorted(set(labels.tolist()))
    v = v.astype(np.float64)
    ok = np.isfinite(v)
    out = np.full(len(v), MISSING, dtype=object)
    distinct = np.unique(v[ok])
    if len(distinct) <= bins:
        for d in distinct:
            out[ok & (v == d)] = f"{d:g}"
        return out, [f"{d:g}" for d in distinct] + ([MISSING] if (~ok).any() else [])
    if binning == "quantile":
        edges = np.unique(np.quantile(v[ok], np.linspace(0, 1, bins + 1)))
    elif binning == "uniform":
        edges = np.linspace(v[ok].min(), v[ok].max(), bins + 1)
    else:
        raise ValueError(f"slices.binning: got {binning!r}, expected 'quantile' or 'uniform'")
    # Bin k is [e_k, e_{k+1}); the last bin is closed so the maximum belongs to it.
    k = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    names = []
    for j in range(len(edges) - 1):
        close = "]" if j == len(edges) - 2 else ")"
        names.append(f"[{edges[j]:.4g}, {edges[j + 1]:.4g}{close}")
    out[ok] = np.array(names, dtype=object)[k[ok]]
    return out, names + ([MISSING] if (~ok).any() else [])


def slice_metrics(
    correct: np.ndarray,
    factors: Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
    bins: int = 5,
    binning: Literal["quantile", "uniform"] = "quantile",
    min_count: int = 1,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Rows ``{factor, slice, n, correct, acc, lo, hi}`` sorted worst first.

    "Worst" is the lowest accuracy; ties go to the slice with more samples (stronger
    evidence). Slices with fewer than ``min_count`` samples are left out of the rows (they
    still count toward nothing else), so by default every sample appears once per factor.
    """
    c = np.asarray(correct, dtype=bool)
    names = list(factors) if names is None else list(names)
    rows: list[dict[str, Any]] = []
    for f in names:
        if f not in factors:
            raise KeyError(f"slices: unknown factor {f!r}; available: {sorted(factors)}")
        v = np.asarray(factors[f])
        if len(v) != len(c):
            raise ValueError(f"slices: factor {f!r} has {len(v)} values for {len(c)} samples")
        labels, order = bin_labels(v, bins, binning)
        for s in order:
            m = labels == s
            n = int(m.sum())
            if n < min_count:
                continue
            k = int(c[m].sum())
            lo, hi = wilson(k, n, level)
            rows.append(
                {"factor": f, "slice": s, "n": n, "correct": k, "acc": k / n, "lo": lo, "hi": hi}
            )
    rows.sort(key=lambda r: (r["acc"], -r["n"], r["factor"], r["slice"]))
    return rows
