"""Readers and tools (open_dataset, verify, inspect, preview, COCO export, torch adapter, CLI)
tested against a hand-written analytic dataset that follows docs/FORMAT.md."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import synthcv
from conftest_dataset_fixture import RECTS, H, W, render_sample, write_fixture_dataset
from synthcv.format import open_dataset
from synthcv.format.layout import RUN_FILE


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    return write_fixture_dataset(tmp_path_factory.mktemp("ds") / "fixture", count=3, shard_size=2)


@pytest.fixture
def fresh_dir(tmp_path) -> Path:
    """A private copy for tests that corrupt files."""
    return write_fixture_dataset(tmp_path / "fixture", count=3, shard_size=2)


def _cli():
    from synthcv.cli import app
    from synthcv.cli.data_commands import register

    if not any(c.name == "inspect" for c in app.registered_commands):
        register(app)
    return app


# ---------------------------------------------------------------- open_dataset


def test_open_dataset_round_trips_every_modality(fixture_dir):
    ds = synthcv.open_dataset(fixture_dir)
    assert len(ds) == 3
    assert ds.classes == [{"id": 1, "name": "cube"}, {"id": 2, "name": "sphere"}]
    assert ds.manifest["count"] == 3 and ds.root == fixture_dir
    assert ds.samples.num_rows == 3 and ds.objects.num_rows == 15
    for i in range(3):
        want = render_sample(i)
        s = ds[i]
        assert s["index"] == i
        assert s["rgb"].dtype == np.uint8 and s["rgb"].shape == (H, W, 3)
        np.testing.assert_array_equal(s["rgb"], want["rgb"])
        assert s["depth"].dtype == np.float32 and s["depth"].shape == (H, W)
        np.testing.assert_array_equal(s["depth"], want["depth"])
        assert s["instance"].dtype == np.uint16 and s["semantic"].dtype == np.uint16
        np.testing.assert_array_equal(s["instance"], want["instance"])
        np.testing.assert_array_equal(s["semantic"], want["semantic"])
        n = s["normals"]
        assert n.dtype == np.float32 and n.shape == (H, W, 3)
        # Decoding v/255*2-1 is exact to half a quantisation step; no-hit pixels decode to 0.
        hit = want["depth"] > 0
        np.testing.assert_allclose(np.linalg.norm(n[hit], axis=-1), 1.0, atol=2 / 255)
        assert np.all(n[~hit] == 0)
        obj_px = s["instance"] > 0
        np.testing.assert_allclose(
            n[obj_px], np.tile([0, 0, -1.0], (obj_px.sum(), 1)), atol=1.01 / 255
        )


def test_objects_and_factors_per_sample(fixture_dir):
    ds = open_dataset(fixture_dir)
    s = ds[1]
    assert [o["instance_id"] for o in s["objects"]] == [1, 2, 3, 4, 5]
    assert all(o["sample_index"] == 1 for o in s["objects"])
    by_id = {o["instance_id"]: o for o in s["objects"]}
    assert by_id[4]["status"] == "hidden" and by_id[4]["bbox"] is None
    assert by_id[5]["status"] == "outside"
    # Rect 2 (rows 8..19, cols 10..25) shifted right by 1 in sample 1.
    assert by_id[2]["bbox"] == [11.0, 8.0, 16.0, 12.0]
    f = s["factors"]
    assert (
        f["sample_index"] == 1
        and f["camera.elevation"] == 40.0
        and f["ground.texture"] == "checker"
    )
    assert len(f["K"]) == 9
    for col in ("rgb", "depth", "instance", "semantic", "normals", "shard"):
        assert col not in f


def test_negative_index_and_index_errors(fixture_dir):
    ds = open_dataset(fixture_dir)
    assert ds[-1]["index"] == 2 and ds[-3]["index"] == 0
    with pytest.raises(IndexError, match="out of range"):
        ds[3]
    with pytest.raises(IndexError):
        ds[-4]
    with pytest.raises(TypeError):
        ds["0"]


def test_objects_grouping_survives_unsorted_parquet(tmp_path):
    """Rows merged from shards out of order must still land on the right sample."""
    import pyarrow.parquet as pq

    root = write_fixture_dataset(tmp_path / "d", count=3, shard_size=2)
    t = pq.read_table(root / "objects.parquet")
    pq.write_table(t.take(np.arange(t.num_rows)[::-1].copy()), root / "objects.parquet")
    s = pq.read_table(root / "samples.parquet")
    pq.write_table(s.take([2, 0, 1]), root / "samples.parquet")
    ds = open_dataset(root)
    for i in range(3):
        item = ds[i]
        assert item["index"] == i
        assert [o["sample_index"] for o in item["objects"]] == [i] * 5
        assert [o["instance_id"] for o in item["objects"]] == [1, 2, 3, 4, 5]


def test_absent_modality_is_none(tmp_path):
    root = write_fixture_dataset(tmp_path / "nonormals", count=2, shard_size=2, normals=False)
    ds = open_dataset(root)
    assert ds[0]["normals"] is None and ds[0]["rgb"] is not None
    assert ds.verify() == []


def test_missing_dir_or_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such dataset directory"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        open_dataset(tmp_path / "empty")
    msg = str(e.value)
    assert "not a synthcv dataset (no manifest.json)" in msg and str(tmp_path / "empty") in msg
    assert "interrupted" not in msg  # an empty directory is no interrupted run
    # an interrupted run left its resume record (format.writer.claim_output) but no manifest
    (tmp_path / "half" / "shards").mkdir(parents=True)
    (tmp_path / "half" / RUN_FILE).write_text("{}")
    with pytest.raises(FileNotFoundError) as e:
        open_dataset(tmp_path / "half")
    msg = str(e.value)
    assert "unfinished dataset (no manifest.json yet)" in msg and str(tmp_path / "half") in msg
    assert "re-run synthcv generate" in msg
    # a folder inside a dataset, or a file, is named as what it is
    with pytest.raises(FileNotFoundError, match="is shards/ inside the unfinished dataset"):
        open_dataset(tmp_path / "half" / "shards")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file, not a dataset directory"):
        open_dataset(tmp_path / "f.txt")


def test_a_wrong_path_names_the_dataset_it_probably_meant(tmp_path):
    root = write_fixture_dataset(tmp_path / "digits_v2", count=2, shard_size=2)
    cases = {
        root / "shards" / "nope": f"it would lie inside dataset {root}; pass the dataset "
        f"directory {root}",
        root / "manifest.json": f"is a file inside dataset {root}; pass the dataset directory",
        tmp_path / "digit_v2": f"no such dataset directory: {tmp_path / 'digit_v2'} (did you "
        f"mean digits_v2?)",
        root / "shards": f"is shards/ inside dataset {root}",
    }
    for wrong, hint in cases.items():
        with pytest.raises(FileNotFoundError) as e:
            open_dataset(wrong)
        assert hint in str(e.value) and "interrupted" not in str(e.value), str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        open_dataset(tmp_path / "elsewhere")  # nothing like it: no guess
    assert str(e.value) == f"no such dataset directory: {tmp_path / 'elsewhere'}"


def test_wrong_format_version(fresh_dir):
    m = json.loads((fresh_dir / "manifest.json").read_text())
    m["format_version"] = 99
    (fresh_dir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="format_version 99"):
        open_dataset(fresh_dir)


# ---------------------------------------------------------------- verify


def test_verify_clean(fixture_dir):
    assert open_dataset(fixture_dir).verify() == []


def test_verify_catches_corrupt_missing_and_extra(fresh_dir):
    rel_bad = "shards/shard-000000/000001.depth.tiff"
    p = fresh_dir / rel_bad
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    rel_gone = "shards/shard-000001/000002.rgb.png"
    (fresh_dir / rel_gone).unlink()
    (fresh_dir / "shards/shard-000001/stray.tmp").write_bytes(b"x")
    problems = open_dataset(fresh_dir).verify()
    assert len(problems) == 3
    assert any(rel_bad in q and "checksum mismatch" in q for q in problems)
    assert any(rel_gone in q and "missing" in q for q in problems)
    assert any("stray.tmp" in q and "extra" in q for q in problems)


# ---------------------------------------------------------------- inspect


def test_inspect_summary_counts(fixture_dir):
    from synthcv.tools.inspect import summarize

    s = summarize(fixture_dir)
    assert s["samples"] == 3 and s["objects"] == 15
    assert s["num_shards"] == 2 and s["shards_on_disk"] == 2 and s["shard_size"] == 2
    assert s["image_sizes"] == {f"{W}x{H}": 3}
    assert s["modalities"] == {m: 3 for m in ("rgb", "depth", "instance", "semantic", "normals")}
    # Per sample: cube 1 visible + cube 4 hidden; sphere 2 visible + sphere 5 outside.
    assert s["classes"] == [
        {"id": 1, "name": "cube", "objects": 6, "visible": 3},
        {"id": 2, "name": "sphere", "objects": 6, "visible": 3},
    ]
    assert s["distractors"] == {"objects": 3, "visible": 3}
    assert s["status"] == {"hidden": 3, "outside": 3, "visible": 9}
    el = s["sample_factors"]["camera.elevation"]
    assert (el["min"], el["max"], el["mean"]) == (30.0, 50.0, 40.0)
    # elevations 30, 40, 50: one in the first of 16 bins, one in the middle, one in the last
    assert el["histogram"] == [1] + [0] * 7 + [1] + [0] * 6 + [1]
    assert s["sample_factors"]["ground.texture"]["counts"] == {"wood": 2, "checker": 1}
    assert "K" not in s["sample_factors"] and "seed" not in s["sample_factors"]
    # Cubes: instances 1, 4; spheres: 2, 5 and the distractor 3 (three samples).
    assert s["object_factors"]["asset"]["counts"] == {"primitive:sphere": 9, "primitive:cube": 6}
    assert s["object_factors"]["scale"]["max"] == 1.5
    assert s["checksums"] == {"files": s["checksums"]["files"], "ok": True, "problems": []}
    json.dumps(s)  # JSON-able
    assert summarize(fixture_dir, verify=False)["checksums"] is None


def test_inspect_render_mentions_classes(fixture_dir):
    from rich.console import Console

    from synthcv.tools.inspect import render, summarize

    console = Console(record=True, width=160)
    render(summarize(fixture_dir), console=console)
    text = console.export_text()
    assert "cube" in text and "sphere" in text and "camera.elevation" in text and "OK" in text
    [row] = [line for line in text.splitlines() if "camera.elevation" in line]
    assert "█       █      █" in row  # the histogram as a sparkline, gaps kept


def test_sparkline_heights_and_gaps():
    from synthcv.tools.inspect import sparkline

    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert sparkline([3, 0, 3]) == "█ █" and sparkline([]) == "" and sparkline([0, 0]) == ""


def test_cli_inspect_json_and_failures(fresh_dir):
    runner = CliRunner()
    app = _cli()
    r = runner.invoke(app, ["inspect", str(fresh_dir), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["samples"] == 3
    rel = "shards/shard-000000/000000.instance.png"
    (fresh_dir / rel).write_bytes(b"garbage")
    r = runner.invoke(app, ["inspect", str(fresh_dir)])
    assert r.exit_code == 1
    assert rel in r.stderr and "checksum" in r.stderr
    r = runner.invoke(app, ["inspect", str(fresh_dir), "--no-verify", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["checksums"] is None
    r = runner.invoke(app, ["inspect", str(fresh_dir / "missing")])
    assert r.exit_code == 2 and "no such dataset directory" in r.stderr


# ---------------------------------------------------------------- preview


def test_preview_size_and_determinism(fixture_dir, tmp_path):
    from synthcv.tools import preview

    out = preview.write_preview(fixture_dir, tmp_path / "grid.png", n=3, cols=2)
    im = Image.open(out)
    s = preview.panel_scale(W, H)
    assert s == 4  # 32 px wide upscaled to >= 128
    tw, th = 3 * W * s + 2 * preview.PAD, preview.HEADER + H * s
    assert im.size == (2 * tw + 3 * preview.PAD, 2 * th + 3 * preview.PAD)
    assert im.mode == "RGB"
    again = preview.write_preview(fixture_dir, tmp_path / "grid2.png", n=3, cols=2)
    assert out.read_bytes() == again.read_bytes()
    arr = np.asarray(im)
    # Tile 0 = sample 0. Its depth panel (third) is colormapped: nearest object (rect 2, 1.5 m)
    # gets the top of viridis (yellow), the no-hit rows stay black.
    x0, y0 = preview.PAD + 2 * (W * s + preview.PAD), preview.PAD + preview.HEADER
    r0, c0 = 8 * s + s // 2, 10 * s + s // 2
    assert tuple(arr[y0 + r0, x0 + c0]) == tuple(preview._viridis()[255])
    assert tuple(arr[y0, x0]) == (0, 0, 0)
    # The RGB panel draws the modal box of rect 2 in its palette colour at its top-left corner.
    xr = preview.PAD
    colour = tuple(preview.palette(np.array([2]))[0])
    assert tuple(arr[y0 + 8 * s + 2, xr + 10 * s]) == colour


def test_preview_sample_picking_and_cli(fixture_dir, tmp_path):
    from synthcv.tools.preview import pick_samples

    assert pick_samples(10, 4) == [0, 3, 6, 9]
    assert pick_samples(3, 16) == [0, 1, 2]
    r = CliRunner().invoke(
        _cli(),
        ["preview", str(fixture_dir), "--out", str(tmp_path / "g.png"), "--n", "2", "--cols", "1"],
    )
    assert r.exit_code == 0, r.output
    from synthcv.tools import preview

    im = Image.open(tmp_path / "g.png")
    sc, pad = preview.panel_scale(W, H), preview.PAD
    # One column, two rows.
    assert im.size == (3 * W * sc + 4 * pad, 2 * (preview.HEADER + H * sc) + 3 * pad)


# ---------------------------------------------------------------- COCO


def _bbox_of_mask(m: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(m)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def test_coco_export_round_trips_through_pycocotools(fixture_dir, tmp_path):
    from pycocotools.coco import COCO

    from synthcv.tools.coco import export_coco

    out = export_coco(fixture_dir, tmp_path / "coco.json")
    coco = COCO(str(out))
    assert sorted(coco.getCatIds()) == [1, 2]
    cat = coco.loadCats(1)[0]
    assert cat["name"] == "cube" and len(cat["keypoints"]) == 9 and cat["skeleton"] == []
    assert sorted(coco.getImgIds()) == [0, 1, 2]
    ds = open_dataset(fixture_dir)
    for i in range(3):
        img = coco.loadImgs(i)[0]
        assert (img["width"], img["height"]) == (W, H)
        assert (fixture_dir / img["file_name"]).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=i))
        # Only visible non-distractors: instances 1 and 2 (3 is a distractor, 4 hidden, 5 outside).
        assert sorted(a["instance_id"] for a in anns) == [1, 2]
        inst = ds[i]["instance"]
        for a in anns:
            mask = coco.annToMask(a)
            want = (inst == a["instance_id"]).astype(np.uint8)
            np.testing.assert_array_equal(mask, want)
            assert a["bbox"] == _bbox_of_mask(want)
            assert a["area"] == int(want.sum())
            assert a["iscrowd"] == 0
            assert len(a["keypoints"]) == 3 * len(cat["keypoints"])
            v = a["keypoints"][2::3]
            assert a["num_keypoints"] == sum(1 for x in v if x > 0)
            assert all(isinstance(x, int) for x in v)
        by_id = {a["instance_id"]: a for a in anns}
        # Instance 1 is partly covered by instance 2: visibility < 1 and amodal box is larger.
        assert 0 < by_id[1]["visibility"] < 1 and by_id[2]["visibility"] == 1.0
        assert by_id[1]["amodal_bbox"] == [3.0 + i, 4.0, 12.0, 10.0]
        assert by_id[1]["category_id"] == 1 and by_id[2]["category_id"] == 2


def test_coco_export_carries_sigmas_that_cocoeval_scores_nine_keypoints_with(fixture_dir, tmp_path):
    """pycocotools' defaults are COCO's 17 person sigmas: a 9-keypoint category fails with
    them, and scores with the ``sigmas`` the export writes (perfect predictions: AP 1)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from synthcv.oks import DEFAULT_SIGMA
    from synthcv.tools.coco import export_coco

    gt = COCO(str(export_coco(fixture_dir, tmp_path / "coco.json")))
    cat = gt.loadCats(1)[0]
    assert cat["sigmas"] == [DEFAULT_SIGMA] * 9
    dets = [{**a, "score": 1.0} for a in gt.loadAnns(gt.getAnnIds(catIds=[1]))]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        default = COCOeval(gt, dt, "keypoints")
        default.params.catIds = [1]
        with pytest.raises(ValueError, match="shape"):
            default.evaluate()
        e = COCOeval(gt, dt, "keypoints")
        e.params.catIds = [1]
        e.params.kpt_oks_sigmas = np.array(cat["sigmas"])
        e.evaluate()
        e.accumulate()
        e.summarize()
    assert e.stats[0] == pytest.approx(1.0)


