"""Joint flip and crop: boxes, masks and keypoints move with the pixels."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest_dataset_fixture import H, W, write_fixture_dataset  # noqa: E402
from synthcv.torch_data import SynthcvTorchDataset  # noqa: E402
from synthcv.torch_transforms import (  # noqa: E402
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    boxes_from_masks,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_fixture_dataset(tmp_path_factory.mktemp("tt") / "fixture", count=3)


def _item(root: Path, i: int = 1, **kw):
    ds = SynthcvTorchDataset(root, target="detection", modalities=["rgb", "normals"], **kw)
    return ds[i]


def test_flip_mirrors_pixels_boxes_masks_keypoints_and_normals(root) -> None:
    (x, t) = _item(root)
    (fx, ft) = _item(root, transforms=RandomHorizontalFlip(p=1.0))
    assert torch.equal(fx["rgb"], x["rgb"].flip(-1))
    assert torch.equal(fx["normals"][0], -x["normals"][0].flip(-1))  # camera x points the other way
    assert torch.equal(fx["normals"][1:], x["normals"][1:].flip(-1))
    assert torch.equal(ft["masks"], t["masks"].flip(-1))
    assert torch.equal(ft["boxes"], boxes_from_masks(ft["masks"]))  # still tight on the masks
    kp, fkp = t["keypoints"], ft["keypoints"]
    labelled = kp[..., 2] > 0
    assert torch.allclose(fkp[..., 0][labelled], W - kp[..., 0][labelled])
    assert torch.equal(fkp[..., 1:], kp[..., 1:])
    # twice is the identity; p = 0 never flips
    (bx, bt) = _item(root, transforms=Compose([RandomHorizontalFlip(1.0)] * 2))
    assert torch.equal(bx["rgb"], x["rgb"]) and torch.equal(bt["boxes"], t["boxes"])
    (nx, _) = _item(root, transforms=RandomHorizontalFlip(p=0.0))
    assert torch.equal(nx["rgb"], x["rgb"])


def test_flip_swaps_left_and_right_keypoints() -> None:
    kp = torch.tensor([[[2.0, 3.0, 2.0], [5.0, 3.0, 2.0], [0.0, 0.0, 0.0]]])
    target = {
        "boxes": torch.tensor([[1.0, 1.0, 6.0, 4.0]]),
        "masks": torch.zeros((1, 8, 10), dtype=torch.uint8),
        "keypoints": kp,
    }
    _, out = RandomHorizontalFlip(1.0, flip_pairs=[(0, 1)])(torch.zeros(3, 8, 10), target)
    # left (x 2) and right (x 5) swap names after mirroring: left is now at 10 - 5 = 5
    assert out["keypoints"][0].tolist() == [[5.0, 3.0, 2.0], [8.0, 3.0, 2.0], [0.0, 0.0, 0.0]]
    assert out["boxes"][0].tolist() == [4.0, 1.0, 9.0, 4.0]


def test_crop_keeps_what_is_left_and_drops_what_is_not(root) -> None:
    (x, t) = _item(root)
    gen = torch.Generator().manual_seed(0)
    crop = RandomCrop((H // 2, W // 2), generator=gen)
    seen_drop = False
    for _ in range(20):
        (cx, ct) = crop(x, t)
        assert cx["rgb"].shape == (3, H // 2, W // 2) and cx["normals"].shape[1:] == (
            H // 2,
            W // 2,
        )
        n = len(ct["boxes"])
        assert all(
            len(ct[k]) == n for k in ("labels", "masks", "instance_ids", "area", "keypoints")
        )
        assert torch.equal(ct["boxes"], boxes_from_masks(ct["masks"]))
        assert ct["area"].tolist() == ct["masks"].flatten(1).sum(1).float().tolist()
        assert bool(ct["masks"].flatten(1).any(1).all())  # every kept object has a pixel
        seen_drop |= n < len(t["boxes"])
        kp = ct["keypoints"]
        v = kp[..., 2] > 0
        assert bool(((kp[..., 0][v] >= 0) & (kp[..., 0][v] < W // 2)).all())
        assert bool((kp[~v] == 0).all())
        # the kept rows are the same objects, their pixels cut from the same place
        for row, iid in enumerate(ct["instance_ids"].tolist()):
            full = t["masks"][t["instance_ids"].tolist().index(iid)]
            assert int(ct["masks"][row].sum()) <= int(full.sum())
    assert seen_drop  # some window lost an object entirely
    with pytest.raises(ValueError, match="larger than the image"):
        RandomCrop((H + 1, W))(x, t)


def test_segmentation_maps_move_too(root) -> None:
    ds = SynthcvTorchDataset(root, target="segmentation", transforms=RandomHorizontalFlip(1.0))
    plain = SynthcvTorchDataset(root, target="segmentation")
    (img, seg), (img0, seg0) = ds[0], plain[0]
    assert torch.equal(seg, seg0.flip(-1)) and torch.equal(img, img0.flip(-1))
