"""COCO sources: load_coco's validation and decoding, label maps, the synthcv reader and the
writer (round trip)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthcv.tasks.coco_data import CocoFormatError, load_coco, load_synthcv, to_coco_files
from synthcv.tasks.instances import Instances, InstanceSet


def _square_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _instance_set() -> InstanceSet:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    targets = []
    for i in range(3):
        masks = [_square_mask(20, 24, 1 + i, 6 + i, 2, 9), _square_mask(20, 24, 10, 18, 12, 23)]
        masks = np.stack(masks[: 2 - (i == 2)]) if i < 2 else np.zeros((0, 20, 24), bool)
        m = len(masks)
        boxes = np.array([[2, 1 + i, 7, 5], [12, 10, 11, 8]], np.float32)[:m] + 0.25
        kps = rng.uniform(0, 20, (m, 2, 3)).astype(np.float32)
        kps[..., 2] = rng.integers(0, 3, (m, 2))
        factors = {"scale": np.array([0.5, 1.5])[:m], "font": np.array(["a", "b"])[:m]}
        targets.append(Instances(boxes, np.array([1, 0])[:m], masks, kps, factors))
    return InstanceSet(
        images,
        targets,
        ["cat", "dog"],
        name="toy",
        image_ids=np.array([5, 7, 9]),
        keypoint_names={"cat": ["nose", "tail"], "dog": ["nose", "tail"]},
        factors={"elevation": np.array([10.0, 20.0, 30.0]), "split": np.array(["a", "b", "c"])},
    )


def test_round_trip_instance_set_to_files_and_back(tmp_path):
    src = _instance_set()
    out = to_coco_files(src, tmp_path / "coco")
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "images"]
    got = load_coco(out, out / "annotations.json", name="back")
    assert got.categories == src.categories and got.name == "back"
    assert got.keypoint_names == src.keypoint_names
    assert np.array_equal(got.image_ids, src.image_ids)
    for a, b, ia, ib in zip(src.targets, got.targets, src.images, got.images, strict=True):
        assert np.array_equal(ia, ib)
        assert np.array_equal(a.boxes, b.boxes) and b.boxes.dtype == np.float32
        assert np.array_equal(a.labels, b.labels) and b.labels.dtype == np.int64
        assert np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.keypoints, b.keypoints)
        assert np.array_equal(a.factors["scale"], b.factors["scale"])
        assert list(a.factors["font"]) == list(b.factors["font"])
        assert np.array_equal(b.factors["area"], a.masks.sum((1, 2)))
    assert np.array_equal(got.factors["elevation"], src.factors["elevation"])
    assert list(got.factors["split"]) == ["a", "b", "c"]
    assert len(got.digest) == 64
    # the digest covers the image files
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(out / "images" / "000005.png")
    assert load_coco(out, out / "annotations.json").digest != got.digest


def test_to_coco_files_refuses_a_directory_with_content_and_grayscale_becomes_rgb(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        to_coco_files(_instance_set(), tmp_path / "full")
    gray = InstanceSet([np.full((6, 5, 1), 77, np.uint8)], [Instances.empty(6, 5)], ["a"])
    back = load_coco(to_coco_files(gray, tmp_path / "g"), tmp_path / "g" / "annotations.json")
    assert back.images[0].shape == (6, 5, 3) and (back.images[0] == 77).all()
    assert back.targets[0].masks is None and back.targets[0].keypoints is None
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left beside


# ------------------------------------------------------------------ hand-written COCO files


def _write(tmp_path: Path, data: dict | str, name: str = "ann.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


@pytest.fixture
def coco_dir(tmp_path) -> Path:
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "img" / "a.png")
    Image.fromarray(np.full((10, 12), 200, np.uint8)).save(tmp_path / "img" / "b.png")  # gray
    return tmp_path


def _valid() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 12, "height": 10, "weather": "rain"},
            {"id": 2, "file_name": "b.png", "width": 12, "height": 10, "weather": "sun"},
        ],
        "categories": [
            {"id": 3, "name": "seven", "keypoints": ["top", "bottom"]},
            {"id": 1, "name": "one"},
            {"id": 2, "name": "two"},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "bbox": [2, 2, 4, 4],
                "iscrowd": 0,
                "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
                "keypoints": [3, 2, 2, 3, 6, 1],
                "visibility": 0.9,
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 1,
                "bbox": [0, 0, 1, 10],
                "segmentation": {"size": [10, 12], "counts": [0, 10, 110]},
                "area": 10,
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 2,
                "bbox": [0, 0, 12, 10],
                "iscrowd": 1,
                "segmentation": {"size": [10, 12], "counts": [0, 120]},
            },
        ],
    }


def test_a_valid_file_decodes_polygons_rle_keypoints_and_factors(coco_dir):
    s = load_coco(coco_dir / "img", _write(coco_dir, _valid()))
    assert s.categories == ["one", "two", "seven"]  # sorted by id
    assert [im.shape for im in s.images] == [(10, 12, 3), (10, 12, 3)]
    assert (s.images[1] == 200).all()  # the grayscale file became 3 channels
    a, b = s.targets
    assert list(a.labels) == [2] and list(b.labels) == [0]  # the crowd annotation is dropped
    # polygon (2,2)-(6,6): pycocotools rasterises the pixels whose centres it covers
    assert np.array_equal(a.masks[0], _square_mask(10, 12, 2, 6, 2, 6))
    # uncompressed RLE is column-major: 10 pixels = the first column
    assert np.array_equal(b.masks[0], _square_mask(10, 12, 0, 10, 0, 1))
    assert a.keypoints.shape == (1, 2, 3) and a.keypoints[0, 1].tolist() == [3, 6, 1]
    assert b.keypoints.shape == (1, 2, 3) and not b.keypoints.any()  # "one" has none
    assert s.keypoint_names == {"seven": ["top", "bottom"]}
    assert np.isnan(b.factors["visibility"][0]) and a.factors["visibility"][0] == 0.9
    assert list(s.factors["weather"]) == ["rain", "sun"]
    assert list(s.image_ids) == [1, 2]


def test_compressed_rle_and_no_segmentation(coco_dir):
    from pycocotools import mask as mask_utils

    mask = _square_mask(10, 12, 3, 8, 4, 11)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    data = _valid()
    data["annotations"] = data["annotations"][:2]
    data["annotations"][0]["segmentation"] = {"size": [10, 12], "counts": rle["counts"].decode()}
    s = load_coco(coco_dir / "img", _write(coco_dir, data))
    assert np.array_equal(s.targets[0].masks[0], mask)
    for a in data["annotations"]:
        del a["segmentation"]
    s = load_coco(coco_dir / "img", _write(coco_dir, data))
    assert all(t.masks is None for t in s.targets)


def test_label_map_renames_merges_drops_and_categories_order(coco_dir):
    data = _valid()
    data["annotations"][2]["iscrowd"] = 0
    ann = _write(coco_dir, data)
    s = load_coco(coco_dir / "img", ann, label_map={"seven": "7", "one": "1", "two": "1"})
    assert s.categories == ["1", "7"]
    assert [list(t.labels) for t in s.targets] == [[1], [0, 0]]  # merged
    s = load_coco(coco_dir / "img", ann, label_map={"two": None}, categories=["seven", "x", "one"])
    assert s.categories == ["seven", "x", "one"]
    assert [list(t.labels) for t in s.targets] == [[0], [2]]  # "two" dropped
    with pytest.raises(CocoFormatError, match=r"label_map\['eight'\]: no category named 'eight'"):
        load_coco(coco_dir / "img", ann, label_map={"eight": "8"})
    with pytest.raises(CocoFormatError, match="class 'two' is not one of the requested"):
        load_coco(coco_dir / "img", ann, categories=["seven", "one"])


def _mutate(path: str, value):
    def apply(d: dict) -> None:
        keys = path.split(".")
        for k in keys[:-1]:
            d = d[int(k)] if k.isdigit() else d[k]
        last = keys[-1]
        if value is _DELETE:
            del d[int(last) if last.isdigit() else last]
        else:
            d[int(last) if last.isdigit() else last] = value

    return apply


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _mutate("annotations.0.bbox", [1, 2, 3]),
            "annotations[0].bbox: got [1, 2, 3], expected 4 numbers [x, y, w, h]",
        ),
        (_mutate("annotations.0.bbox", [1, 2, -3, 4]), "annotations[0].bbox: got [1, 2, -3, 4]"),
        (_mutate("images.0.file_name", "x.png"), "images[0].file_name: file not found: "),
        (_mutate("annotations.1.category_id", 9), "annotations[1].category_id: got 9"),
        (_mutate("annotations.1.image_id", 42), "annotations[1].image_id: got 42"),
        (
            _mutate("annotations.0.keypoints", [1, 2, 2, 3]),
            "annotations[0].keypoints: 4 numbers, not a multiple of 3",
        ),
        (
            _mutate("annotations.0.keypoints", [1, 2, 2]),
            "annotations[0].keypoints: 3 numbers, expected 6 (3 × the 2 keypoints of category "
            "'seven')",
        ),
        (_mutate("annotations", _DELETE), "(top level): missing key(s) annotations"),
        (_mutate("images.0.width", 13), "images[0].width: got 13, but"),
        (
            _mutate("annotations.0.segmentation", [[1, 2, 3, 4]]),
            "annotations[0].segmentation[0]: got [1, 2, 3, 4], expected a polygon",
        ),
        (
            _mutate("annotations.1.segmentation", {"size": [10, 11], "counts": [0, 110]}),
            "annotations[1].segmentation.size: got [10, 11], expected the image's",
        ),
        (
            _mutate("annotations.1.segmentation", {"size": [10, 12], "counts": [0, 5]}),
            "annotations[1].segmentation.counts: run lengths add up to 5",
        ),
        (_mutate("annotations.0.segmentation", _DELETE), "annotations[0].segmentation: missing"),
        (_mutate("categories.1.id", 3), "categories[1].id: duplicate category id 3"),
        (_mutate("annotations.0.iscrowd", 2), "annotations[0].iscrowd: got 2, expected 0 or 1"),
    ],
)
def test_malformed_files_name_the_file_and_the_field(coco_dir, change, expected):
    data = copy.deepcopy(_valid())
    change(data)
    ann = _write(coco_dir, data)
    with pytest.raises(CocoFormatError) as err:
        load_coco(coco_dir / "img", ann)
    assert f"{ann}: {expected}" in str(err.value), str(err.value)
    assert isinstance(err.value, ValueError)


def test_not_json_gives_line_and_column_and_many_problems_are_capped(coco_dir):
    with pytest.raises(CocoFormatError, match=r"ann.json: not valid JSON: .* line 2, column 5"):
        load_coco(coco_dir / "img", _write(coco_dir, '{"images": [],\n    ]'))
    data = _valid()
    data["annotations"] = [{"image_id": 1, "category_id": 1, "bbox": [0]} for _ in range(30)]
    with pytest.raises(CocoFormatError) as err:
        load_coco(coco_dir / "img", _write(coco_dir, data))
    assert len(err.value.problems) == 30
    assert str(err.value).endswith("and 10 more") and "30 problems" in str(err.value)
    with pytest.raises(FileNotFoundError, match="annotations file not found"):
        load_coco(coco_dir / "img", coco_dir / "nope.json")


# ------------------------------------------------------------------------ synthcv datasets

SPEC = {
    "count": 4,
    "seed": 3,
    "image": {"width": 48, "height": 48},
    "camera": {"distance": 0.6, "elevation": 60},
    "objects": {
        "count": 2,
        "classes": {
            "cube": {"asset": {"primitive": "cube", "size": 0.08}},
            "ball": {"asset": {"primitive": "sphere", "radius": 0.04}},
        },
    },
    "distractors": {"count": 1},
    "physics": {"enabled": False},
    "outputs": {"depth": False, "normals": False, "semantic": False},
}


def test_load_synthcv_matches_objects_parquet_and_the_instance_map(tmp_path):
    from synthcv.format import content_digest, open_dataset
    from synthcv.format.codecs import read_png
    from synthcv.pipeline import generate

    generate(SPEC, tmp_path / "ds", progress=False)
    s = load_synthcv(tmp_path / "ds", label_map={"ball": "sphere"})
    ds = open_dataset(tmp_path / "ds")
    assert s.categories == ["cube", "sphere"] and s.name == "ds"
    assert s.digest == content_digest(tmp_path / "ds")
    assert "camera.elevation" in s.factors and "num_visible" in s.factors
    total = 0
    for j, t in enumerate(s.targets):
        assert s.images[j].shape == (48, 48, 3)
        inst = read_png(ds.path(j, "instance"), expect_uint16=True)
        rows = [o for o in ds.objects_of(j) if not o["is_distractor"] and o["visible_pixels"] > 0]
        assert len(t) == len(rows)
        for k, o in enumerate(rows):
            assert t.boxes[k].tolist() == pytest.approx(o["bbox"])
            assert np.array_equal(t.masks[k], inst == o["instance_id"])
            assert s.categories[t.labels[k]] == {"cube": "cube", "ball": "sphere"}[o["class_name"]]
            assert t.factors["visibility"][k] == pytest.approx(o["visibility"])
            assert t.factors["area"][k] == o["visible_pixels"]
        assert {"scale", "class_name", "visibility"} <= set(t.factors)
        assert t.keypoints is not None and t.keypoints.shape[1:] == (9, 3)
        total += len(t)
    assert total > 0