def test_coco_export_default_path_and_cli(fresh_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(_cli(), ["export", str(fresh_dir), "--format", "coco"])
    assert r.exit_code == 0, r.output
    default = fresh_dir / "coco" / "annotations.json"
    data = json.loads(default.read_text())
    assert len(data["annotations"]) == 6
    assert list(default.parent.iterdir()) == [default]  # no temp file left behind
    # The export sits outside shards/, so the dataset still verifies clean.
    assert open_dataset(fresh_dir).verify() == []
    r = runner.invoke(_cli(), ["export", str(fresh_dir), "--format", "pascal"])
    assert r.exit_code == 2 and "pascal" in r.stderr and "coco" in r.stderr
    # this hand-made dataset's manifest has no usable spec: BOP cannot rebuild its models
    r = runner.invoke(_cli(), ["export", str(fresh_dir), "--format", "bop"])
    assert r.exit_code == 2 and "manifest.json cannot rebuild" in r.stderr, r.stderr
    assert not (fresh_dir / "bop").exists()


def test_webdataset_export_reads_back_losslessly_with_the_webdataset_library(fixture_dir, tmp_path):
    """Every sample once, in order, across shards; RGB and labels bit-exact (16-bit ids kept
    by decode_labels), depth float32 exact, objects and factors as in the parquet files."""
    wds = pytest.importorskip("webdataset")
    from synthcv.fileio import sha256_file
    from synthcv.tools.webdataset import decode_labels, export_webdataset

    ds = open_dataset(fixture_dir)
    out = export_webdataset(ds, tmp_path / "wds", shard_size=2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["samples"] for s in manifest["shards"]] == [2, 1]  # 3 samples, 2 per shard
    for shard in manifest["shards"]:
        assert sha256_file(out / shard["file"]) == shard["sha256"]
    assert manifest["classes"] == ds.classes and manifest["samples"] == 3
    urls = [str(out / s["file"]) for s in manifest["shards"]]
    seen = []
    for sample in wds.WebDataset(urls, shardshuffle=False).decode(decode_labels, "rgb8"):
        i = int(sample["__key__"])
        seen.append(i)
        item = ds[i]
        np.testing.assert_array_equal(sample["rgb.png"], item["rgb"])
        assert sample["instance.png"].dtype == np.uint16
        np.testing.assert_array_equal(sample["instance.png"], item["instance"])
        np.testing.assert_array_equal(sample["semantic.png"], item["semantic"])
        assert sample["depth.npy"].dtype == np.float32
        np.testing.assert_array_equal(sample["depth.npy"], item["depth"])
        assert sample["json"]["objects"] == json.loads(json.dumps(item["objects"]))
        assert sample["json"]["factors"]["camera.elevation"] == item["factors"]["camera.elevation"]
    assert seen == [0, 1, 2]
    raw = next(iter(wds.WebDataset(urls[:1], shardshuffle=False)))
    assert raw["normals.png"] == ds.path(0, "normals").read_bytes()  # copied, not re-encoded
    with pytest.raises(FileExistsError, match="not an empty directory"):
        export_webdataset(ds, out)  # never written over


def test_webdataset_export_cli(fresh_dir, tmp_path, monkeypatch):
    pytest.importorskip("webdataset")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # the hf export's cache
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    r = CliRunner().invoke(
        _cli(), ["export", str(fresh_dir), "--format", "webdataset", "--shard-size", "2"]
    )
    assert r.exit_code == 0, r.output
    out = fresh_dir / "webdataset"
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "shard-000000.tar",
        "shard-000001.tar",
    ]
    assert open_dataset(fresh_dir).verify() == []  # outside shards/: the dataset stays clean
    r = CliRunner().invoke(_cli(), ["export", str(fresh_dir), "--format", "webdataset"])
    assert r.exit_code == 2 and "not an empty directory" in r.stderr
    for fmt, first in (("yolo", "data.yaml"), ("hf", "README.md")):
        pytest.importorskip("datasets") if fmt == "hf" else None
        r = CliRunner().invoke(_cli(), ["export", str(fresh_dir), "--format", fmt])
        assert r.exit_code == 0 and (fresh_dir / fmt / first).is_file(), r.output


