"""Environments (issue #24) on Cycles: the same map convention, labels and lamp units as the
tiny backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("bpy")

from synthcv.pipeline import render_sample
from synthcv.render.cycles import CyclesRenderer
from synthcv.render.tiny import TinyRenderer
from synthcv.spec import Spec

pytestmark = pytest.mark.cycles

CLASSES = {"cube": {"asset": {"primitive": "cube", "size": 0.08}}}


@pytest.fixture(scope="module")
def renderers():
    tiny, cycles = TinyRenderer(), CyclesRenderer(samples=1)
    yield tiny, cycles
    tiny.close()
    cycles.close()


def test_cycles_sees_the_map_where_tiny_draws_it(renderers):
    """Camera rays that hit nothing: Cycles' environment texture and the tiny backend's lookup
    agree pixel for pixel (same direction convention, rotation and strength)."""
    tiny, cycles = renderers
    spec = Spec.model_validate(
        {
            "count": 2,
            "image": {"width": 96, "height": 64},
            "camera": {
                "distance": 1.0,
                "elevation": {"uniform": [-20, 40]},
                "azimuth": {"uniform": [0, 360]},
                "fov": 80,
            },
            "ground": {"enabled": False},
            "objects": {"count": 0, "classes": CLASSES},
            "world": {"hdri": "sunset", "rotation": 35.0, "strength": 2.0},
            "physics": {"enabled": False},
        }
    )
    for i in range(spec.count):
        a = render_sample(spec, i, tiny).result.rgb.astype(int)
        b = render_sample(spec, i, cycles).result.rgb.astype(int)
        diff = np.abs(a - b)
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6, (i, diff.mean())


def test_room_labels_agree_between_backends(renderers):
    tiny, cycles = renderers
    spec = Spec.model_validate(
        {
            "count": 3,
            "seed": 2,
            "image": {"width": 80, "height": 60},
            "camera": {
                "distance": 1.4,
                "elevation": {"uniform": [20, 40]},
                "azimuth": {"uniform": [0, 360]},
                "look_at": [0, 0, 0.75],
                "fov": 70,
            },
            "objects": {"count": 3, "classes": CLASSES},
            "room": {"windows": {"count": 1}, "table": {"tray": True}},
            "world": {"hdri": "courtyard", "strength": 0.5},
        }
    )
    for i in range(spec.count):
        a, b = render_sample(spec, i, tiny), render_sample(spec, i, cycles)
        agree = (a.labels.semantic == b.labels.semantic).mean()
        assert agree > 0.99, (i, agree)
        assert (a.result.instance == b.result.instance).mean() > 0.995
        hit = (a.result.depth > 0) & (b.result.depth > 0)
        assert np.abs(a.result.depth - b.result.depth)[hit].mean() < 0.01


def test_a_point_lamp_is_as_bright_in_both_backends(renderers):
    """Blender's watts: a 10 W lamp 1 m above a white floor, lit by nothing else."""
    tiny, _ = renderers
    cycles = CyclesRenderer(samples=64)
    try:
        spec = Spec.model_validate(
            {
                "count": 1,
                "image": {"width": 33, "height": 33},
                "camera": {"distance": 2.0, "elevation": 90, "azimuth": 0, "fov": 40},
                "ground": {"color": {"h": 0, "s": 0, "v": 1.0}, "roughness": 1.0},
                "lights": {
                    "sun": {"intensity": 0.0},
                    "ambient": 0.0,
                    "lamps": [
                        {
                            "type": "point",
                            "power": 10.0,
                            "size": 0.0,
                            "position": {"x": 0, "y": 0, "z": 1.0},
                        }
                    ],
                },
                "objects": {"count": 0, "classes": CLASSES},
                "physics": {"enabled": False},
            }
        )
        a = render_sample(spec, 0, tiny).result.rgb[12:21, 12:21, 0].mean()
        b = render_sample(spec, 0, cycles).result.rgb[12:21, 12:21, 0].mean()
        expect = 255 * (1.055 * (10 / (4 * math.pi**2)) ** (1 / 2.4) - 0.055)
        assert a == pytest.approx(expect, abs=3)
        assert b == pytest.approx(a, rel=0.06)
    finally:
        cycles.close()
