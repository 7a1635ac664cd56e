"""The training harness: mixture sampler, subsets, domain framing, sources, slices, stats."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest

from synthcv.tasks.data import balanced_subset, load_source, load_synthcv_dataset
from synthcv.tasks.domain import MatchDomain
from synthcv.tasks.sampling import MixtureBatchSampler
from synthcv.tasks.slices import MISSING, bin_labels, slice_metrics
from synthcv.tasks.stats import mean_ci, paired_mean_ci, wilson


# --- mixture sampler -------------------------------------------------------------------------
def test_mixture_delivers_exact_ratio_every_batch() -> None:
    s = MixtureBatchSampler([100, 10_000], [0.2, 0.8], batch_size=10, steps=50, seed=1)
    batches = list(s)
    assert len(batches) == 50
    for b in batches:
        c = Counter(src for src, _ in b)
        assert (c[0], c[1]) == (2, 8)
        assert len(b) == 10


def test_mixture_fractional_ratio_is_met_over_time() -> None:
    s = MixtureBatchSampler([30, 50, 70], [0.3, 0.5, 0.2], batch_size=8, steps=101, seed=0)
    totals = np.zeros(3)
    for b in s:
        assert len(b) == 8
        for src, _ in b:
            totals[src] += 1
    expected = np.array([0.3, 0.5, 0.2]) * 8 * 101
    assert np.all(np.abs(totals - expected) < 1.0 + 1e-9)


def test_mixture_draws_each_source_without_replacement_per_pass() -> None:
    s = MixtureBatchSampler([7, 1000], [0.5, 0.5], batch_size=2, steps=14, seed=3)
    small = [i for b in s for src, i in b if src == 0]
    assert len(small) == 14
    # Two full passes over the 7 items: each pass is a permutation.
    assert sorted(small[:7]) == list(range(7)) and sorted(small[7:]) == list(range(7))


def test_mixture_is_deterministic_and_validates() -> None:
    a = list(MixtureBatchSampler([20, 20], [1, 1], 4, 5, seed=9))
    b = list(MixtureBatchSampler([20, 20], [1, 1], 4, 5, seed=9))
    assert a == b
    with pytest.raises(ValueError, match="ratios"):
        MixtureBatchSampler([10], [0.5, 0.5], 4, 1)
    with pytest.raises(ValueError, match="≥ 0"):
        MixtureBatchSampler([10, 10], [-1, 2], 4, 1)


# --- subsets and framing -----------------------------------------------------------------------
def test_balanced_subset_is_balanced_seeded_and_sorted() -> None:
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    idx = balanced_subset(labels, 100, seed=0)
    assert len(idx) == 100 and len(set(idx)) == 100 and np.all(np.diff(idx) > 0)
    assert set(Counter(labels[idx]).values()) == {10}
    assert np.array_equal(idx, balanced_subset(labels, 100, seed=0))
    assert not np.array_equal(idx, balanced_subset(labels, 100, seed=1))
    # A class too small to give its share: the others make up the difference.
    lab2 = np.array([0] * 3 + [1] * 50)
    assert Counter(lab2[balanced_subset(lab2, 20, 0)]) == {0: 3, 1: 17}


def test_match_domain_fits_box_keeps_aspect_and_centres_mass() -> None:
    img = np.zeros((60, 50, 3), np.uint8)
    mask = np.zeros((60, 50), bool)
    mask[5:45, 30:50] = True  # 40 tall, 20 wide, touching the right edge
    out = MatchDomain()(img, mask)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    ys, xs = np.nonzero(out > 0)
    assert ys.max() - ys.min() + 1 == 20 and xs.max() - xs.min() + 1 == 10
    w = out.astype(float)
    cy = (w.sum(1) * np.arange(28)).sum() / w.sum()
    cx = (w.sum(0) * np.arange(28)).sum() / w.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out.max() == 255
    assert not MatchDomain()(img, np.zeros((60, 50), bool)).any()
    with pytest.raises(ValueError, match="mask shape"):
        MatchDomain()(img, mask[:10])


def test_match_domain_intensity_keeps_shading_inside_mask() -> None:
    img = np.zeros((20, 20), np.uint8)
    img[:, :10] = 100
    img[:, 10:] = 200
    mask = np.zeros((20, 20), bool)
    mask[0:20, 5:15] = True
    out = MatchDomain(fill="intensity")(img, mask)
    vals = out[out > 0]
    assert vals.max() == 255 and vals.min() < 100  # darker half kept darker, not flattened


# --- sources ------------------------------------------------------------------------------------
def test_dataset_source_labels_factors_and_lineage(tmp_path) -> None:
    from conftest_dataset_fixture import write_fixture_dataset

    root = write_fixture_dataset(tmp_path / "ds", count=3, shard_size=2)
    data = load_synthcv_dataset(root, progress=False)
    # The largest visible labelled object is the sphere (class id 2 → label 1).
    assert data.labels.tolist() == [1, 1, 1]
    assert data.images.shape == (3, 28, 28)
    assert data.factors["camera.elevation"].tolist() == [30.0, 40.0, 50.0]
    assert data.factors["ground.texture"].tolist() == ["wood", "checker", "wood"]
    assert data.factors["asset"].tolist() == ["primitive:sphere"] * 3
    assert data.digest == hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()
    # The sphere rectangle is 12 rows × 16 cols: framed 15 × 20.
    ys, xs = np.nonzero(data.images[0])
    assert (ys.ptp() + 1, xs.ptp() + 1) == (15, 20)


def test_dataset_source_with_augment_copies_records_realized_params(tmp_path) -> None:
    from conftest_dataset_fixture import write_fixture_dataset

    root = write_fixture_dataset(tmp_path / "ds", count=2, shard_size=2)
    ops = [{"op": "recolor", "select": {"target": True}, "hue": [0.0, 1.0]}]
    spec = {"kind": "dataset", "path": str(root), "fill": "intensity", "augment": ops, "copies": 3}
    data = load_source(spec, name="aug")
    assert len(data) == 6 and data.name == "aug"
    hues = data.factors["augment.recolor.hue"]
    assert len(set(np.round(hues, 6))) == 6  # independent draws per copy


def test_samples_npz_source_and_n_subset(tmp_path) -> None:
    p = tmp_path / "s.npz"
    rng = np.random.default_rng(0)
    np.savez(
        p,
        images=rng.integers(0, 255, (40, 28, 28), dtype=np.uint8),
        labels=np.repeat(np.arange(4), 10),
    )
    d = load_source({"kind": "samples", "path": str(p), "n": 8}, seed=2)
    assert len(d) == 8 and set(Counter(d.labels.tolist()).values()) == {2}
    d2 = load_source({"kind": "samples", "path": str(p), "classes": [0, 3]})
    assert sorted(set(d2.labels.tolist())) == [0, 3] and len(d2) == 20
    with pytest.raises(ValueError, match="n=100 but only 40"):
        load_source({"kind": "samples", "path": str(p), "n": 100})
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="no 'labels' array"):
        load_source({"kind": "samples", "path": str(tmp_path / "bad.npz")})


# --- slices and stats -----------------------------------------------------------------------
def test_slices_partition_the_data_and_counts_add_up() -> None:
    rng = np.random.default_rng(0)
    n = 500
    correct = rng.random(n) < 0.8
    elev = rng.uniform(10, 80, n)
    elev[:7] = np.nan
    font = rng.choice(["DejaVuSans", "STIXGeneral", "DejaVuSerif"], n)
    factors = {"camera.elevation": elev, "glyph.font": font}
    rows = slice_metrics(correct, factors, bins=5)
    for f in factors:
        fr = [r for r in rows if r["factor"] == f]
        assert sum(r["n"] for r in fr) == n
        assert sum(r["correct"] for r in fr) == int(correct.sum())
        labels, names = bin_labels(factors[f], 5)
        assert set(labels.tolist()) == set(names)  # each sample in exactly one named slice
    elev_rows = [r for r in rows if r["factor"] == "camera.elevation"]
    assert any(r["slice"] == MISSING and r["n"] == 7 for r in elev_rows)
    assert len(elev_rows) == 6
    accs = [r["acc"] for r in rows]
    assert accs == sorted(accs)  # worst first
    for r in rows:
        assert r["lo"] <= r["acc"] <= r["hi"]


def test_slices_find_the_planted_weak_slice_and_bin_edges_cover_max() -> None:
    elev = np.linspace(0, 90, 100)
    correct = elev < 67.5  # the model fails in the top quarter of elevations
    rows = slice_metrics(correct, {"camera.elevation": elev}, bins=4, binning="uniform")
    assert rows[0]["slice"].endswith("]") and rows[0]["acc"] == 0.0  # top bin, closed at 90
    with pytest.raises(KeyError, match="unknown factor"):
        slice_metrics(correct, {"a": elev}, ["b"])


def test_wilson_and_mean_ci_known_values() -> None:
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    s = mean_ci([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["half"] == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert math.isnan(mean_ci([0.5])["half"])


def test_paired_interval_tells_a_few_items_from_noise() -> None:
    # 5 of 500 digits gained, none lost: a gain of 1 point, known to about +-0.9 (normal approx)
    gained = np.zeros(500)
    gained[:5] = 1
    s = paired_mean_ci(gained)
    assert s["mean"] == pytest.approx(0.01) and s["n"] == 500
    assert s["lo"] == pytest.approx(0.01 - 0.0087, abs=0.003) and s["lo"] >= 0
    assert s["hi"] == pytest.approx(0.01 + 0.0087, abs=0.003)
    # 5 gained and 5 lost: no change, and the interval says it could be +-1 point
    mixed = gained.copy()
    mixed[5:10] = -1
    m = paired_mean_ci(mixed)
    assert m["lo"] < 0 < m["hi"] and m["hi"] - m["lo"] > 0.01
    assert paired_mean_ci(mixed) == m  # seeded
    assert paired_mean_ci(np.zeros(50)) == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 50}


# --- training warps ------------------------------------------------------------------------
def test_jitter_identity_determinism_and_elastic_size() -> None:
    import torch

    from synthcv.tasks.warps import Jitter

    x = torch.rand(4, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(Jitter(shift=0, rotate=0, scale=0)(x, g), x, atol=1e-5)
    a = Jitter(shear=15, elastic=0.8)(x, torch.Generator().manual_seed(3))
    b = Jitter(shear=15, elastic=0.8)(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    field = Jitter(elastic=2.0)._elastic_field(8, 28, 28, torch.Generator().manual_seed(0))
    px = field[..., 0] * 28 / 2  # grid units → pixels
    assert field.shape == (8, 28, 28, 2)
    assert float(px.std()) == pytest.approx(2.0, rel=0.05)


def test_thickness_jitter_grows_and_thins_strokes_within_one_pixel() -> None:
    """``thickness`` widens some digits' ink and narrows others', never past the 3x3 dilation
    or erosion, and at 0 it leaves the warp's draws (so earlier runs) exactly as they were."""
    import torch
    import torch.nn.functional as F

    from synthcv.tasks.warps import Jitter

    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 6:22, 12:15] = 1.0  # a vertical bar 3 px wide: 48 ink pixels
    still = {"shift": 0, "rotate": 0, "scale": 0}
    out = Jitter(**still, thickness=1.0)(x, torch.Generator().manual_seed(0))
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    assert bool((out >= eroded - 1e-5).all() and (out <= dilated + 1e-5).all())
    ink = out.sum((1, 2, 3))
    assert (ink > 48 + 10).sum() > 10 and (ink < 48 - 10).sum() > 10  # both ways, often
    again = Jitter(**still, thickness=1.0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    warp = {"shear": 15, "elastic": 0.8}
    a = Jitter(**warp)(x, torch.Generator().manual_seed(3))
    b = Jitter(**warp, thickness=0.0)(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# --- distillation (Learning without Forgetting) -------------------------------------------------


def test_distillation_pulls_the_student_towards_the_teacher() -> None:
    """With the teacher's term on, a student trained on labels that contradict the teacher
    keeps more of the teacher's answers than without it: what the loop's fine-tune relies on
    to forget less."""
    import torch

    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.model import SmallCNN
    from synthcv.tasks.train import FitConfig, fit, to_tensor

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (96, 12, 12)).astype(np.uint8)
    teacher_says = rng.integers(0, 3, 96)
    torch.manual_seed(1)
    teacher = SmallCNN(3, 1, width=8)
    fit(
        teacher,
        [ArraySet(images, teacher_says)],
        None,
        FitConfig(epochs=30, batch_size=32, lr=3e-3, jitter=None),
        seed=0,
    )
    with torch.no_grad():  # a confident teacher that learnt its answers by heart
        assert (teacher.eval()(to_tensor(images)).argmax(1).numpy() == teacher_says).mean() > 0.9
    wrong = ArraySet(images, (teacher_says + 1) % 3)  # every label disagrees with the teacher

    def agreement(distill: float, sources: tuple[int, ...] | None = None) -> float:
        torch.manual_seed(2)
        student = SmallCNN(3, 1, width=8)
        student.load_state_dict(teacher.state_dict())
        cfg = FitConfig(
            epochs=3, batch_size=32, lr=3e-3, jitter=None, distill=distill, distill_sources=sources
        )
        fit(student, [wrong], None, cfg, seed=0, teacher=teacher)
        with torch.no_grad():
            return float(
                (student.eval()(to_tensor(images)).argmax(1).numpy() == teacher_says).mean()
            )

    assert agreement(5.0) > agreement(0.0) + 0.2
    # the teacher speaks only for the sources named: here none of the data, so no pull at all
    assert agreement(5.0, sources=(1,)) == agreement(0.0)
