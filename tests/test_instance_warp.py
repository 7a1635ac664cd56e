"""Geometric jitter for instance tasks: boxes, masks and keypoints follow the warped pixels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

torch = pytest.importorskip("torch")

from synthcv.tasks.instance_warp import warp_instances  # noqa: E402
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
