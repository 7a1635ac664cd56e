"""The camera/sensor model (issue #22): noise statistics, the lens model and the labels it
moves, pairs, byte-identity with the stages off, determinism and errors."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthcv.format import open_dataset
from synthcv.pipeline import generate, render_sample
from synthcv.pipeline.shard import GenerationError
from synthcv.sampler import sample_scene
from synthcv.sensor.lens import Distortion, distort_pixels, undistort_pixels
from synthcv.sensor.params import Noise, SensorParams
from synthcv.sensor.photometric import (
    apply_photometric,
    expected_variance,
    motion_kernel,
    sensor_raw,
    srgb_to_linear,
)
from synthcv.spec import Spec, SpecError, load_spec


def square_spec(**over) -> dict:
    """A cube seen straight from above, filling much of the frame: only its top face shows."""
    spec = {
        "count": 2,
        "image": {"width": 160, "height": 120},
        "camera": {"distance": 0.45, "elevation": 90, "azimuth": 0, "fov": 60},
        "lights": {"ambient": 0.6},
        "objects": {
            "count": 1,
            "pose": {"x": 0.0, "y": 0.0, "z": 0.0, "rotation": "euler", "yaw": 30},
            "classes": {"cube": {"asset": {"primitive": "cube", "size": 0.2}}},
        },
        "physics": {"enabled": False},
    }
    spec.update(over)
    return spec


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize(
    ("light", "gain", "full_well", "read_noise"),
    [(0.05, 1.0, 2000.0, 3.0), (0.3, 1.0, 10000.0, 2.0), (0.02, 8.0, 10000.0, 4.0)],
)
def test_flat_patch_variance_follows_shot_plus_read_model(light, gain, full_well, read_noise):
    noise = Noise(full_well=full_well, read_noise=read_noise, bit_depth=12)
    p = SensorParams(noise=noise, iso=100 * gain, seed=3)
    raw = sensor_raw(np.full((400, 500), light), p, np.random.default_rng(3))
    mean = raw.mean()
    assert mean == pytest.approx(light * gain, rel=0.01)
    assert raw.var() == pytest.approx(expected_variance(mean, noise, gain), rel=0.05)


def test_sample_noise_in_a_flat_region_matches_the_model(tiny):
    """End to end: a flat grey background through exposure, noise and a linear response."""
    sensor = {
        "exposure_ev": -2,
        "iso": 100,
        "noise": {"full_well": 1000, "read_noise": 5, "bit_depth": 12},
        "response": {"curve": "linear"},
    }
    spec = Spec.model_validate(
        square_spec(
            objects={"count": 0, "classes": {"cube": {"asset": {"primitive": "cube"}}}},
            ground={"enabled": False},
            background={"v": 0.5},
            sensor=sensor,
        )
    )
    rs = render_sample(spec, 0, tiny)
    clean = srgb_to_linear(rs.clean.astype(np.float64) / 255)
    assert np.ptp(clean) == 0  # the region is flat before the sensor
    out = rs.result.rgb.astype(np.float64) / 255
    noise = Noise(1000, 5, 12)
    expect = expected_variance(out.mean(), noise, 1.0) + (1 / 255) ** 2 / 12  # + 8-bit step
    assert out.mean() == pytest.approx(clean.mean() / 4, rel=0.01)
    assert out.var() == pytest.approx(expect, rel=0.05)


def test_auto_iso_compensates_exposure_and_raises_noise():
    light = np.full((300, 300), 0.4)
    noise = Noise(10000, 2, 12)
    bright = sensor_raw(light, SensorParams(noise=noise, iso=100), np.random.default_rng(0))
    dark = sensor_raw(
        light, SensorParams(noise=noise, exposure_ev=-4, iso=1600), np.random.default_rng(0)
    )
    assert dark.mean() == pytest.approx(bright.mean(), rel=0.01)
    assert dark.std() > 3.5 * bright.std()  # 16× fewer photons: 4× the relative shot noise


def test_motion_kernel_is_a_normalised_centred_line():
    k = motion_kernel(9, 0)
    assert k.sum() == pytest.approx(1)
    ys, _ = np.nonzero(k > 1e-9)
    assert set(ys) == {k.shape[0] // 2}  # horizontal
    centre = (k * np.arange(k.shape[1])).sum()
    assert centre == pytest.approx(k.shape[1] // 2)


# ----------------------------------------------------------------------------- lens


@pytest.mark.parametrize(
    "d",
    [
        Distortion(k1=-0.3, k2=0.08),
        Distortion(k1=0.2, k2=-0.02, p1=0.004, p2=-0.003),
        Distortion(k1=-0.1, p1=0.01),
    ],
)
def test_distortion_round_trip_within_005_px(d):
    K = np.array([[200.0, 0, 159.5], [0, 200.0, 119.5], [0, 0, 1]])
    rng = np.random.default_rng(0)
    uv = rng.uniform([0, 0], [320, 240], size=(2000, 2))
    back, ok = undistort_pixels(distort_pixels(uv, K, d), K, d)
    assert ok.all()
    assert np.abs(back - uv).max() < 0.05
    again = distort_pixels(undistort_pixels(uv, K, d)[0], K, d)
    assert np.abs(again - uv).max() < 0.05


def _inside_convex(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Points (N, 2) inside a convex polygon (M, 2) given in either winding."""
    sides = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        sides.append((b[0] - a[0]) * (points[:, 1] - a[1]) - (b[1] - a[1]) * (points[:, 0] - a[0]))
    s = np.stack(sides)
    return (s >= 0).all(axis=0) | (s <= 0).all(axis=0)


