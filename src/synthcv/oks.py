"""OKS sigmas: how strictly keypoints of each category are scored (COCO's object keypoint
similarity), in one place, so the evaluator and the COCO export agree and a COCO file carries
the sigmas its categories need (pycocotools' defaults are COCO's 17 person sigmas only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["COCO_PERSON_SIGMAS", "DEFAULT_SIGMA", "PERSON_NAMES", "keypoint_sigmas"]

#: COCO's per-keypoint OKS sigmas for its 17 person keypoints (nose, eyes, ears, shoulders,
#: elbows, wrists, hips, knees, ankles): how far human annotators disagree, as a fraction of
#: object scale (Ruggero Ronchi & Perona 2017).
COCO_PERSON_SIGMAS = (
    np.array([26, 25, 25, 35, 35, 79, 79, 72, 72, 62, 62, 107, 107, 87, 87, 89, 89]) / 1000.0
)
#: Category names that get :data:`COCO_PERSON_SIGMAS` when they have 17 keypoints.
PERSON_NAMES = frozenset({"person", "people", "human", "pedestrian"})
#: Sigma for every keypoint of any other category. Synthetic keypoints are exact (no annotator
#: noise), so COCO's human sigmas do not apply; 0.05 sits inside COCO's range (0.025 for eyes
#: to 0.107 for hips) and means: an error of 10% of the object's scale (sqrt of its area)
#: scores OKS 0.61 — counted at OKS 0.5, not at 0.75. Override with ``kpt_sigmas``.
DEFAULT_SIGMA = 0.05


def keypoint_sigmas(
    category: str,
    k: int,
    kpt_sigmas: Sequence[float] | Mapping[str, Sequence[float]] | float | None = None,
) -> np.ndarray:
    """The K OKS sigmas used for one category: ``kpt_sigmas`` (one list for every keypoint
    category, a mapping by category name, or one number for every keypoint) when it covers the
    category, else :data:`COCO_PERSON_SIGMAS` for a person-like name (:data:`PERSON_NAMES`)
    with K = 17, else :data:`DEFAULT_SIGMA` for every keypoint."""
    given: Any = kpt_sigmas
    if isinstance(kpt_sigmas, Mapping):
        given = kpt_sigmas.get(category)
    if given is not None:
        v = np.asarray(given, dtype=np.float64).reshape(-1)
        if len(v) == 1:
            v = np.full(k, v[0])
        if len(v) != k or not (v > 0).all():
            raise ValueError(
                f"kpt_sigmas[{category!r}]: got {len(v)} values, expected {k} positive ones"
            )
        return v
    if k == 17 and category.strip().lower() in PERSON_NAMES:
        return COCO_PERSON_SIGMAS.copy()
    return np.full(k, DEFAULT_SIGMA)
