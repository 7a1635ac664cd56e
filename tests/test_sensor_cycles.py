"""The sensor model on the Cycles backend: the lens moves Cycles' labels as the tiny
backend's, and ``renderer.pair_samples`` gives (low-sample, clean) pairs of one scene."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")

from synthcv.pipeline import render_sample
from synthcv.render.cycles import CyclesRenderer
from synthcv.render.tiny import TinyRenderer
from synthcv.spec import Spec
from test_sensor import square_spec

pytestmark = pytest.mark.cycles


def test_distorted_labels_agree_between_backends():
    spec = Spec.model_validate(
        square_spec(sensor={"distortion": {"k1": -0.3, "k2": 0.1, "p1": 0.003}})
    )
    a = render_sample(spec, 0, TinyRenderer())
    b = render_sample(spec, 0, CyclesRenderer(samples=1))
    ma, mb = a.result.instance == 1, b.result.instance == 1
    assert (ma & mb).sum() / (ma | mb).sum() >= 0.98
    oa, ob = a.labels.objects[0], b.labels.objects[0]
    assert np.abs(np.array(oa["bbox"]) - ob["bbox"]).max() <= 1
    np.testing.assert_allclose(oa["keypoints"], ob["keypoints"])  # geometry: identical


def test_pair_samples_give_a_noisy_and_a_clean_render_of_one_scene():
    renderer = {"backend": "cycles", "samples": 32, "pair_samples": 1}
    spec = Spec.model_validate(square_spec(renderer=renderer, outputs={"pairs": True}))
    cycles = CyclesRenderer(samples=32, pair_samples=1)
    rs = render_sample(spec, 0, cycles)
    ref = render_sample(
        Spec.model_validate(square_spec(renderer={"backend": "cycles", "samples": 32})),
        0,
        CyclesRenderer(samples=32),
    )
    np.testing.assert_array_equal(rs.clean, ref.result.rgb)  # clean: the normal render
    noisy, clean = rs.result.rgb.astype(float), rs.clean.astype(float)
    assert abs(noisy.mean() - clean.mean()) < 3  # same scene, same exposure ...
    assert np.abs(noisy - clean).mean() > 2  # ... with 1-sample path-tracing noise
    again = render_sample(spec, 0, cycles)
    np.testing.assert_array_equal(again.result.rgb, rs.result.rgb)  # deterministic


def test_pair_samples_without_pairs_is_an_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"outputs\.pairs: true"):
        Spec.model_validate(square_spec(renderer={"backend": "cycles", "pair_samples": 2}))
