"""tasks.boxes against brute-force Python references: IoU/GIoU, NMS, batched NMS, Soft-NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthcv.tasks import boxes as B  # noqa: E402


def random_boxes(rng: np.random.Generator, n: int, size: float = 100.0, integer: bool = False):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(0, size / 3, (n, 2))
    out = np.concatenate([xy, xy + wh], 1)
    if integer:
        out = np.round(out)
    return torch.tensor(out, dtype=torch.float64)


def ref_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_giou(a, b) -> float:
    iou = ref_iou(a, b)
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return iou - (hull - union) / hull if hull > 0 else iou


def ref_nms(boxes, scores, thr) -> list[int]:
    b, s = boxes.tolist(), scores.tolist()
    order = sorted(range(len(s)), key=lambda i: (-s[i], i))
    keep: list[int] = []
    for i in order:
        if all(ref_iou(b[i], b[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def ref_soft_nms(boxes, scores, sigma, nt, method, thr):
    b, s = boxes.tolist(), scores.tolist()
    rest = [i for i in range(len(s)) if s[i] >= thr]
    keep, kept = [], []
    while rest:
        m = max(rest, key=lambda i: (s[i], -i))
        keep.append(m)
        kept.append(s[m])
        rest.remove(m)
        for i in rest:
            iou = ref_iou(b[m], b[i])
            if method == "linear":
                s[i] *= (1 - iou) if iou > nt else 1.0
            else:
                s[i] *= math.exp(-iou * iou / sigma)
        rest = [i for i in rest if s[i] >= thr]
    return keep, kept


def test_conversions_round_trip():
    rng = np.random.default_rng(0)
    xyxy = random_boxes(rng, 20)
    xywh = B.xyxy_to_xywh(xyxy)
    assert torch.allclose(B.xywh_to_xyxy(xywh), xyxy)
    assert torch.allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(xyxy)), xyxy)
    assert torch.allclose(B.cxcywh_to_xywh(B.xywh_to_cxcywh(xywh)), xywh)
    assert torch.allclose(B.xyxy_to_cxcywh(xyxy), B.xywh_to_cxcywh(xywh))
    one = torch.tensor([10.0, 20.0, 4.0, 6.0])  # a single box (4,) works too
    assert B.xywh_to_xyxy(one).tolist() == [10, 20, 14, 26]
    assert B.xywh_to_cxcywh(one).tolist() == [12, 23, 4, 6]


def boxes_with_edge_cases(seed: int):
    rng = np.random.default_rng(seed)
    a = random_boxes(rng, 30)
    extra = torch.tensor(
        [
            [5.0, 5.0, 5.0, 5.0],  # a point
            [5.0, 5.0, 5.0, 15.0],  # a vertical line
            [200.0, 200.0, 210.0, 210.0],  # disjoint from everything
            [0.0, 0.0, 150.0, 150.0],  # contains everything else
            [5.0, 5.0, 5.0, 5.0],  # the same point again
        ],
        dtype=torch.float64,
    )
    return torch.cat([a, extra])


@pytest.mark.parametrize("seed", [0, 1])
def test_iou_and_giou_match_brute_force(seed):
    a = boxes_with_edge_cases(seed)
    b = boxes_with_edge_cases(seed + 10)[::2]
    iou, giou = B.box_iou(a, b), B.generalized_box_iou(a, b)
    assert iou.shape == giou.shape == (len(a), len(b))
    al, bl = a.tolist(), b.tolist()
    want_iou = torch.tensor([[ref_iou(x, y) for y in bl] for x in al], dtype=torch.float64)
    want_giou = torch.tensor([[ref_giou(x, y) for y in bl] for x in al], dtype=torch.float64)
    assert torch.allclose(iou, want_iou, atol=1e-12)
    assert torch.allclose(giou, want_giou, atol=1e-12)
    assert not torch.isnan(iou).any() and not torch.isnan(giou).any()
    assert ((iou >= 0) & (iou <= 1)).all()
    assert ((giou >= -1) & (giou <= 1)).all()
    assert (giou <= iou + 1e-12).all()


def test_iou_giou_special_cases():
    big = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    inner = torch.tensor([[2.0, 3.0, 6.0, 8.0]])
    # one box contains the other: the hull is the big box, the union too → GIoU == IoU
    assert B.box_iou(big, inner).item() == pytest.approx(20 / 100)
    assert B.generalized_box_iou(big, inner).item() == pytest.approx(20 / 100)
    assert B.generalized_box_iou(big, big).item() == 1.0
    # disjoint boxes: IoU 0, GIoU negative and lower the farther apart
    near = torch.tensor([[11.0, 0.0, 21.0, 10.0]])
    far = torch.tensor([[100.0, 0.0, 110.0, 10.0]])
    g_near, g_far = B.generalized_box_iou(big, near).item(), B.generalized_box_iou(big, far).item()
    assert B.box_iou(big, far).item() == 0.0
    assert -1 < g_far < g_near < 0
    # two tiny boxes far apart tend to GIoU -1
    p1 = torch.tensor([[0.0, 0.0, 1e-3, 1e-3]])
    p2 = torch.tensor([[1e3, 1e3, 1e3 + 1e-3, 1e3 + 1e-3]])
    assert B.generalized_box_iou(p1, p2).item() == pytest.approx(-1, abs=1e-6)
    # degenerate: the same point twice has IoU 0 and GIoU 0, not NaN
    pt = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert B.box_iou(pt, pt).item() == 0.0
    assert B.generalized_box_iou(pt, pt).item() == 0.0
    # integer input and empty input
    assert B.box_iou(torch.tensor([[0, 0, 2, 2]]), torch.tensor([[1, 1, 3, 3]])).item() == (
        pytest.approx(1 / 7)
    )
    assert B.box_iou(torch.zeros(0, 4), big).shape == (0, 1)
    assert B.generalized_box_iou(big, torch.zeros(0, 4)).shape == (1, 0)


def crowd(seed: int, n: int = 120, integer: bool = False):
    """Many heavily overlapping boxes around a few centres, with some tied scores."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 80, (4, 2))
    c = centres[rng.integers(0, 4, n)] + rng.normal(0, 4, (n, 2))
    wh = rng.uniform(10, 25, (n, 2))
    b = np.concatenate([c - wh / 2, c + wh / 2], 1)
    if integer:
        b = np.round(b)
    s = rng.uniform(0, 1, n).round(2)  # rounding makes ties
    return torch.tensor(b, dtype=torch.float64), torch.tensor(s, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_brute_force(seed, thr):
    b, s = crowd(seed)
    got = B.nms(b, s, thr)
    assert got.dtype == torch.int64
    assert got.tolist() == ref_nms(b, s, thr)
    kept_scores = s[got]
    assert (kept_scores[:-1] >= kept_scores[1:]).all()


def test_nms_ties_and_duplicates_are_deterministic():
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3 + [[50.0, 50.0, 60.0, 60.0]])
    s = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert B.nms(box, s, 0.5).tolist() == [0, 3]  # equal scores: index order
    assert B.nms(box, s, 1.0).tolist() == [0, 1, 2, 3]  # IoU 1 is not > 1
    assert B.nms(box.float(), s.float(), 0.5).dtype == torch.int64