def test_hf_export_loads_offline_with_typed_features_and_exact_images(
    fixture_dir, tmp_path, monkeypatch
):
    """`datasets.load_dataset(OUT)` (offline, cache in tmp) gives every sample with the
    dataset's own images (16-bit ids, float32 depth intact), class labels and factors."""
    datasets = pytest.importorskip("datasets")
    from synthcv.tools.hf import export_hf

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = open_dataset(fixture_dir)
    out = export_hf(ds, tmp_path / "hf", shard_size=2)
    tag = ds.manifest["manifest_digest"][:12]
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        f"train-{tag}-00000-of-00002.parquet",
        f"train-{tag}-00001-of-00002.parquet",
    ]
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and f"data/train-{tag}-*.parquet" in card
    # `datasets` caches a local folder by its name and file pattern: another dataset exported
    # to another folder named hf must not load this one's cached rows
    other = write_fixture_dataset(tmp_path / "other", count=2, shard_size=2)
    export_hf(other, tmp_path / "b" / "hf")
    assert len(datasets.load_dataset(str(out), split="train")) == 3
    assert len(datasets.load_dataset(str(tmp_path / "b" / "hf"), split="train")) == 2
    loaded = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == 3
    assert loaded.features["objects"]["category"].feature.names == ["cube", "sphere"]
    assert type(loaded.features["image"]).__name__ == "Image"
    for row in loaded:
        item = ds[row["sample_index"]]
        np.testing.assert_array_equal(np.array(row["image"]), item["rgb"])
        ids = np.array(row["instance"])
        assert ids.dtype == np.uint16
        np.testing.assert_array_equal(ids, item["instance"])
        depth = np.array(row["depth"])
        assert depth.dtype == np.float32
        np.testing.assert_array_equal(depth, item["depth"])
        objs = [o for o in item["objects"] if not o["is_distractor"] and o["bbox"] is not None]
        assert row["objects"]["instance_id"] == [o["instance_id"] for o in objs]
        assert row["objects"]["category"] == [o["class_id"] - 1 for o in objs]
        assert row["objects"]["bbox"] == [pytest.approx(o["bbox"]) for o in objs]
        assert row["camera.elevation"] == item["factors"]["camera.elevation"]
        assert row["ground.texture"] == item["factors"]["ground.texture"]
        # the camera as matrices, so labels can be lifted back into the scene
        np.testing.assert_array_equal(np.array(row["K"]), np.reshape(item["factors"]["K"], (3, 3)))
        np.testing.assert_array_equal(
            np.array(row["world_to_camera"]), np.reshape(item["factors"]["world_to_camera"], (4, 4))
        )
    assert "distortion" not in loaded.features  # no lens in this spec


