"""Batch composition for mixtures: a stated share of every batch from each source.

"Mix real and synthetic 1:4" must mean every batch holds that ratio, not that the union is
shuffled (where a 100-image real set would vanish among 10,000 synthetic ones). Per-batch
counts use largest-remainder rounding with the fractional part carried across batches, so any
ratio is met exactly over time (e.g. 0.3 of 8 → 2, 3, 2, 3, ... averaging 2.4). Each source is
drawn without replacement and reshuffled when exhausted (an epoch of that source).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class MixtureBatchSampler:
    """Yields batches of ``(source, index)`` pairs; ``len`` = ``steps``."""

    def __init__(
        self,
        sizes: Sequence[int],
        ratios: Sequence[float],
        batch_size: int,
        steps: int,
        seed: int = 0,
    ) -> None:
        if len(sizes) != len(ratios) or not sizes:
            raise ValueError(f"mixture: {len(sizes)} sources but {len(ratios)} ratios")
        r = np.asarray(ratios, dtype=np.float64)
        if (r < 0).any() or r.sum() <= 0:
            raise ValueError(f"mixture ratios must be ≥ 0 and not all 0, got {list(ratios)}")
        for s, ri in zip(sizes, r, strict=True):
            if ri > 0 and s <= 0:
                raise ValueError("mixture: a source with a positive ratio is empty")
        if batch_size < 1 or steps < 0:
            raise ValueError(f"mixture: batch_size {batch_size} / steps {steps} invalid")
        self.sizes = [int(s) for s in sizes]
        self.ratios = r / r.sum()
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed

    def __len__(self) -> int:
        return self.steps

    def counts(self) -> Iterator[np.ndarray]:
        """Per-batch item counts per source (largest remainder, remainder carried over)."""
        carry = np.zeros(len(self.sizes))
        for _ in range(self.steps):
            want = self.ratios * self.batch_size + carry
            base = np.floor(want).astype(int)
            short = self.batch_size - int(base.sum())
            if short > 0:
                frac = want - base
                # Stable tie-break by source order so the sequence is deterministic.
                for j in np.argsort(-frac, kind="stable")[:short]:
                    base[j] += 1
            carry = want - base
            yield base

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng(self.seed)
        perms = [rng.permutation(s) if s else np.zeros(0, int) for s in self.sizes]
        pos = [0] * len(self.sizes)
        for counts in self.counts():
            batch: list[tuple[int, int]] = []
            for j, c in enumerate(counts):
                for _ in range(int(c)):
                    if pos[j] >= len(perms[j]):
                        perms[j] = rng.permutation(self.sizes[j])
                        pos[j] = 0
                    batch.append((j, int(perms[j][pos[j]])))
                    pos[j] += 1
            yield batch
