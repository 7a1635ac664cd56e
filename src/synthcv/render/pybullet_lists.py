"""Python lists that pybullet can read without leaking them.

pybullet's ``createVisualShape`` and ``createCollisionShape`` take two references to every list
they are given (the outer list and each of its rows; measured on pybullet 3.2.7) and never give
them back, so a list handed over once is never freed. With a new mesh in every sample (every
handwritten digit has its own), that was about 1.4 MB per sample: 13 GB of RSS after 10,000
digits, and minutes of garbage collection at exit. Handing pybullet the *same* list objects
every call, refilled in place, bounds what it can hold on to by the largest mesh seen.
"""

from __future__ import annotations

import numpy as np


class ReusedLists:
    """Per-argument list objects, refilled for each call (one instance per pybullet client).

    The lists returned are only valid until the next call with the same name: pass them to
    pybullet (which copies the numbers) and drop them.
    """

    def __init__(self) -> None:
        self._outer: dict[str, list] = {}
        self._rows: dict[tuple[str, int], list[list[float]]] = {}

    def rows(self, name: str, values: np.ndarray) -> list[list[float]]:
        """``values`` (N, k) as the reused outer list ``name`` of N reused k-element rows."""
        values = np.asarray(values, dtype=np.float64)
        n, k = values.shape
        pool = self._rows.setdefault((name, k), [])
        while len(pool) < n:
            pool.append([0.0] * k)
        for row, new in zip(pool, values.tolist(), strict=False):
            row[:] = new
        outer = self._outer.setdefault(name, [])
        outer[:] = pool[:n]
        return outer

    def flat(self, name: str, values: np.ndarray | list[int]) -> list:
        """``values`` (N,) as the reused list ``name`` (its items, numbers, are not leaked)."""
        outer = self._outer.setdefault(name, [])
        outer[:] = np.asarray(values).tolist()
        return outer