def _yolo_rows(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_yolo_export_detect_segment_pose_match_the_labels(fixture_dir, tmp_path):
    """Boxes, outlines and keypoints read back from the label files land on the objects'
    pixels; images are the dataset's own files; data.yaml names the classes 0-based."""
    import yaml
    from matplotlib.path import Path as Polygon

    from synthcv.tools.yolo import export_yolo

    ds = open_dataset(fixture_dir)
    det = export_yolo(ds, tmp_path / "det")
    seg = export_yolo(ds, tmp_path / "seg", task="segment")
    pose = export_yolo(ds, tmp_path / "pose", task="pose")
    data = yaml.safe_load((pose / "data.yaml").read_text())
    assert data["names"] == {0: "cube", 1: "sphere"} and data["kpt_shape"] == [9, 3]
    assert (data["train"], data["val"], data["path"]) == ("images", "images", str(pose))
    centres = np.stack(np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5), -1).reshape(-1, 2)
    for i in range(len(ds)):
        key = f"{i:08d}"
        assert (det / "images" / f"{key}.png").read_bytes() == ds.path(i, "rgb").read_bytes()
        objs = [o for o in ds.objects_of(i) if not o["is_distractor"] and o["status"] == "visible"]
        boxes = _yolo_rows(det / "labels" / f"{key}.txt")
        assert [int(r[0]) for r in boxes] == [int(o["class_id"]) - 1 for o in objs]
        for row, o in zip(boxes, objs, strict=True):
            x, y, w, h = o["bbox"]
            want = [(x + w / 2) / W, (y + h / 2) / H, w / W, h / H]
            assert row[1:] == pytest.approx(want, abs=1e-6)
        inst = ds[i]["instance"]
        for row, o in zip(_yolo_rows(seg / "labels" / f"{key}.txt"), objs, strict=True):
            poly = np.array(row[1:]).reshape(-1, 2) * [W, H]
            drawn = Polygon(poly).contains_points(centres).reshape(H, W)
            mask = inst == o["instance_id"]
            assert (drawn & mask).sum() / (drawn | mask).sum() >= 0.9  # the visible part
        for row, o in zip(_yolo_rows(pose / "labels" / f"{key}.txt"), objs, strict=True):
            kps = np.array(row[5:]).reshape(9, 3)
            want = np.array(o["keypoints"]).reshape(9, 3)
            labelled = want[:, 2] > 0
            assert kps[:, 2].tolist() == want[:, 2].tolist()
            assert kps[labelled, :2] * [W, H] == pytest.approx(want[labelled, :2], abs=1e-4)
    with pytest.raises(ValueError, match="yolo-task"):
        export_yolo(ds, tmp_path / "x", task="obb")


