"""Generation: spec → scenes → renders → labels → a dataset directory.

- :mod:`~synthcv.pipeline.sample`: one sample in memory (:func:`render_sample`)
- :mod:`~synthcv.pipeline.shard`: one shard written through the format's shard writer
- :mod:`~synthcv.pipeline.runner`: the driver (:func:`generate`), worker pool, worker state
"""

from __future__ import annotations

from synthcv.pipeline.runner import EmptySamplesWarning, generate
from synthcv.pipeline.sample import RenderedSample, downsample, render_sample
from synthcv.pipeline.shard import GenerationError

__all__ = [
    "EmptySamplesWarning",
    "GenerationError",
    "RenderedSample",
    "downsample",
    "generate",
    "render_sample",
]
