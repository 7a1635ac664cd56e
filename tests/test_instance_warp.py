"""Geometric jitter for instance tasks: boxes, masks and keypoints follow the warped pixels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

torch = pytest.importorskip("torch")

from synthcv.tasks.instance_warp import (  # noqa: E402
    flip_instances,
    keypoint_flip_pairs,
    warp_instances,
)
from synthcv.tasks.instances import Instances  # noqa: E402
from synthcv.tasks.warps import Jitter  # noqa: E402

pytestmark = pytest.mark.torch
SIZE = 64


def scene(with_masks: bool = True) -> tuple[torch.Tensor, Instances]:
    """Two bright shapes (an L and a bar) with a keypoint on a corner of each."""
    img = np.zeros((SIZE, SIZE), np.float32)
    masks = np.zeros((2, SIZE, SIZE), bool)
    masks[0, 10:30, 12:18] = True
    masks[0, 24:30, 12:28] = True
    masks[1, 38:44, 30:56] = True
    img[masks.any(0)] = 1.0
    boxes = np.array([[12, 10, 16, 20], [30, 38, 26, 6]], np.float32)
    kps = np.array([[[12, 10, 2]], [[56, 44, 2]]], np.float32)
    t = Instances(boxes, np.array([0, 1]), masks if with_masks else None, kps)
    return torch.from_numpy(img)[None, None], t


def ink_box(img: np.ndarray, region: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero((img > 0.5) & region)
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()])


def test_the_identity_warp_changes_nothing():
    x, t = scene()
    still = Jitter(shift=0, rotate=0, scale=0, shear=0, elastic=0)
    y, (u,) = warp_instances(x, [t], still, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-5)
    assert np.array_equal(u.masks, t.masks) and np.allclose(u.boxes, t.boxes)
    assert np.allclose(u.keypoints, t.keypoints, atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_masks_boxes_and_keypoints_follow_the_pixels(seed):
    x, t = scene()
    x = x.double()  # exact resampling, so ink and mask are compared on the same grid
    jitter = Jitter(shift=4, rotate=25, scale=0.2, shear=20, elastic=1.5, elastic_sigma=4)
    y, (u,) = warp_instances(x, [t], jitter, torch.Generator().manual_seed(seed))
    img = y[0, 0].numpy()
    assert len(u) == 2
    ink, labelled = img > 0.5, u.masks.any(0)
    assert (ink & labelled).sum() / (ink | labelled).sum() > 0.9  # masks cover the ink
    for i in range(2):
        near = binary_dilation(u.masks[i], iterations=2)
        assert np.allclose(u.boxes[i], ink_box(img, near), atol=1)  # boxes hug the ink
    # The L's corner keypoint stays at the warped L's corner: within 2 px of a mask pixel centre
    # (the outer corner is 0.7 px from the nearest centre before a warp that may stretch it;
    # the sub-pixel check is the next test's).
    kx, ky = u.keypoints[0, 0, :2]
    ys, xs = np.nonzero(u.masks[0])
    assert np.min(np.hypot(xs + 0.5 - kx, ys + 0.5 - ky)) < 2.0


def test_a_single_point_lands_where_its_pixel_went():
    img = np.zeros((SIZE, SIZE), np.float64)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    px, py = 23.0, 37.0
    img[:] = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 1.5**2))
    t = Instances(np.array([[20, 34, 6, 6]]), np.array([0]), None, np.array([[[px, py, 2]]]))
    jitter = Jitter(shift=3, rotate=20, scale=0.15, shear=15, elastic=1.0, elastic_sigma=5)
    for seed in range(5):
        y, (u,) = warp_instances(
            torch.from_numpy(img)[None, None], [t], jitter, torch.Generator().manual_seed(seed)
        )
        w = y[0, 0].numpy()
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        assert np.hypot(cx - u.keypoints[0, 0, 0], cy - u.keypoints[0, 0, 1]) < 0.5


def test_without_masks_a_box_becomes_the_hull_of_its_warped_corners():
    x, t = scene(with_masks=False)
    jitter = Jitter(shift=2, rotate=30, scale=0.1, shear=0, elastic=0)
    y, (u,) = warp_instances(x.double(), [t], jitter, torch.Generator().manual_seed(3))
    img = y[0, 0].numpy()
    # The L's ink stays inside its new box (its box was tight before the warp).
    ink_l = ink_box(img, np.ones_like(img, bool) & (np.arange(SIZE)[:, None] < 34))
    bx, by, bw, bh = u.boxes[0]
    assert ink_l[0] >= bx - 1 and ink_l[1] >= by - 1
    assert ink_l[0] + ink_l[2] <= bx + bw + 1 and ink_l[1] + ink_l[3] <= by + bh + 1


def test_an_object_pushed_out_of_the_frame_is_dropped_with_its_factors():
    x, t = scene()
    t.factors = {"size": np.array([1.0, 2.0])}
    # Shift by most of the frame: a pure translation of ±40 px, drawn until the bar leaves.
    jitter = Jitter(shift=40, rotate=0, scale=0, shear=0, elastic=0)
    gen = torch.Generator().manual_seed(0)
    seen_drop = False
    for _ in range(20):
        _, (u,) = warp_instances(x, [t], jitter, gen)
        assert len(u.boxes) == len(u.labels) == len(u.masks) == len(u.factors["size"])
        for i, label in enumerate(u.labels):
            assert u.factors["size"][i] == [1.0, 2.0][label]
            assert u.masks[i].sum() > 0
        seen_drop |= len(u) < 2
    assert seen_drop


def test_instance_experiments_warp_only_when_jitter_is_set():
    from synthcv.tasks.experiment import validate_config
    from synthcv.tasks.task_kinds import InstanceTasks

    def stage(**extra):
        cfg = validate_config(
            {
                "name": "x",
                "tasks": ["detection"],
                "data": {"m": {"kind": "dataset", "path": "somewhere"}},
                "train": {"sources": {"m": 1.0}, **extra},
                "eval": ["m"],
            }
        )
        return InstanceTasks.fit_config(cfg.train)

    assert stage().geometric is None and stage().photometric is not None
    assert stage(jitter=True).geometric == Jitter()
    assert stage(jitter={"shear": 15, "elastic": 1.5}).geometric == Jitter(shear=15, elastic=1.5)
    assert stage(jitter=False, photometric=False).geometric is None
    assert stage(photometric=False).photometric is None


def test_flip_pairs_are_found_by_name_and_match_cocos():
    from synthcv.people.keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS

    assert sorted(keypoint_flip_pairs(list(COCO_KEYPOINTS))) == sorted(COCO_FLIP_PAIRS)
    assert keypoint_flip_pairs(["corner_0", "corner_1", "left_only"]) == []


def test_a_flip_moves_every_label_with_the_pixels_and_swaps_left_and_right():
    """Three keypoints on one object, each marked by a lit pixel of its own brightness:
    after the mirror the pixel under each keypoint is the one its twin marked (left became
    right), the box is the mask's tight box, and a second flip gives back every value."""
    img = np.zeros((SIZE, SIZE), np.float32)
    mask = np.zeros((1, SIZE, SIZE), bool)
    mask[0, 8:40, 5:21] = True
    img[mask[0]] = 0.2
    kps = np.array([[[10.5, 12.5, 2], [18.5, 30.5, 2], [7.5, 20.5, 0]]], np.float32)
    for k, (x, y, _) in enumerate(kps[0]):
        img[int(y), int(x)] = 0.5 + 0.2 * k  # keypoint k's own marker
    t = Instances(np.array([[5, 8, 16, 32]], np.float32), np.array([0]), mask, kps)
    pairs = {0: keypoint_flip_pairs(["left_hand", "right_hand", "nose"])}
    x = torch.from_numpy(img)[None, None]
    gen = torch.Generator().manual_seed(0)
    fx, (ft,) = flip_instances(x, [t], 1.0, pairs, gen)
    flipped = fx[0, 0].numpy()
    np.testing.assert_array_equal(flipped, img[:, ::-1])
    np.testing.assert_array_equal(ft.masks[0], flipped > 0)  # the mask is the lit object
    ys, xs = np.nonzero(flipped > 0)
    assert ft.boxes.tolist() == [
        [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    ]
    for k, twin in ((0, 1), (1, 0)):
        x_k, y_k, v_k = ft.keypoints[0, k]
        assert v_k == 2 and flipped[int(y_k), int(x_k)] == pytest.approx(0.5 + 0.2 * twin)
    np.testing.assert_array_equal(ft.keypoints[0, 2], kps[0, 2])  # unlabelled: untouched
    back_x, (back,) = flip_instances(fx, [ft], 1.0, pairs, gen)
    np.testing.assert_array_equal(back_x.numpy(), x.numpy())
    np.testing.assert_array_equal(back.boxes, t.boxes)
    np.testing.assert_array_equal(back.keypoints, t.keypoints)
    np.testing.assert_array_equal(back.masks, t.masks)
    same_x, (same,) = flip_instances(x, [t], 0.0, pairs, gen)
    assert same is t and same_x is x


def test_flip_is_an_instance_task_option():
    from synthcv.tasks.experiment import validate_config
    from synthcv.validation import ConfigError

    base = {"name": "c", "data": {"a": {"kind": "mnist", "split": "train"}}, "eval": ["a"]}
    with pytest.raises(ConfigError, match=r"train.flip: is for instance tasks"):
        validate_config({**base, "train": {"sources": {"a": 1.0}, "flip": 0.5}})
    with pytest.raises(ConfigError, match=r"train.flip"):
        validate_config({**base, "tasks": ["detection"], "train": {"sources": {"a": 1}, "flip": 2}})