@pytest.mark.parametrize("supersample", [1, 3])
def test_labels_of_a_distorted_render_match_the_distorted_geometry(tiny, supersample):
    d = Distortion(k1=-0.35, k2=0.1, p1=0.003)
    image = {"width": 160, "height": 120, "supersample": supersample}
    plain = Spec.model_validate(square_spec(image=image))
    spec = Spec.model_validate(
        square_spec(image=image, sensor={"distortion": {"k1": d.k1, "k2": d.k2, "p1": d.p1}})
    )
    rs = render_sample(spec, 0, tiny)
    cam = rs.scene.camera
    assert (cam.width, cam.height) == (160, 120)
    np.testing.assert_allclose(cam.K, render_sample(plain, 0, tiny).scene.camera.K)

    # analytic: the top face's corners through the pinhole, the region through the lens
    cube = next(o for o in sample_scene(plain, 0).objects if o.class_name == "cube")
    corners = cube.mesh.box_corners()[4:] @ cube.object_to_world()[:3, :3].T + cube.position
    uv, _ = cam.project(corners)
    order = np.argsort(np.arctan2(uv[:, 1] - uv[:, 1].mean(), uv[:, 0] - uv[:, 0].mean()))
    ys, xs = np.mgrid[0:120, 0:160]
    pix = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    pre, ok = undistort_pixels(pix, cam.K, d)
    assert ok.all()
    analytic = _inside_convex(pre, uv[order]).reshape(120, 160)
    pinhole = _inside_convex(pix, uv[order]).reshape(120, 160)

    obj = next(o for o in rs.labels.objects if o["class_name"] == "cube")
    mask = rs.result.instance == obj["instance_id"]

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    assert iou(mask, analytic) >= 0.98
    assert iou(pinhole, analytic) < 0.9  # the lens moved it: the check above has teeth
    assert obj["visible_pixels"] == int(mask.sum())
    rows, cols = np.nonzero(analytic)
    box = [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
    assert np.abs(np.array(obj["bbox"]) - box).max() <= 1
    assert np.abs(np.array(obj["bbox_amodal"]) - box).max() <= 1
    assert (rs.labels.semantic > 0).sum() == mask.sum()
    # keypoints: the analytic distortion of the pinhole projection (COCO: centre at i + 0.5)
    kps = np.array(obj["keypoints"]).reshape(-1, 3)
    expect = distort_pixels(uv, cam.K, d) + 0.5
    np.testing.assert_allclose(kps[4:8, :2], expect, atol=1e-6)
    assert (kps[4:8, 2] == 2).all()


def test_distortion_is_recorded_and_the_pinhole_rows_are_unchanged(tmp_path):
    sensor = {"distortion": {"k1": {"uniform": [-0.2, 0.0]}, "p2": 0.001}}
    generate(square_spec(sensor=sensor), tmp_path / "d", progress=False)
    generate(square_spec(), tmp_path / "p", progress=False)
    rows = pq.read_table(tmp_path / "d" / "samples.parquet").to_pylist()
    plain = pq.read_table(tmp_path / "p" / "samples.parquet").to_pylist()
    for r, p in zip(rows, plain, strict=True):
        assert r["distortion"] == [r["sensor.distortion.k1"], 0.0, 0.0, 0.001]
        assert -0.2 <= r["sensor.distortion.k1"] <= 0.0
        assert r["K"] == p["K"] and r["world_to_camera"] == p["world_to_camera"]
    assert "distortion" not in plain[0]


def test_a_folding_distortion_is_a_clear_error(tiny):
    spec = Spec.model_validate(square_spec(sensor={"distortion": {"k1": -1.0}}))
    with pytest.raises(ValueError, match=r"sensor: distortion k1=-1.*folds the image"):
        render_sample(spec, 0, tiny)


# ----------------------------------------------------------------------------- identity


def _tree_bytes(root: Path, suffixes=(".png", ".tiff")) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in suffixes
    }