def test_yolo_pose_export_of_people_flips_left_and_right(tmp_path):
    import yaml

    from synthcv.people.keypoints import COCO_FLIP_PAIRS
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec
    from synthcv.tools.yolo import export_yolo

    spec = load_spec(Path(__file__).resolve().parents[1] / "examples" / "faces.yaml")
    root = tmp_path / "faces"
    generate(spec.with_count(1), root, progress=False, on_empty="allow")
    data = yaml.safe_load(
        (export_yolo(root, tmp_path / "y", task="pose") / "data.yaml").read_text()
    )
    flip = data["flip_idx"]
    assert data["kpt_shape"] == [17, 3] and sorted(flip) == list(range(17))
    assert all(flip[a] == b and flip[b] == a for a, b in COCO_FLIP_PAIRS)


# ---------------------------------------------------------------- torch


def test_torch_dataset_targets(fixture_dir):
    torch = pytest.importorskip("torch")
    from synthcv.torch_data import SynthcvTorchDataset

    tds = SynthcvTorchDataset(fixture_dir)
    img, label = tds[0]
    assert img.shape == (3, H, W) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    # Rect 2 (sphere, class id 2, 192 px) is larger than the visible part of rect 1 (cube); the
    # classification label is 0-based (synthcv.targets): class id 2 -> label 1.
    assert label == 1
    det = SynthcvTorchDataset(fixture_dir, target="detection")[1][1]
    assert det["labels"].tolist() == [1, 2]
    assert det["boxes"][1].tolist() == [11.0, 8.0, 27.0, 20.0]
    inst = open_dataset(fixture_dir)[1]["instance"]
    assert det["masks"].shape == (2, H, W)
    np.testing.assert_array_equal(det["masks"][0].numpy(), (inst == 1).astype(np.uint8))
    seg = SynthcvTorchDataset(fixture_dir, target="segmentation", transform=lambda x: x * 2)[2]
    assert seg[1].dtype == torch.int64 and seg[1].shape == (H, W)
    assert float(seg[0].max()) > 1.0  # the transform ran
    with pytest.raises(ValueError, match="target"):
        SynthcvTorchDataset(fixture_dir, target="depth")
    from torch.utils.data import DataLoader

    from synthcv.torch_data import collate_detection

    loader = DataLoader(
        SynthcvTorchDataset(fixture_dir, target="detection"),
        batch_size=2,
        collate_fn=collate_detection,
    )
    images, targets = next(iter(loader))
    assert len(images) == len(targets) == 2 and targets[0]["boxes"].shape == (2, 4)
    classes = [y for _, y in DataLoader(SynthcvTorchDataset(fixture_dir), batch_size=3)]
    assert classes[0].tolist() == [1, 1, 1]  # 0-based labels (synthcv.targets)