def test_nms_empty():
    assert B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    assert B.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).tolist() == []
    keep, sc = B.soft_nms(torch.zeros(0, 4), torch.zeros(0))
    assert keep.tolist() == [] and sc.tolist() == []
    keep, sc = B.batched_soft_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0))
    assert keep.tolist() == [] and sc.tolist() == []
    with pytest.raises(ValueError):
        B.nms(torch.zeros(2, 4), torch.zeros(3), 0.5)


def ref_batched_nms(b, s, idxs, thr):
    keep = []
    for c in sorted(set(idxs.tolist())):
        sel = [i for i in range(len(s)) if idxs[i] == c]
        keep += [sel[k] for k in ref_nms(b[sel], s[sel], thr)]
    return sorted(keep, key=lambda i: (-s[i].item(), i))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_nms_matches_per_class_brute_force(seed):
    b, s = crowd(seed)
    b = b - 50  # negative coordinates must still separate the classes
    idxs = torch.tensor(np.random.default_rng(seed).integers(0, 3, len(b)))
    got = B.batched_nms(b, s, idxs, 0.5)
    assert got.tolist() == ref_batched_nms(b, s, idxs, 0.5)
    # one class is plain nms
    assert B.batched_nms(b, s, torch.zeros(len(b)), 0.5).tolist() == B.nms(b, s, 0.5).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "method,sigma,nt", [("gaussian", 0.5, 0.3), ("gaussian", 0.1, 0.3), ("linear", 0.5, 0.3)]
)
def test_soft_nms_matches_brute_force(seed, method, sigma, nt):
    b, s = crowd(seed, n=60)
    keep, scores = B.soft_nms(b, s, sigma=sigma, iou_threshold=nt, method=method)
    want_keep, want_scores = ref_soft_nms(b, s, sigma, nt, method, 0.001)
    assert keep.tolist() == want_keep
    assert torch.allclose(scores, torch.tensor(want_scores, dtype=torch.float64), atol=1e-12)
    assert (scores[:-1] >= scores[1:]).all()
    assert (scores <= s[keep]).all()  # scores only decay


