"""camera.frame: the labelled objects framed the way a dataset's preprocessing framed them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synthcv.pipeline import render_sample
from synthcv.pipeline.framing import frame_camera
from synthcv.pipeline.runner import worker_renderer
from synthcv.sampler import sample_scene
from synthcv.spec import FrameSpec, SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]


def digit_spec(frame: dict | None, supersample: int = 3, count: int = 6) -> dict:
    """A 28x28 hand-written "7" (its centre of mass is far from its box centre)."""
    camera = {
        "distance": {"uniform": [0.25, 0.4]},
        "elevation": {"uniform": [70, 90]},
        "azimuth": {"uniform": [-100, -80]},
        "look_at": [0, 0, 0],
        "look_at_jitter": 0.02,
        "fov": 30,
    }
    if frame is not None:
        camera["frame"] = frame
    return {
        "count": count,
        "seed": 4,
        "image": {"width": 28, "height": 28, "channels": 1, "supersample": supersample},
        "renderer": {"backend": "tiny", "shadows": False},
        "camera": camera,
        "lights": {"ambient": 1.0, "sun": {"intensity": 0.0}},
        "ground": {"color": {"v": 0.0}},
        "objects": {
            "count": 1,
            "pose": {"x": 0, "y": 0, "z": 0, "rotation": "euler", "yaw": {"uniform": [-20, 20]}},
            "classes": {
                "7": {
                    "asset": {
                        "glyph": "7",
                        "font": "hand",
                        "height": 0.1,
                        "depth": 0.002,
                        "style": {"randint": [0, 1000]},
                    },
                    "color": {"v": 1.0},
                }
            },
        },
        "physics": {"enabled": False},
    }


def ink_stats(mask: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Larger side of the mask's pixel box, the box centre and the centroid, (x, y) pixels."""
    ys, xs = np.nonzero(mask)
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    box = np.array([(xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2])
    return float(side), box, np.array([xs.mean(), ys.mean()])


@pytest.fixture(scope="module")
def tiny():
    spec = load_spec(digit_spec(None))
    return worker_renderer(spec)


def test_fit_and_box_centre_land_where_asked(tiny):
    spec = load_spec(digit_spec({"fit": 20, "center": "box", "at": [14, 13]}))
    for i in range(spec.count):
        rs = render_sample(spec, i, tiny)
        side, box, _ = ink_stats(rs.result.instance > 0)
        # the box of the projected mesh is the ink's box up to the raster's half pixels
        assert side == pytest.approx(20, abs=1.0)
        np.testing.assert_allclose(box, [14, 13], atol=0.75)
        assert rs.scene.factors["camera.frame.zoom"] > 0


def test_mass_centre_lands_on_the_pixel_asked(tiny):
    spec = load_spec(digit_spec({"fit": 20, "center": "mass", "at": [14, 14]}))
    plain = load_spec(digit_spec(None))
    moved_by_mass = 0.0
    for i in range(spec.count):
        rs = render_sample(spec, i, tiny)
        _, box, centroid = ink_stats(rs.result.instance > 0)
        np.testing.assert_allclose(centroid, [14, 14], atol=0.3)
        moved_by_mass = max(moved_by_mass, float(np.abs(box - centroid).max()))
        # unframed, the same digit sits elsewhere and at another size
        side0, _, centroid0 = ink_stats(render_sample(plain, i, tiny).result.instance > 0)
        assert abs(side0 - 20) > 1 or np.abs(centroid0 - 14).max() > 0.5
    assert moved_by_mass > 0.5  # a "7"'s mass is not at its box centre: the modes differ


def test_only_intrinsics_change_so_labels_follow_the_framed_camera(tiny):
    spec = load_spec(digit_spec({"fit": 18, "center": "mass"}, supersample=1, count=2))
    for i in range(spec.count):
        drawn = sample_scene(spec, i)
        rs = render_sample(spec, i, tiny)
        cam = rs.scene.camera
        np.testing.assert_array_equal(cam.world_to_camera, drawn.camera.world_to_camera)
        zoom = rs.scene.factors["camera.frame.zoom"]
        np.testing.assert_allclose(cam.K[0, 0], drawn.camera.K[0, 0] * zoom)
        # the label's box is the mask's box, and the keypoints project with the framed K
        obj = rs.labels.objects[0]
        mask = rs.result.instance == obj["instance_id"]
        ys, xs = np.nonzero(mask)
        assert obj["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        so = rs.scene.objects[0]
        centre_uv, _ = cam.project(so.position[None])
        assert 0 <= centre_uv[0, 0] < 28 and 0 <= centre_uv[0, 1] < 28


def test_default_centre_is_the_image_centre_and_fit_is_optional(tiny):
    spec = load_spec(digit_spec({"center": "box"}, supersample=1, count=3))
    for i in range(spec.count):
        rs = render_sample(spec, i, tiny)
        assert rs.scene.factors["camera.frame.zoom"] == 1.0
        _, box, _ = ink_stats(rs.result.instance > 0)
        np.testing.assert_allclose(box, [13.5, 13.5], atol=0.75)


def test_nothing_labelled_in_view_leaves_the_camera_and_records_nan():
    spec = load_spec(digit_spec({"fit": 20}, supersample=1, count=1))
    scene = sample_scene(spec, 0)
    empty = scene.with_objects([])
    framed = frame_camera(empty, spec.camera.frame, 1)
    np.testing.assert_array_equal(framed.camera.K, scene.camera.K)
    assert math.isnan(framed.factors["camera.frame.zoom"])


def test_an_unset_frame_leaves_the_scene_hash_alone():
    plain = load_spec(digit_spec(None))
    assert "frame" not in plain.resolved()["camera"]
    assert load_spec(digit_spec({"fit": 20})).scene_hash != plain.scene_hash


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        ({"fit": 0}, "camera.frame.fit"),
        ({"center": "middle"}, "camera.frame.center"),
        ({"at": [14, float("nan")]}, "camera.frame.at"),
        ({"zoom": 2}, "camera.frame.zoom"),
    ],
)
def test_bad_frames_name_the_field(frame, where):
    with pytest.raises(SpecError, match=where.replace(".", r"\.")):
        load_spec(digit_spec(frame))


def test_frame_spec_defaults():
    f = FrameSpec()
    assert (f.fit, f.center, f.at) == (None, "box", None)


def test_mnist_acquisition_example_frames_its_digits_like_mnist(tiny):
    """MNIST: ink box 20 px on its larger side, centre of mass at pixel (14, 14), black ground."""
    spec = load_spec(REPO / "examples" / "digits_mnist.yaml")
    sides, centroids = [], []
    for i in range(12):
        rgb = render_sample(spec, i, tiny).result.rgb[..., 0].astype(np.float64)
        # black ground, white ink: a pen that lifts (pressure) may cover no whole pixel
        assert np.median(rgb) == 0 and rgb.max() >= 245
        yy, xx = np.mgrid[:28, :28]
        centroids.append([(xx * rgb).sum() / rgb.sum(), (yy * rgb).sum() / rgb.sum()])
        sides.append(ink_stats(rgb > 30)[0])
    np.testing.assert_allclose(centroids, 14.0, atol=0.3)
    assert 18 <= np.mean(sides) <= 21
