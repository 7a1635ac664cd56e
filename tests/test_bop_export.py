"""``synthcv export --format bop``: the BOP layout, checked against the dataset it came from and
against geometry (models posed with the ground truth land on their masks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from synthcv.format import open_dataset
from synthcv.format.codecs import read_depth, read_png
from synthcv.pipeline import generate
from synthcv.scene import quat_to_matrix

trimesh = pytest.importorskip("trimesh")

SPEC = {
    "count": 4,
    "seed": 11,
    "image": {"width": 96, "height": 72},
    "camera": {"distance": 0.7, "elevation": 50, "azimuth": {"uniform": [0, 360]}},
    "objects": {
        "count": 3,
        "pose": {"x": {"uniform": [-0.1, 0.1]}, "y": {"uniform": [-0.1, 0.1]}},
        # not in alphabetical order: the manifest's sorted keys must not reorder the classes
        "classes": {
            "duck": {"asset": {"pybullet": "duck"}, "scale": {"choice": [0.8, 1.0]}},
            "cube": {"asset": {"primitive": "cube", "size": 0.06}},
        },
    },
    "distractors": {"count": 1, "assets": [{"primitive": "sphere", "radius": 0.02}]},
    "outputs": {"shard_size": 2},
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from synthcv.tools.bop import export_bop

    root = tmp_path_factory.mktemp("bop")
    generate(SPEC, root / "ds", workers=1, progress=False)
    return open_dataset(root / "ds"), export_bop(root / "ds", root / "bop")


def _json(path):
    return json.loads(path.read_text())


def test_ground_truth_matches_the_dataset_and_the_geometry(exported):
    ds, out = exported
    scene = out / "train_pbr" / "000000"
    cams, gts, infos = (_json(scene / f"scene_{n}.json") for n in ("camera", "gt", "gt_info"))
    models = _json(out / "models" / "synthcv_models.json")
    assert set(cams) == {str(i) for i in range(len(ds))}
    checked = 0
    for j in range(len(ds)):
        im = str(int(ds.samples.column("sample_index")[j].as_py()))
        cam, gt, info = cams[im], gts[im], infos[im]
        K = np.asarray(cam["cam_K"]).reshape(3, 3)
        R_w2c = np.asarray(cam["cam_R_w2c"]).reshape(3, 3)
        t_w2c = np.asarray(cam["cam_t_w2c"])
        rows = [o for o in ds.objects_of(j) if not o["is_distractor"]]
        assert len(gt) == len(info) == len(rows)  # distractors are not ground truth
        instance = read_png(ds.path(j, "instance"), expect_uint16=True)
        depth = read_depth(ds.path(j, "depth"))
        # depth: millimetres = PNG value × depth_scale
        levels = np.asarray(Image.open(scene / "depth" / f"{int(im):06d}.png"))
        assert np.abs(levels * cam["depth_scale"] / 1000 - depth).max() <= cam["depth_scale"] / 2e3
        for k, (g, i, o) in enumerate(zip(gt, info, rows, strict=True)):
            R = np.asarray(g["cam_R_m2c"]).reshape(3, 3)
            t = np.asarray(g["cam_t_m2c"])
            # the pose is the world pose seen through the camera (mm)
            R_m2w = quat_to_matrix(np.asarray(o["rotation_world"]))
            np.testing.assert_allclose(R, R_w2c @ R_m2w, atol=1e-9)
            np.testing.assert_allclose(t, R_w2c @ (np.asarray(o["position_world"]) * 1e3) + t_w2c)
            assert models[str(g["obj_id"])]["class_name"] == o["class_name"]
            # masks: the visible one is the instance mask; both counts are the dataset's
            name = f"{int(im):06d}_{k:06d}.png"
            visib = np.asarray(Image.open(scene / "mask_visib" / name)) > 0
            full = np.asarray(Image.open(scene / "mask" / name)) > 0
            np.testing.assert_array_equal(visib, instance == o["instance_id"])
            assert not (visib & ~full).any()
            assert i["px_count_visib"] == o["visible_pixels"]
            assert i["px_count_all"] == o["unoccluded_pixels"]
            assert i["visib_fract"] == pytest.approx(o["visibility"])
            # the model, posed by the ground truth, projects onto its amodal mask
            ply = trimesh.load(out / "models" / f"obj_{g['obj_id']:06d}.ply", process=False)
            p = np.asarray(ply.vertices) @ R.T + t
            uv = (p @ K.T)[:, :2] / p[:, 2:]
            px = np.floor(uv + 0.5).astype(int)
            inside = (px[:, 0] >= 0) & (px[:, 0] < full.shape[1])
            inside &= (px[:, 1] >= 0) & (px[:, 1] < full.shape[0])
            if inside.sum() < 20 or i["px_count_all"] < 30:
                continue
            grown = np.pad(full, 1)
            grown = grown[1:-1, 1:-1] | grown[:-2, 1:-1] | grown[2:, 1:-1]
            grown |= np.roll(grown, 1, 1) | np.roll(grown, -1, 1)
            assert grown[px[inside, 1], px[inside, 0]].mean() > 0.98
            x, y, w, h = i["bbox_obj"]
            assert uv[inside, 0].min() > x - 1.5 and uv[inside, 0].max() < x + w + 0.5
            assert uv[inside, 1].min() > y - 1.5 and uv[inside, 1].max() < y + h + 0.5
            checked += 1
    assert checked >= 4


def test_models_are_shared_by_equal_geometry_and_described(exported):
    _, out = exported
    models = _json(out / "models" / "synthcv_models.json")
    info = _json(out / "models" / "models_info.json")
    assert set(models) == set(info)
    # cubes have one size: one model; ducks come at two scales: at most two
    by_class: dict[str, list[str]] = {}
    for obj_id, m in models.items():
        by_class.setdefault(m["class_name"], []).append(obj_id)
    assert len(by_class["cube"]) == 1
    assert 1 <= len(by_class["duck"]) <= 2
    cube = info[by_class["cube"][0]]
    assert [cube["size_x"], cube["size_y"], cube["size_z"]] == pytest.approx([60, 60, 60])
    assert cube["diameter"] == pytest.approx(60 * 3**0.5)
    camera = _json(out / "camera.json")
    assert (camera["width"], camera["height"]) == (96, 72)


def test_cli_export_bop_and_a_clip_is_a_scene(tmp_path):
    from typer.testing import CliRunner

    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    spec = {
        **SPEC,
        "count": 2,
        "sequence": {"frames": 3, "fps": 12, "start": "drop"},
        "distractors": {"count": 0},
    }
    generate(spec, tmp_path / "clips", workers=1, progress=False)
    env = {"SYNTHCV_TRACKING": "0", "COLUMNS": "300"}
    res = CliRunner().invoke(app, ["export", str(tmp_path / "clips"), "--format", "bop"], env=env)
    assert res.exit_code == 0, res.output
    out = tmp_path / "clips" / "bop" / "train_pbr"
    assert sorted(p.name for p in out.iterdir()) == ["000000", "000001"]
    for clip in out.iterdir():
        assert set(_json(clip / "scene_gt.json")) == {"0", "1", "2"}
        assert len(list((clip / "rgb").iterdir())) == 3
    # into a directory that is not empty: refused, nothing half-written
    res = CliRunner().invoke(app, ["export", str(tmp_path / "clips"), "--format", "bop"], env=env)
    assert res.exit_code == 2 and "not an empty directory" in res.output


def test_a_distorted_lens_is_refused(tmp_path):
    from synthcv.tools.bop import export_bop

    spec = {**SPEC, "count": 1, "sensor": {"distortion": {"k1": -0.1}}}
    generate(spec, tmp_path / "lens", workers=1, progress=False)
    with pytest.raises(ValueError, match=r"sensor\.distortion: BOP's cameras are pinhole"):
        export_bop(tmp_path / "lens")
    assert not (tmp_path / "lens" / "bop").exists()