def test_torch_dataset_decodes_only_what_is_used_and_carries_torchvision_targets(
    fixture_dir, monkeypatch
):
    torch = pytest.importorskip("torch")
    import synthcv.format.reader as reader
    from synthcv.torch_data import SynthcvTorchDataset

    decoded: list[str] = []
    real = reader.read_modality
    monkeypatch.setattr(reader, "read_modality", lambda p, m: decoded.append(m) or real(p, m))
    SynthcvTorchDataset(fixture_dir)[0]
    assert decoded == ["rgb"]  # a classifier's read decodes no depth, masks or normals
    decoded.clear()
    SynthcvTorchDataset(fixture_dir, target="detection")[0]
    assert sorted(decoded) == ["instance", "rgb"]
    decoded.clear()
    x, _ = SynthcvTorchDataset(fixture_dir, modalities=["rgb", "depth"])[0]
    assert sorted(decoded) == ["depth", "rgb"] and set(x) == {"rgb", "depth"}
    depth = open_dataset(fixture_dir)[0]["depth"]
    assert x["depth"].shape == (1, H, W) and x["depth"].dtype == torch.float32
    np.testing.assert_array_equal(x["depth"][0].numpy(), depth)
    assert float(x["rgb"].max()) <= 1.0
    # detection targets: image_id, area (visible pixels), iscrowd, keypoints (N, K, 3)
    det = SynthcvTorchDataset(fixture_dir, target="detection")
    _, t = det[1]
    objs = [o for o in open_dataset(fixture_dir).objects_of(1) if int(o["instance_id"]) in
            t["instance_ids"].tolist()]  # fmt: skip
    assert int(t["image_id"]) == 1 and t["iscrowd"].tolist() == [0] * len(objs)
    assert t["area"].tolist() == [float(o["visible_pixels"]) for o in objs]
    k = len(open_dataset(fixture_dir).manifest["keypoints"]["cube"])
    assert t["keypoints"].shape == (len(objs), k, 3)
    assert t["keypoints"][0].flatten().tolist() == pytest.approx(objs[0]["keypoints"])
    assert det.classes == ["cube", "sphere"] and det.class_to_idx == {"cube": 0, "sphere": 1}

    def hflip(image, target):  # a joint transform sees the image and its boxes together
        flipped = target["boxes"].clone()
        flipped[:, [0, 2]] = W - target["boxes"][:, [2, 0]]
        return image.flip(-1), {**target, "boxes": flipped}

    img, flipped = SynthcvTorchDataset(fixture_dir, target="detection", transforms=hflip)[1]
    assert flipped["boxes"][1].tolist() == [W - 27.0, 8.0, W - 11.0, 20.0]
    assert torch.equal(img, SynthcvTorchDataset(fixture_dir)[1][0].flip(-1))
    with pytest.raises(ValueError, match="mutually exclusive"):
        SynthcvTorchDataset(fixture_dir, transforms=hflip, transform=lambda x: x)
    with pytest.raises(ValueError, match="unknown"):
        SynthcvTorchDataset(fixture_dir, modalities=["rgb", "albedo"])