def test_soft_nms_limits():
    b, s = crowd(5, n=60, integer=True)  # integer corners: every non-zero IoU is ≥ 1e-4
    # sigma → 0: every overlapping neighbour decays to 0 → hard NMS at threshold 0
    keep, sc = B.soft_nms(b, s, sigma=1e-12)
    assert keep.tolist() == B.nms(b, s, 0.0).tolist()
    assert torch.equal(sc, s[keep])
    # sigma → ∞: (almost) nothing decays, every box is kept with its score
    keep, sc = B.soft_nms(b, s, sigma=1e12)
    assert sorted(keep.tolist()) == list(range(len(s)))
    assert torch.allclose(sc, s[keep], atol=1e-9)
    # linear: IoU ≤ N_t leaves the score, IoU 1 (a duplicate) drops it to 0 → removed
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    keep, sc = B.soft_nms(box, torch.tensor([0.9, 0.8, 0.7]), method="linear", iou_threshold=0.4)
    assert keep.tolist() == [0, 2]  # box 2: IoU 1/3 ≤ 0.4 with box 0 keeps 0.7
    assert sc.tolist() == pytest.approx([0.9, 0.7])
    keep, sc = B.soft_nms(box, torch.tensor([0.9, 0.8, 0.7]), method="linear", iou_threshold=0.3)
    assert keep.tolist() == [0, 2]
    assert sc.tolist() == pytest.approx([0.9, 0.7 * (1 - 1 / 3)])
    # score_threshold drops low boxes from the start; ties go to the lower index
    keep, sc = B.soft_nms(box, torch.tensor([0.5, 0.5, 0.0001]), method="linear")
    assert keep.tolist() == [0]
    with pytest.raises(ValueError):
        B.soft_nms(box, torch.ones(3), method="hard")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_batched_soft_nms_is_per_class(method):
    b, s = crowd(7, n=60)
    idxs = torch.tensor(np.random.default_rng(7).integers(0, 3, len(b)))
    keep, sc = B.batched_soft_nms(b, s, idxs, method=method)
    want: dict[int, float] = {}
    for c in range(3):
        sel = (idxs == c).nonzero().flatten().tolist()
        k, v = ref_soft_nms(b[sel], s[sel], 0.5, 0.3, method, 0.001)
        want.update({sel[i]: x for i, x in zip(k, v, strict=True)})
    assert sorted(keep.tolist()) == sorted(want)
    got = dict(zip(keep.tolist(), sc.tolist(), strict=True))
    assert all(got[i] == pytest.approx(want[i], abs=1e-9) for i in want)
    assert (sc[:-1] >= sc[1:]).all()
