"""The denoising harness: the noisy floor, a DnCNN that beats it, choices made on validation
only, determinism, save/load, the pairs loader and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from synthcv.format.writer import ShardWriter, write_manifest
from synthcv.tasks import denoise as dn

ENV = {"SYNTHCV_TRACKING": "0", "COLUMNS": "300"}
SMALL = {"depth": 4, "width": 16, "patch": 32, "batch_size": 8, "lr": 2e-3}


def make_pairs(
    n: int, size: int = 32, rgb: bool = False, seed: int = 0, read_sigma: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random images (clean) and the same with Poisson shot + Gaussian read noise."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size, 3) if rgb else (n, size, size)
    smooth = gaussian_filter(rng.random(shape), sigma=(0, 3, 3, 0) if rgb else (0, 3, 3))
    lo = smooth.min(axis=(1, 2), keepdims=True)
    smooth = (smooth - lo) / (np.ptp(smooth, axis=(1, 2), keepdims=True) + 1e-9)
    clean = np.round(smooth * 255).astype(np.uint8)
    peak = 60.0  # photons at white: shot noise
    noisy = rng.poisson(clean / 255 * peak) / peak * 255 + rng.normal(0, read_sigma, shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8), clean


def write_pairs_dataset(root: Path, noisy: np.ndarray, clean: np.ndarray | None) -> Path:
    """A minimal dataset in the on-disk format: rgb (and clean when given) per sample."""
    rows = []
    with ShardWriter(root, 0) as w:
        for i in range(len(noisy)):
            row = {"sample_index": i, "rgb": w.write(f"{i:06d}.rgb.png", "rgb", noisy[i])}
            if clean is not None:
                row["clean"] = w.write(f"{i:06d}.clean.png", "clean", clean[i])
            rows.append(row)
        w.finish(rows, [], {"shard": 0})
    write_manifest(root, {"classes": [], "count": len(noisy)}, 1)
    return root


@pytest.fixture(scope="module")
def gray():
    return make_pairs(40, seed=0), make_pairs(8, seed=1), make_pairs(8, seed=2)


@pytest.fixture(scope="module")
def trained(gray):
    (n, c), val, _ = gray
    return dn.train_denoiser(n, c, steps=120, seed=3, val=val, **SMALL)


def test_the_noisy_row_is_the_psnr_of_the_input(gray):
    _, (nv, cv), _ = gray
    rows = dn.evaluate({"identity": lambda x: x.copy()}, nv, cv)
    assert rows[0]["method"] == dn.NOISY_ROW
    assert rows[0]["psnr"] == pytest.approx(dn.psnr(cv, nv))
    assert rows[0]["psnr"] == pytest.approx(rows[1]["psnr"])
    assert rows[0]["ssim"] == pytest.approx(rows[1]["ssim"])
    mse = ((nv.astype(float) - cv) ** 2).mean(axis=(1, 2))
    assert rows[0]["psnr"] == pytest.approx(np.mean(10 * np.log10(255**2 / mse)))
    assert dn.psnr(cv, cv) == dn.PSNR_CAP and dn.ssim(cv, cv) == pytest.approx(1.0)


def test_the_dncnn_beats_the_noisy_input_and_keeps_its_best_checkpoint(gray, trained):
    _, (nv, cv), (nt, ct) = gray
    model, history = trained
    assert history[0]["step"] == 0 and history[-1]["step"] == 120
    # the last conv starts at zero: step 0 is the identity, the noisy floor
    assert history[0]["val_psnr"] == pytest.approx(dn.psnr(cv, nv))
    assert dn.psnr(cv, dn.denoise(model, nv)) == pytest.approx(max(h["val_psnr"] for h in history))
    floor = dn.psnr(ct, nt)
    assert dn.psnr(ct, dn.denoise(model, nt)) > floor + 6.0  # on pairs it never saw (≈ +10 dB here)
    assert dn.best_step(history) > 0


def test_rgb_images_and_classical_baselines_work(gray):
    n, c = make_pairs(6, size=24, rgb=True, seed=5)
    model, _ = dn.train_denoiser(n, c, steps=3, seed=0, val=(n[:2], c[:2]), **SMALL)
    out = dn.denoise(model, n)
    assert out.shape == n.shape and out.dtype == np.uint8
    rows = dn.evaluate(dn.classical_methods(0.1), n, c)
    floor = rows[0]["psnr"]
    assert all(r["psnr"] > floor for r in rows[1:]), rows
    assert [r["method"] for r in rows][:3] == [
        dn.NOISY_ROW,
        "non-local means",
        "total variation (weight 0.1)",
    ]
    _, (nv, _cv), _ = gray
    assert dn.nl_means(nv).shape == nv.shape


def test_same_seed_same_weights_and_outputs(gray):
    (n, c), val, _ = gray
    a, ha = dn.train_denoiser(n, c, steps=6, seed=7, val=val, eval_every=3, **SMALL)
    b, hb = dn.train_denoiser(n, c, steps=6, seed=7, val=val, eval_every=3, **SMALL)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    assert np.array_equal(dn.denoise(a, val[0]), dn.denoise(b, val[0]))
    assert [h["val_psnr"] for h in ha] == [h["val_psnr"] for h in hb]


def test_save_and_load_give_identical_outputs(tmp_path, gray, trained):
    model, _ = trained
    _, (nv, _cv), _ = gray
    dn.save_denoiser(model, tmp_path / "run", {"note": "x"})
    loaded = dn.load_denoiser(tmp_path / "run")
    assert loaded.config == model.config
    assert np.array_equal(dn.denoise(loaded, nv), dn.denoise(model, nv))
    cfg = json.loads((tmp_path / "run" / dn.CONFIG_FILE).read_text())
    assert cfg["kind"] == dn.CHECKPOINT_KIND and cfg["note"] == "x"
    (tmp_path / "run" / dn.CONFIG_FILE).write_text('{"kind": "other"}')
    with pytest.raises(ValueError, match="not a denoiser config"):
        dn.load_denoiser(tmp_path / "run")


def test_split_is_fixed_disjoint_and_covers_everything():
    tr, va = dn.split_pairs(50, 0.1, seed=0)
    assert len(va) == 5 and not set(tr) & set(va) and sorted([*tr, *va]) == list(range(50))
    tr2, va2 = dn.split_pairs(50, 0.1, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(dn.split_pairs(2, 0.01, 0)[1]) == 1
    with pytest.raises(ValueError, match="at least 2"):
        dn.split_pairs(1, 0.1, 0)


def test_load_pairs_reads_a_pairs_dataset_and_names_one_without_clean(tmp_path):
    n, c = make_pairs(3, size=16, rgb=True)
    got_n, got_c = dn.load_pairs(write_pairs_dataset(tmp_path / "pairs", n, c))
    assert np.array_equal(got_n, n) and np.array_equal(got_c, c)
    assert len(dn.load_pairs(tmp_path / "pairs", limit=2)[0]) == 2
    plain = write_pairs_dataset(tmp_path / "plain", n, None)
    with pytest.raises(ValueError, match=r"plain.*no 'clean'.*outputs: \{pairs: true\}"):
        dn.load_pairs(plain)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        dn.load_pairs(tmp_path / "nowhere")


def _fake_run(tmp_path, monkeypatch, test_seed: int) -> dict:
    sets = {"train": make_pairs(20, seed=0), "test": make_pairs(6, seed=test_seed)}
    monkeypatch.setattr(dn, "load_pairs", lambda d, limit=None: sets[str(d)])
    return dn.train_and_evaluate("train", tmp_path / f"run{test_seed}", test="test", steps=4)


def test_choices_are_made_on_validation_whatever_the_test_set(tmp_path, monkeypatch):
    a = _fake_run(tmp_path, monkeypatch, test_seed=10)
    b = _fake_run(tmp_path, monkeypatch, test_seed=11)
    assert a["choices"] == b["choices"] and a["val"] == b["val"]
    assert a["test"] != b["test"]
    assert a["choices"]["tv_weight"] == dn.choose_tv_weight(*_val_of(make_pairs(20, seed=0)))[0]


def _val_of(pairs):
    _, va = dn.split_pairs(len(pairs[0]), 0.1, 0)
    return pairs[0][va], pairs[1][va]


def _cli():
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    return app


def test_cli_trains_writes_the_run_and_applies_it(tmp_path):
    n, c = make_pairs(12, size=24, seed=0)
    data = write_pairs_dataset(tmp_path / "pairs", n, c)
    test = write_pairs_dataset(tmp_path / "test", *make_pairs(4, size=24, seed=1))
    runner, app = CliRunner(), _cli()
    args = ["denoise", "train", str(data), "--out", str(tmp_path / "run"), "--steps", "4"]
    res = runner.invoke(app, [*args, "--test", str(test), "--depth", "3"], env=ENV)
    assert res.exit_code == 0, res.output
    assert "| noisy input |" in res.output and "DnCNN (learned)" in res.output
    for name in ("model.pt", "config.json", "results.json", "results.md"):
        assert (tmp_path / "run" / name).is_file(), name
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["n_val"] == 1 and results["n_test"] == 4 and len(results["test"]) >= 4
    assert "test PSNR" in (tmp_path / "run" / "results.md").read_text()

    res = runner.invoke(
        app,
        ["denoise", "apply", str(tmp_path / "run"), str(test), "--out", str(tmp_path / "den")],
        env=ENV,
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "den").iterdir()) == [
        f"{i:06d}.png" for i in range(4)
    ]


def test_cli_input_errors_exit_2_naming_the_dataset(tmp_path):
    n, _ = make_pairs(3, size=16)
    plain = write_pairs_dataset(tmp_path / "plain", n, None)
    runner, app = CliRunner(), _cli()
    res = runner.invoke(
        app, ["denoise", "train", str(plain), "--out", str(tmp_path / "run")], env=ENV
    )
    assert res.exit_code == 2 and "plain" in res.output and "pairs: true" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(
        app, ["denoise", "apply", str(tmp_path / "norun"), str(plain), "-o", "x"], env=ENV
    )
    assert res.exit_code == 2 and "norun" in res.output