def test_zero_degradation_reproduces_todays_files_byte_for_byte(tmp_path):
    zero = {
        "distortion": {"k1": 0, "k2": 0, "p1": 0, "p2": 0},
        "exposure_ev": 0,
        "iso": "auto",
        "response": {"curve": "srgb"},
    }
    generate(square_spec(), tmp_path / "plain", progress=False)
    generate(square_spec(sensor=zero), tmp_path / "zero", progress=False)
    a, b = _tree_bytes(tmp_path / "plain"), _tree_bytes(tmp_path / "zero")
    assert a and a == b
    rows = pq.read_table(tmp_path / "zero" / "samples.parquet").to_pylist()
    assert rows[0]["sensor.exposure_ev"] == 0 and rows[0]["sensor.iso"] == 100


def test_sensor_keeps_the_scene_hash_and_scenes():
    plain = Spec.model_validate(square_spec())
    with_sensor = Spec.model_validate(square_spec(sensor={"exposure_ev": -3, "noise": {}}))
    assert plain.scene_hash == with_sensor.scene_hash
    assert plain.spec_hash != with_sensor.spec_hash
    assert sample_scene(plain, 1).seed == sample_scene(with_sensor, 1).seed


# ----------------------------------------------------------------------------- pairs


PAIRS_SENSOR = {
    "exposure_ev": {"uniform": [-5, -2]},
    "noise": {"full_well": 4000, "read_noise": 3},
    "vignetting": 0.3,
    "jpeg_quality": {"randint": [60, 95]},
}


def test_pairs_are_aligned_and_differ_only_by_the_stated_degradation(tmp_path, tiny):
    spec_dict = square_spec(sensor=PAIRS_SENSOR, outputs={"pairs": True})
    generate(spec_dict, tmp_path / "pairs", progress=False)
    generate(square_spec(), tmp_path / "plain", progress=False)
    ds, plain = open_dataset(tmp_path / "pairs"), open_dataset(tmp_path / "plain")
    spec = Spec.model_validate(spec_dict)
    for i in range(len(ds)):
        item = ds.read(i, ("rgb", "clean", "depth"))
        ref = plain.read(i, ("rgb",))["rgb"]
        np.testing.assert_array_equal(item["clean"], ref)  # clean is today's render
        assert not np.array_equal(item["rgb"], item["clean"])
        # the degradation, re-applied to clean with the sample's recorded settings, is rgb
        params = sample_scene(spec, i).sensor
        row = ds.samples.slice(i, 1).to_pylist()[0]
        assert row["sensor.exposure_ev"] == params.exposure_ev
        K = np.array(row["K"]).reshape(3, 3)
        redone = apply_photometric(item["clean"], item["depth"], K, params)
        np.testing.assert_array_equal(redone, item["rgb"])


def test_pairs_read_as_noisy_clean_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    from synthcv.torch_data import SynthcvTorchDataset

    generate(
        square_spec(sensor=PAIRS_SENSOR, outputs={"pairs": True}), tmp_path / "p", progress=False
    )
    noisy, clean = SynthcvTorchDataset(tmp_path / "p", target="pairs")[0]
    assert noisy.shape == clean.shape == (3, 120, 160)
    assert noisy.dtype == clean.dtype == torch.float32 and float(clean.max()) <= 1.0
    generate(square_spec(), tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match=r"outputs: \{pairs: true\}"):
        SynthcvTorchDataset(tmp_path / "plain", target="pairs")[0]


def test_noise_is_deterministic_per_sample_and_differs_between_samples(tiny):
    spec = Spec.model_validate(square_spec(sensor={"exposure_ev": -4, "noise": {}}))
    a, b = render_sample(spec, 0, tiny), render_sample(spec, 0, tiny)
    np.testing.assert_array_equal(a.result.rgb, b.result.rgb)
    c = render_sample(spec, 1, tiny)
    noise_a = a.result.rgb.astype(int) - a.clean
    noise_c = c.result.rgb.astype(int) - c.clean
    assert np.corrcoef(noise_a.ravel(), noise_c.ravel())[0, 1] < 0.2  # independent noise


def test_switching_one_stage_on_leaves_the_others_draws():
    base = {"exposure_ev": {"uniform": [-4, 0]}, "noise": {}}
    a = sample_scene(Spec.model_validate(square_spec(sensor=base)), 1).sensor
    more = dict(base, vignetting={"uniform": [0, 1]}, jpeg_quality=80)
    b = sample_scene(Spec.model_validate(square_spec(sensor=more)), 1).sensor
    assert a.exposure_ev == b.exposure_ev and a.seed == b.seed


