"""synthcv monitor: image features, drift tests, false alarms, the report and the exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage, stats
from typer.testing import CliRunner

from real_digits import needs_mnist
from synthcv.monitor import detect_drift, image_features
from synthcv.monitor.drift import LARGE_N, WASSERSTEIN_THRESHOLD, mmd_permutation_test
from synthcv.realdata import load_mnist8000


def test_features_measure_what_they_say():
    flat = np.full((1, 32, 32), 100, np.uint8)
    f = image_features(flat)
    assert f["brightness"][0] == pytest.approx(100 / 255)
    assert f["contrast"][0] == pytest.approx(0, abs=1e-12)
    assert f["sharpness"][0] == pytest.approx(0, abs=1e-12)
    assert f["noise"][0] == pytest.approx(0, abs=1e-12)
    assert f["foreground_fraction"][0] == 0 and f["foreground_extent"][0] == 0
    square = np.zeros((1, 32, 32), np.uint8)
    square[0, 4:12, 20:28] = 255  # 8x8, centre (x, y) = (23.5, 7.5)
    f = image_features(square)
    assert f["foreground_extent"][0] == pytest.approx(8 / 32)
    assert f["foreground_x"][0] == pytest.approx(23.5 / 31)
    assert f["foreground_y"][0] == pytest.approx(7.5 / 31)
    assert f["foreground_fraction"][0] == pytest.approx(64 / 1024)
    assert f["bright_fraction"][0] == pytest.approx(64 / 1024)
    # Immerkaer's estimator recovers the standard deviation of added Gaussian noise
    rng = np.random.default_rng(0)
    noisy = np.clip(128 + rng.normal(0, 12.0, (4, 64, 64)), 0, 255).astype(np.uint8)
    assert np.median(image_features(noisy)["noise"]) == pytest.approx(12 / 255, rel=0.1)
    rgb = np.zeros((2, 8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    f = image_features(rgb)
    assert f["red"][0] == 1 and f["green"][0] == 0 and f["saturation"][0] == 1
    with pytest.raises(ValueError, match="1 or 3 channels"):
        image_features(np.zeros((2, 8, 8, 2), np.uint8))


@needs_mnist
def test_undrifted_batches_give_uniform_p_values_and_rare_alarms():
    images, labels = load_mnist8000("train")
    rng = np.random.default_rng(1)
    p_values, alarms = [], 0
    for _ in range(40):
        idx = rng.permutation(len(images))[:400]
        r = detect_drift(
            images[idx[:200]],
            images[idx[200:]],
            reference_labels=labels[idx[:200]],
            current_labels=labels[idx[200:]],
        )
        p_values.append(next(f.p_value for f in r.features if f.feature == "sharpness"))
        alarms += r.drifted
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert alarms <= 5  # alpha 0.05 over all tests: about 2 expected in 40, more is a defect


def _drifts(reference: np.ndarray, current: np.ndarray, **kw) -> set[str]:
    return {f.feature for f in detect_drift(reference, current, **kw).drifted_features}


@needs_mnist
def test_known_shifts_are_found_and_named():
    images, labels = load_mnist8000("train")
    ref, cur = images[:300], images[300:600]
    assert not _drifts(ref, cur)
    darker = (cur * 0.6).astype(np.uint8)
    assert {"brightness", "bright_fraction"} <= _drifts(ref, darker)
    blurred = np.stack([ndimage.gaussian_filter(x.astype(float), 1.2) for x in cur])
    assert "sharpness" in _drifts(ref, blurred.astype(np.uint8))
    thicker = np.stack([ndimage.grey_dilation(x, size=(2, 2)) for x in cur])
    assert "foreground_fraction" in _drifts(ref, thicker)
    ones = labels[300:2000] == 1  # a class-prior shift: many more 1s
    prior = np.concatenate([images[300:2000][ones][:150], cur[:150]])
    prior_y = np.concatenate([labels[300:2000][ones][:150], labels[300:450]])
    got = _drifts(ref, prior, reference_labels=labels[:300], current_labels=prior_y)
    assert "class_mix" in got


def test_large_batches_use_the_wasserstein_threshold():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (LARGE_N + 1, 8, 8)).astype(np.uint8)
    same = rng.integers(0, 256, (LARGE_N + 1, 8, 8)).astype(np.uint8)
    report = detect_drift(ref, same)
    bright = next(f for f in report.features if f.feature == "brightness")
    assert bright.test.startswith("Wasserstein") and bright.p_value is None
    assert bright.wasserstein_norm < WASSERSTEIN_THRESHOLD and not bright.drifted
    shifted = np.clip(same.astype(int) + 30, 0, 255).astype(np.uint8)
    assert "brightness" in _drifts(ref, shifted)


def test_mmd_permutation_test_separates_shifted_embeddings():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(80, 5)), rng.normal(size=(80, 5))
    _, p_same = mmd_permutation_test(a, b, permutations=99)
    value, p_shift = mmd_permutation_test(a, b + 0.8, permutations=99)
    assert p_same > 0.05 and p_shift <= 0.01 and value > 0


def test_bad_input_is_refused():
    x = np.zeros((5, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="alpha"):
        detect_drift(x, x, alpha=0)
    with pytest.raises(ValueError, match="at least 2 images"):
        detect_drift(x[:1], x)


@needs_mnist
def test_cli_exit_codes_and_report_files(tmp_path):
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    images, labels = load_mnist8000("train")
    np.savez(tmp_path / "ref.npz", images=images[:300], labels=labels[:300])
    np.savez(tmp_path / "same.npz", images=images[300:600], labels=labels[300:600])
    dark = (images[300:600] * 0.5).astype(np.uint8)
    np.savez(tmp_path / "dark.npz", images=dark, labels=labels[300:600])
    run = CliRunner(env={"SYNTHCV_TRACKING": "0", "COLUMNS": "300"}).invoke
    common = ["--embedding", "pixels", "--permutations", "49"]
    res = run(app, ["monitor", str(tmp_path / "ref.npz"), str(tmp_path / "same.npz"), *common])
    assert res.exit_code == 0, res.output
    out = tmp_path / "report"
    res = run(
        app,
        ["monitor", str(tmp_path / "ref.npz"), str(tmp_path / "dark.npz"), *common, "-o", str(out)],
    )
    assert res.exit_code == 3, res.output
    data = json.loads((out / "drift.json").read_text())
    assert data["drifted"] and "brightness" in data["drifted_features"]
    assert (
        "<html>" in (out / "drift.html").read_text()
        or "<!doctype html>" in (out / "drift.html").read_text()
    )
    res = run(app, ["monitor", str(tmp_path / "ref.npz"), str(tmp_path / "missing.npz")])
    assert res.exit_code == 2 and "missing.npz" in res.output
    res = run(app, ["monitor", str(tmp_path / "ref.npz"), str(tmp_path / "same.npz"),
                    "--embedding", "nothing.pt"])  # fmt: skip
    assert res.exit_code == 2 and "--embedding" in res.output
