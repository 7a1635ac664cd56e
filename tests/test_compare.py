"""``synthcv compare``: metrics near 1 for two halves of one set; a shifted copy shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthcv.tasks.compare import (  # noqa: E402
    compare_sets,
    frechet_distance,
    load_compare_source,
    manifold_metrics,
    pixel_embedding,
)
from synthcv.tasks.data import ArraySet  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def real() -> ArraySet:
    return load_compare_source("mnist:train-part", n=1200, seed=0)


def halves(data: ArraySet) -> tuple[ArraySet, ArraySet]:
    order = np.random.default_rng(1).permutation(len(data))
    return data.take(order[: len(data) // 2], "a"), data.take(order[len(data) // 2 :], "b")


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2 + 1  # mean shift 1 per axis, sigma 2
    # |mu|^2 = 3; Tr(I + 4I - 2 * 2I) = 3  ->  6
    assert frechet_distance(a, b) == pytest.approx(6.0, abs=0.15)
    assert abs(frechet_distance(a, a)) < 1e-9


def test_manifold_metrics_on_point_clouds():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 4)), rng.normal(size=(600, 4))
    same = manifold_metrics(x, y)
    assert same["precision"] > 0.9 and same["recall"] > 0.9 and same["coverage"] > 0.8
    far = manifold_metrics(x, y + 10)
    assert far["precision"] == far["recall"] == far["coverage"] == 0.0
    # Synthetic that collapsed onto a corner of real: realistic, but covers little.
    corner = manifold_metrics(x, rng.normal(size=(600, 4)) * 0.2 + 1)
    assert corner["precision"] > 0.8 and corner["recall"] < 0.3


def test_two_halves_of_one_set_look_alike_and_a_shifted_copy_does_not(real):
    a, b = halves(real)
    emb = pixel_embedding()
    same = compare_sets(a, b, emb)
    assert same.overall["precision"] > 0.85 and same.overall["recall"] > 0.85
    assert same.overall["frechet"] < 1.5 * same.overall["frechet_real_halves"]
    shifted = ArraySet(np.roll(b.images, 5, axis=2), b.labels, "b shifted")
    moved = compare_sets(a, shifted, emb)
    assert moved.overall["precision"] < 0.5 and moved.overall["recall"] < 0.5
    assert moved.overall["frechet"] > 5 * same.overall["frechet"]
    assert {r["class"] for r in moved.per_class} == set(range(10))


def test_realism_by_factor_points_at_the_factor_that_made_bad_images(real):
    a, b = halves(real)
    broken = np.zeros(len(a), np.int64)
    broken[::3] = 1
    images = a.images.copy()
    images[broken == 1] = 255 - images[broken == 1]  # a third rendered "inverted"
    synth = ArraySet(images, a.labels, "synth", factors={"inverted": broken})
    report = compare_sets(synth, b, pixel_embedding())
    worst = report.factor_slices[0]
    assert (worst["factor"], worst["slice"]) == ("inverted", "1")
    assert worst["acc"] < 0.2 and report.factor_slices[-1]["acc"] > 0.8
    # The farthest synthetic samples are the inverted ones.
    assert all(broken[r["index"]] == 1 for r in report.farthest_synth[:10])


def _npz(path, data: ArraySet) -> str:
    np.savez(path, images=data.images, labels=data.labels)
    return str(path)


def test_compare_cli_writes_its_report_and_names_bad_input(real, tmp_path):
    a, b = halves(real)
    sa, sb = _npz(tmp_path / "a.npz", a), _npz(tmp_path / "b.npz", b)
    run = [sys.executable, "-m", "synthcv", "compare"]
    r = subprocess.run(
        [*run, sa, sb, "--embedding", "pixels", "--n", "300", "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "precision (realism)" in r.stdout
    report = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert report["n_synth"] == report["n_real"] == 300
    assert 0 <= report["overall"]["coverage"] <= 1
    for name in ("compare.md", "farthest_real.png", "farthest_synth.png"):
        assert (tmp_path / "c" / name).is_file()
    bad = subprocess.run(
        [*run, str(tmp_path / "nowhere"), sb, "--embedding", "pixels"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "nowhere" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(
        [*run, sa, sb, "--embedding", "pixels", "--factor", "light"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "light" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(
        [*run, sa, "mnist:valid", "--embedding", "pixels"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "mnist:valid" in bad.stderr


def test_a_classifier_state_dict_is_a_feature_space(tmp_path, real):
    from synthcv.tasks.compare import embedding_from_file
    from synthcv.tasks.model import SmallCNN

    torch.save(SmallCNN(10, 1, width=8).state_dict(), tmp_path / "cnn.pt")
    emb = embedding_from_file(tmp_path / "cnn.pt")
    feats = emb(real.images[:5])
    assert feats.shape == (5, 32) and np.isfinite(feats).all()


def test_a_synthcv_dataset_is_compared_with_its_factors_and_conformance(tmp_path):
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec

    repo = Path(__file__).resolve().parents[1]
    spec = load_spec(repo / "examples" / "digits_hand.yaml").with_count(40)
    generate(spec, tmp_path / "digits", progress=False)
    synth = load_compare_source(str(tmp_path / "digits"))
    assert len(synth) == 40 and "glyph.font" in synth.factors
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "synthcv",
            "compare",
            str(tmp_path / "digits"),
            "mnist:val",
            "--embedding",
            "pixels",
            "--n",
            "40",
            "--factor",
            "glyph.font",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "| glyph.font |" in r.stdout  # realism sliced by the font
    assert "Factor conformance" in r.stdout and "0 flagged" in r.stdout


def test_the_reference_network_starts_from_its_seed_whatever_ran_before():
    """The default feature space is "seed 0" on every machine: its initial weights come from
    the seed, not from torch's global generator (which imports and earlier models advance)."""
    import torch

    from synthcv.tasks.compare import reference_model

    first = reference_model(0).state_dict()
    torch.randn(1000)  # whatever else drew random numbers before
    again, other = reference_model(0).state_dict(), reference_model(1).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["features.0.0.weight"], other["features.0.0.weight"])
    state = torch.random.get_rng_state()
    reference_model(0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream untouched
