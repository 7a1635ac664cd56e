"""Label-aware and classic augmentations, and the `synthcv augment` dataset writer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv

import synthcv
from conftest_dataset_fixture import write_fixture_dataset
from synthcv.augment.dataset import augment_dataset
from synthcv.augment.ops import DepthOfField, build_op, build_pipeline, select_mask


@pytest.fixture
def ds_dir(tmp_path: Path) -> Path:
    return write_fixture_dataset(tmp_path / "parent", count=3, shard_size=2)


def _sample(ds_dir: Path, i: int = 0) -> dict:
    ds = synthcv.open_dataset(ds_dir)
    s = ds[i]
    s["classes"] = ds.classes
    return s


def test_recolor_changes_only_the_selected_class(ds_dir: Path) -> None:
    s = _sample(ds_dir)
    op = build_op({"op": "recolor", "select": {"class": "cube"}, "hue": [0.6, 0.6]})
    out, real = op(s, np.random.default_rng(0))
    cube = select_mask(s, {"class": "cube"})
    assert cube.sum() > 0
    assert np.array_equal(out[~cube], s["rgb"][~cube])  # nothing else touched
    changed = out[cube]
    assert not np.array_equal(changed, s["rgb"][cube])
    hsv = rgb_to_hsv(changed / 255.0)
    assert np.allclose(hsv[:, 0], 0.6, atol=0.01) and real == {"hue": 0.6}
    # Shading (value) survives recolouring.
    v_before = rgb_to_hsv(s["rgb"][cube] / 255.0)[:, 2]
    assert np.allclose(hsv[:, 2], v_before, atol=0.01)


def test_selectors(ds_dir: Path) -> None:
    s = _sample(ds_dir)
    inst = s["instance"]
    assert np.array_equal(select_mask(s, {"instance": 2}), inst == 2)
    assert np.array_equal(select_mask(s, {"target": True}), inst == 2)  # largest: the sphere
    # A material/attribute selector: asset column of objects.parquet.
    assert np.array_equal(
        select_mask(s, {"where": {"asset": "primitive:cube"}}), (inst == 1) | (inst == 4)
    )
    # Default: every labelled object, never the distractor (instance 3).
    m = select_mask(s, None)
    assert m[inst == 3].sum() == 0 and m[inst == 2].all()
    with pytest.raises(ValueError, match="unknown keys"):
        select_mask(s, {"colour": 1})


def test_hue_shift_rotates_hue_of_selection(ds_dir: Path) -> None:
    s = _sample(ds_dir)
    out, real = build_op({"op": "hue_shift", "select": {"instance": 2}, "shift": 0.25})(
        s, np.random.default_rng(0)
    )
    m = s["instance"] == 2
    h0 = rgb_to_hsv(s["rgb"][m] / 255.0)[:, 0]
    h1 = rgb_to_hsv(out[m] / 255.0)[:, 0]
    assert np.allclose((h0 + 0.25) % 1.0, h1, atol=0.01) and real["shift"] == 0.25


def test_depth_of_field_keeps_focus_band_sharp_and_blurs_far_pixels() -> None:
    h, w = 32, 32
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)  # high-frequency texture everywhere
    depth = np.full((h, w), 4.0, np.float32)
    inst = np.zeros((h, w), np.uint16)
    depth[8:24, 8:24], inst[8:24, 8:24] = 1.0, 1
    objects = [
        {
            "instance_id": 1,
            "class_id": 1,
            "class_name": "a",
            "is_distractor": False,
            "visible_pixels": 256,
        }
    ]
    s = {"rgb": rgb, "depth": depth, "instance": inst, "objects": objects}
    out, real = DepthOfField(band=(0.1, 0.1), per_metre=(2.0, 2.0), max_sigma=2.0)(
        s, np.random.default_rng(0)
    )
    assert real["focus"] == 1.0
    # Interior of the in-focus object is untouched; far background is smoothed.
    assert np.array_equal(out[10:22, 10:22], rgb[10:22, 10:22])
    far = (slice(0, 4), slice(0, 32))
    assert out[far].astype(float).std() < 0.5 * rgb[far].astype(float).std()
    with pytest.raises(ValueError, match="needs the depth"):
        DepthOfField()({**s, "depth": None}, np.random.default_rng(0))


def test_classic_ops_are_seeded_and_grayscale_safe(ds_dir: Path) -> None:
    s = _sample(ds_dir)
    pipe = build_pipeline(
        [{"op": "noise", "sigma": [2, 6]}, {"op": "blur"}, {"op": "color_jitter"}]
    )
    a, ra = pipe(s, np.random.default_rng(5))
    b, rb = pipe(s, np.random.default_rng(5))
    c, _ = pipe(s, np.random.default_rng(6))
    assert np.array_equal(a, b) and ra == rb and not np.array_equal(a, c)
    assert set(ra) >= {"augment.noise.sigma", "augment.blur.sigma", "augment.color_jitter.hue"}
    g = {**s, "rgb": s["rgb"][..., 0]}
    out, _ = build_pipeline([{"op": "recolor"}, {"op": "color_jitter"}])(
        g, np.random.default_rng(0)
    )
    assert out.shape == g["rgb"].shape and out.dtype == np.uint8


def test_bad_op_config_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"augment\.op: got 'sharpen'"):
        build_op({"op": "sharpen"})
    with pytest.raises(ValueError, match="unknown parameters"):
        build_op({"op": "blur", "radius": 3})
    with pytest.raises(ValueError, match=r"augment\[0\]\.sigma"):
        build_pipeline([{"op": "noise", "sigma": [5, 1]}])
    # checked when built, not when the first sample is augmented
    with pytest.raises(ValueError, match=r"augment\[0\]: got 'blur', expected a mapping"):
        build_pipeline(["blur"])
    with pytest.raises(ValueError, match=r"augment\.sigma: expected a number .* got 'abc'"):
        build_op({"op": "blur", "sigma": "abc"})
    with pytest.raises(ValueError, match=r"augment\.select: unknown keys \['klass'\]"):
        build_op({"op": "recolor", "select": {"klass": "cube"}})
    with pytest.raises(ValueError, match=r"^sigma: expected"):  # where="": bare keys (--op)
        build_op({"op": "noise", "sigma": [5, 1]}, "")


def test_augment_dataset_writes_valid_child_with_parent_lineage(ds_dir: Path, tmp_path) -> None:
    ops = [{"op": "recolor", "select": {"class": "sphere"}}, {"op": "noise", "sigma": [1, 3]}]
    out = augment_dataset(ds_dir, tmp_path / "child", ops, seed=7, progress=False)
    child, parent = synthcv.open_dataset(out), synthcv.open_dataset(ds_dir)
    assert child.verify() == []  # every checksum recomputed and listed, nothing extra
    m = child.manifest
    assert m["parent"] == {
        "path": str(ds_dir.resolve()),
        "spec_hash": parent.manifest["spec_hash"],
        "manifest_sha256": hashlib.sha256((ds_dir / "manifest.json").read_bytes()).hexdigest(),
    }
    assert m["augment"] == {"ops": ops, "seed": 7}
    assert len(child) == len(parent) == 3
    for i in range(3):
        a, b = child[i], parent[i]
        assert a["objects"] == b["objects"]
        assert np.array_equal(a["instance"], b["instance"])
        assert np.array_equal(a["depth"], b["depth"])
        assert not np.array_equal(a["rgb"], b["rgb"])
    cols = child.samples.column_names
    assert "augment.recolor.hue" in cols and "augment.noise.sigma" in cols
    shard_meta = json.loads((out / "shards/shard-000000/shard.json").read_text())
    assert shard_meta["start"] == 0 and shard_meta["stop"] == 2
    assert not list((out / "shards").glob(".*"))  # no temporary shard left behind
    # Deterministic: the same input, ops and seed give byte-identical datasets.
    out2 = augment_dataset(ds_dir, tmp_path / "child2", ops, seed=7, progress=False)
    m2 = json.loads((out2 / "manifest.json").read_text())
    assert m2["files"] == m["files"]
    with pytest.raises(FileExistsError, match="already exists"):
        augment_dataset(ds_dir, out, ops, seed=7, progress=False)


def test_augment_cli(ds_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    from synthcv.cli import augment as augment_cli

    app = typer.Typer()
    augment_cli.register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command so typer keeps the sub-command name
        pass

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "augment",
            str(ds_dir),
            "--out",
            str(tmp_path / "c"),
            "--op",
            "blur:sigma=0.5..1.5",
            "--op",
            "noise",
            "--no-track",
        ],
    )
    assert res.exit_code == 0, res.output
    child = synthcv.open_dataset(tmp_path / "c")
    assert child.manifest["augment"]["ops"] == [
        {"op": "blur", "sigma": [0.5, 1.5]},
        {"op": "noise"},
    ]
    assert not (tmp_path / "mlflow.db").exists()
    res = CliRunner().invoke(
        app, ["augment", str(ds_dir), "--out", str(tmp_path / "d"), "--no-track"]
    )
    assert res.exit_code != 0 and "at least one op" in res.output
