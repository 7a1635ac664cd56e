"""What is synthetic data worth? Train on synthetic, test on real.

The harness turns data sources (real digits, synthcv datasets, generated samples) into arrays,
trains a small CNN with seeded loops, and runs recipes from YAML: real-only, synthetic-only,
mixtures at a per-batch ratio, pre-train → fine-tune with forgetting curves, learning curves,
slices with Wilson intervals. Submodules import torch; this package itself stays light.

- :mod:`synthcv.tasks.data` — sources → :class:`~synthcv.tasks.data.ArraySet`
- :mod:`synthcv.tasks.domain` — "match the target domain" framing from instance masks
- :mod:`synthcv.tasks.sampling` — per-batch mixture sampler
- :mod:`synthcv.tasks.model`, :mod:`synthcv.tasks.train` — CNN, fit/evaluate
- :mod:`synthcv.tasks.slices`, :mod:`synthcv.tasks.stats` — slices, intervals
- :mod:`synthcv.tasks.experiment` — YAML recipes, tracked runs
"""

from __future__ import annotations

from typing import Any


def run_experiment(config: Any, **kwargs: Any) -> dict[str, Any]:
    """Run an experiment config (path, dict or ExperimentConfig); see tasks.experiment."""
    from synthcv.tasks.experiment import run_experiment as _run

    return _run(config, **kwargs)
