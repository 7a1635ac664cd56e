"""Real digit scenes (synthcv.digit_scenes), their CLI, and the synthetic multi-digit spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from real_digits import HAVE_MNIST, needs_mnist
from synthcv.realdata import MNIST_TRAIN_COUNT

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@needs_mnist
def test_same_seed_same_bytes_and_another_seed_differs(tmp_path):
    from synthcv.digit_scenes import compose_digit_scenes

    a = compose_digit_scenes(tmp_path / "a", count=4, size=64, seed=3)
    b = compose_digit_scenes(tmp_path / "b", count=4, size=64, seed=3)
    c = compose_digit_scenes(tmp_path / "c", count=4, size=64, seed=4)
    assert _tree(a) == _tree(b) != _tree(c)
    assert sorted(_tree(a)) == ["annotations.json", *[f"images/{i:06d}.png" for i in range(4)]]
    assert not list(tmp_path.glob(".*.tmp"))


@needs_mnist
@pytest.mark.parametrize("split", ["train", "test"])
def test_scenes_read_back_with_tight_boxes_ink_masks_and_one_split(tmp_path, split):
    from synthcv.digit_scenes import compose_digit_scenes
    from synthcv.realdata import load_mnist8000
    from synthcv.tasks.coco_data import load_coco

    out = compose_digit_scenes(tmp_path / "s", split=split, count=6, seed=1)
    s = load_coco(out, out / "annotations.json")
    assert s.categories == [str(d) for d in range(10)]
    info = json.loads((out / "annotations.json").read_text())["info"]
    assert info["split"] == split
    all_images, all_labels = load_mnist8000("all")
    n_objects = 0
    for img, t, n in zip(s.images, s.targets, s.factors["num_digits"], strict=True):
        assert img.shape == (128, 128, 3) and len(t) == n >= 1
        for k in range(len(t)):
            ys, xs = np.nonzero(t.masks[k])
            x, y, w, h = t.boxes[k]
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert 14 <= max(w, h) <= 62  # 22–62 px frames at 128 px; the ink is smaller
            # masks are ink: bright pixels of the image (the image is the max of the digits)
            assert img[..., 0][t.masks[k]].min() >= 0.25 * 255 * 0.75 - 1
            src = int(t.factors["source_index"][k])
            assert (src < MNIST_TRAIN_COUNT) == (split == "train")
            assert all_labels[src] == int(s.categories[t.labels[k]])
            n_objects += 1
        # boxes overlap at most max_iou (0.2)
        for i in range(len(t)):
            for j in range(i):
                assert _iou(t.boxes[i], t.boxes[j]) <= 0.2 + 1e-6
    assert n_objects >= 12 and "scale" in s.targets[0].factors
    # the background stays dark away from the digits
    ink = np.zeros((128, 128), bool)
    for m in s.targets[0].masks:
        ink |= m
    assert np.median(s.images[0][..., 0][~ink]) < 70
    assert all_images.shape[0] == 8000


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@needs_mnist
def test_n_source_restricts_to_a_balanced_subset(tmp_path):
    from synthcv.digit_scenes import compose_digit_scenes, source_subset
    from synthcv.realdata import load_mnist8000

    _, labels = load_mnist8000("train")
    sub = source_subset(labels, 100, seed=2)
    assert len(sub) == 100 and np.bincount(labels[sub], minlength=10).tolist() == [10] * 10
    out = compose_digit_scenes(tmp_path / "s", count=20, size=64, seed=2, n_source=100)
    anns = json.loads((out / "annotations.json").read_text())["annotations"]
    assert {a["source_index"] for a in anns} <= set(sub.tolist())
    with pytest.raises(ValueError, match="n_source: got 2000, but the test split has 1000"):
        compose_digit_scenes(tmp_path / "t", split="test", count=1, n_source=2000)
    with pytest.raises(ValueError, match="split: got 'val'"):
        compose_digit_scenes(tmp_path / "t", split="val", count=1)


def _digits_npz(path: Path, labels: list[int]) -> Path:
    """Made-up 'digits': a bright bar whose length encodes the label, so a scene's ink says
    which source digit it came from."""
    images = np.zeros((len(labels), 28, 28), np.uint8)
    for i, c in enumerate(labels):
        images[i, 4:24, 12:16] = 255
        images[i, 4:6, 12 : 14 + 1 + int(c)] = 255
    np.savez(path, images=images, labels=np.asarray(labels))
    return path


def test_scenes_from_another_source_of_digits(tmp_path):
    """The real layout composes any digits (generated ones, fitted ones): the labels are the
    file's, the boxes are tight around their ink, and the info names the file, not MNIST."""
    from synthcv.digit_scenes import compose_digit_scenes, source_subset
    from synthcv.fileio import sha256_file
    from synthcv.tasks.coco_data import load_coco

    labels = [i % 10 for i in range(30)]
    npz = _digits_npz(tmp_path / "d.npz", labels)
    out = compose_digit_scenes(tmp_path / "s", count=5, size=96, seed=1, digits_npz=npz)
    data = json.loads((out / "annotations.json").read_text())
    assert data["info"]["split"] == "npz" and data["info"]["digits_npz"] == "d.npz"
    assert data["info"]["digits_sha256"] == sha256_file(npz) and "mnist_sha256" not in data["info"]
    s = load_coco(out, out / "annotations.json")
    n = 0
    for t in s.targets:
        for k in range(len(t)):
            src = int(t.factors["source_index"][k])
            assert int(s.categories[t.labels[k]]) == labels[src]
            ys, xs = np.nonzero(t.masks[k])
            x, y, w, h = t.boxes[k]
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            n += 1
    assert n >= 10
    sub = compose_digit_scenes(
        tmp_path / "t", count=5, size=96, seed=1, digits_npz=npz, n_source=10
    )
    anns = json.loads((sub / "annotations.json").read_text())["annotations"]
    assert {a["source_index"] for a in anns} <= set(source_subset(np.array(labels), 10, 1).tolist())