def test_torch_data_import_error_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import synthcv.torch_data\nexcept ImportError as e:\n    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install synthcv[models]" in r.stdout, r.stdout + r.stderr


def test_import_synthcv_stays_light():
    code = (
        "import sys, synthcv, synthcv.format, synthcv.cli.data_commands\n"
        "print([m for m in ('torch', 'pycocotools', 'matplotlib', 'bpy') if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_fixture_matches_its_own_description():
    """Guard the analytic fixture itself: overlap, hidden and visible areas as documented."""
    s = render_sample(0)
    areas = {iid: int((s["instance"] == iid).sum()) for iid, *_ in RECTS}
    assert areas[2] == 12 * 16 and areas[4] == 0
    assert areas[1] == 10 * 12 - 6 * 5  # rows 8..13 x cols 10..14 covered by rect 2
    assert math.isclose(s["objects"][0]["visibility"], areas[1] / 120)


def test_dataset_without_objects_opens(tmp_path):
    """A column-less empty objects.parquet (nothing placed anywhere) is still a dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = write_fixture_dataset(tmp_path / "d", count=2, shard_size=2)
    pq.write_table(pa.table({}), root / "objects.parquet")
    ds = open_dataset(root)
    assert ds[0]["objects"] == [] and ds[1]["objects"] == []
    from synthcv.tools.coco import build_coco
    from synthcv.tools.inspect import summarize

    assert build_coco(ds)["annotations"] == []
    assert summarize(ds, verify=False)["status"] == {}


# ---------------------------------------------------------------- integration with generate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory) -> Path:
    """A few tiny tabletop samples from the real pipeline (2 shards, distractors on)."""
    spec = synthcv.load_spec(
        EXAMPLES / "tabletop.yaml",
        overrides={
            "image": {"width": 64, "height": 64},
            "physics": {"steps": 120},
            "distractors": {"count": 1},
            "outputs": {"shard_size": 2},
        },
    )
    out = tmp_path_factory.mktemp("gen") / "tabletop"
    synthcv.generate(spec, out, count=3, progress=False)
    return out


def test_tools_on_generated_dataset(generated_dir, tmp_path):
    from pycocotools.coco import COCO

    from synthcv.tools.coco import export_coco
    from synthcv.tools.inspect import summarize
    from synthcv.tools.preview import HEADER, PAD, panel_scale, write_preview

    ds = open_dataset(generated_dir)
    assert len(ds) == 3 and ds.verify() == []
    s = summarize(ds)
    assert s["samples"] == 3 and s["num_shards"] == 2 and s["shards_on_disk"] == 2
    assert s["checksums"]["ok"]
    assert sum(c["objects"] for c in s["classes"]) + s["distractors"]["objects"] == s["objects"]
    assert s["distractors"]["objects"] == 3
    assert "camera.elevation" in s["sample_factors"]
    item = ds[0]
    assert item["rgb"].shape == (64, 64, 3) and item["depth"].dtype == np.float32
    assert item["instance"].dtype == np.uint16 and item["normals"].dtype == np.float32
    ids = {o["instance_id"] for o in item["objects"]}
    assert set(np.unique(item["instance"])) - {0} <= ids

    grid = write_preview(ds, tmp_path / "grid.png", n=3, cols=3)
    sc = panel_scale(64, 64)
    assert Image.open(grid).size == (
        3 * (3 * 64 * sc + 2 * PAD) + 4 * PAD,
        HEADER + 64 * sc + 2 * PAD,
    )

    coco = COCO(str(export_coco(ds, tmp_path / "coco.json")))
    n_ann = 0
    for i in range(3):
        inst = ds[i]["instance"]
        for a in coco.loadAnns(coco.getAnnIds(imgIds=i)):
            want = (inst == a["instance_id"]).astype(np.uint8)
            np.testing.assert_array_equal(coco.annToMask(a), want)
            assert a["bbox"] == _bbox_of_mask(want) and a["area"] == int(want.sum())
            assert len(a["keypoints"]) == 3 * len(coco.loadCats(a["category_id"])[0]["keypoints"])
            n_ann += 1
    visible_labelled = sum(
        1 for o in ds.objects.to_pylist() if o["status"] == "visible" and not o["is_distractor"]
    )
    assert n_ann == visible_labelled > 0