def test_sweep_over_exposure_keeps_the_scene(tmp_path):
    spec = square_spec(
        count=1,
        sensor={"exposure_ev": -2, "noise": {}},
        sweep={"field": "sensor.exposure_ev", "values": [0, -3, -6]},
        outputs={"pairs": True},
    )
    generate(spec, tmp_path / "s", progress=False)
    ds = open_dataset(tmp_path / "s")
    rows = ds.samples.to_pylist()
    assert [r["sensor.exposure_ev"] for r in rows] == [0, -3, -6]
    assert [r["sensor.iso"] for r in rows] == [100, 800, 6400]
    cleans = [ds.read(i, ("clean",))["clean"] for i in range(3)]
    assert all(np.array_equal(cleans[0], c) for c in cleans)
    noisy = [ds.read(i, ("rgb",))["rgb"].astype(float) for i in range(3)]
    err = [np.abs(n - cleans[0]).mean() for n in noisy]
    assert err[0] < err[1] < err[2]


# ----------------------------------------------------------------------------- spec errors


@pytest.mark.parametrize(
    ("sensor", "where"),
    [
        ({"noise": {"bit_depth": 4}}, "sensor.noise.bit_depth"),
        ({"iso": "automatic"}, "sensor.iso"),
        ({"distortion": {"k1": 3}}, "sensor.distortion.k1"),
        ({"jpeg_quality": 0}, "sensor.jpeg_quality"),
        ({"vignetting": {"uniform": [0, 2]}}, "sensor.vignetting"),
        ({"defocus": {"f_number": 2}}, "sensor.defocus.focus_distance"),
        ({"response": {"curve": "log"}}, "sensor.response.curve"),
        ({"exposure": -2}, "sensor.exposure"),
    ],
)
def test_bad_sensor_fields_are_named(tmp_path, sensor, where):
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(square_spec(sensor=copy.deepcopy(sensor))))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert any(line.startswith(where) for line in err.value.problems), err.value.problems


def test_generation_error_names_the_sample(tmp_path):
    spec = square_spec(sensor={"distortion": {"k1": {"uniform": [-1, -0.95]}}})
    with pytest.raises(GenerationError, match=r"sample 0 .*folds the image"):
        generate(spec, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "manifest.json").exists()


def test_report_offers_the_clean_view_of_pairs(tmp_path):
    from synthcv.tools.report import write_report

    generate(
        square_spec(sensor=PAIRS_SENSOR, outputs={"pairs": True}), tmp_path / "p", progress=False
    )
    html = write_report(tmp_path / "p", tmp_path / "r.html").read_text()
    assert 'id="view-clean"' in html and html.count('class="base base-clean"') == 2
    generate(square_spec(), tmp_path / "plain", progress=False)
    assert (
        'id="view-clean"' not in write_report(tmp_path / "plain", tmp_path / "q.html").read_text()
    )


def test_a_grayscale_dataset_has_a_monochrome_sensor(tiny):
    """channels: 1 runs the stages on luma, so the written pixels carry the model's full noise
    (noise drawn per colour channel and then averaged to luma would have 0.45 of it)."""
    sensor = {
        "exposure_ev": -2,
        "iso": 100,
        "noise": {"full_well": 1000, "read_noise": 5, "bit_depth": 12},
        "response": {"curve": "linear"},
    }
    spec = Spec.model_validate(
        square_spec(
            image={"width": 160, "height": 120, "channels": 1},
            objects={"count": 0, "classes": {"cube": {"asset": {"primitive": "cube"}}}},
            ground={"enabled": False},
            background={"v": 0.5},
            sensor=sensor,
        )
    )
    rs = render_sample(spec, 0, tiny)
    assert (rs.result.rgb == rs.result.rgb[..., :1]).all()  # written as luma
    out = rs.result.rgb[..., 0].astype(np.float64) / 255
    expect = expected_variance(out.mean(), Noise(1000, 5, 12), 1.0) + (1 / 255) ** 2 / 12
    assert out.var() == pytest.approx(expect, rel=0.05)


def test_sensor_factors_follow_the_spec(tmp_path):
    from synthcv.conformance import check_conformance

    sensor = {
        "exposure_ev": {"uniform": [-4, 0]},
        "noise": {"read_noise": {"uniform": [1, 4]}},
        "jpeg_quality": {"uniform": [50, 95]},
        "distortion": {"k1": {"normal": [-0.05, 0.03], "clip": [-0.12, 0]}},
    }
    generate(square_spec(count=60, sensor=sensor), tmp_path / "c", progress=False)
    report = check_conformance(tmp_path / "c")
    rows = {r.factor: r for r in report.rows}
    tested = {"sensor.exposure_ev", "sensor.noise.read_noise", "sensor.jpeg_quality"}
    assert all(rows[f].test for f in tested | {"sensor.distortion.k1"})
    assert not report.flagged
    assert "iso: auto" in rows["sensor.iso"].note and "distortion" not in rows