def test_scenes_from_a_bad_digits_file_name_the_file_and_write_nothing(tmp_path):
    from synthcv.digit_scenes import compose_digit_scenes

    bad = _digits_npz(tmp_path / "bad.npz", [1, 2, 12, 3])
    with pytest.raises(
        ValueError, match=r"bad\.npz: labels must be digits 0\.\.9; labels\[2\] is 12"
    ):
        compose_digit_scenes(tmp_path / "s", count=1, digits_npz=bad)
    res = _invoke("realdata", "digit-scenes", "--out", tmp_path / "x", "--digits", bad)
    assert res.exit_code == 2 and "labels[2] is 12" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "x").exists()
    res = _invoke(
        "realdata", "digit-scenes", "--out", tmp_path / "x", "--digits", tmp_path / "no.npz"
    )
    assert res.exit_code == 2 and "no.npz" in res.output
    good = _digits_npz(tmp_path / "good.npz", list(range(10)))
    res = _invoke(
        "realdata", "digit-scenes", "--out", tmp_path / "ok", "--digits", good, "--count", "2"
    )
    assert res.exit_code == 0, res.output
    assert "wrote 2 scenes of good.npz" in res.output


def _invoke(*args: str):
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    env = {"SYNTHCV_TRACKING": "0", "SYNTHCV_DEBUG": "0", "COLUMNS": "300"}
    return CliRunner(env=env).invoke(app, [str(a) for a in args])


def test_cli_exit_codes(tmp_path):
    res = _invoke("realdata", "digit-scenes", "--out", tmp_path / "x", "--mnist", tmp_path / "n")
    assert res.exit_code == 2 and "mnist-real-8000.npz not found" in res.output
    assert str(tmp_path / "n") in res.output and "Traceback" not in res.output
    res = _invoke("realdata", "digit-scenes", "--out", tmp_path / "x", "--split", "val")
    assert res.exit_code == 2 and "--split" in res.output
    res = _invoke("realdata", "digit-scenes", "--out", tmp_path / "x", "--count", "0")
    assert res.exit_code == 2
    if not HAVE_MNIST:
        return
    args = ["realdata", "digit-scenes", "--out", tmp_path / "ok", "--count", "2", "--size", "64"]
    res = _invoke(*args, "--split", "test", "--n-source", "50", "--seed", "1")
    assert res.exit_code == 0, res.output
    assert "wrote 2 test scenes" in res.output
    res = _invoke(*args)  # the directory has content now
    assert res.exit_code == 2 and "not an empty directory" in res.output


# ------------------------------------------------------------------ the synthetic counterpart


def test_example_spec_loads_and_renders_labelled_digits(tmp_path):
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec
    from synthcv.tasks.coco_data import load_synthcv

    path = REPO / "examples" / "digit_scenes.yaml"
    spec = load_spec(path)
    assert spec.image.width == spec.image.height == 128
    assert sorted(spec.objects.classes) == [str(d) for d in range(10)]
    small = tmp_path / "small.yaml"  # the same spec at 64 px, rendered once per pixel
    small.write_text(f"extends: {path}\nimage: {{width: 64, height: 64, supersample: 1}}\n")
    generate(small, tmp_path / "ds", count=2, progress=False)
    s = load_synthcv(tmp_path / "ds")
    assert s.categories == [str(d) for d in range(10)]
    assert sum(len(t) for t in s.targets) / len(s) >= 2
    assert "glyph.font" in s.targets[0].factors
