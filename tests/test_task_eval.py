"""tasks.evaluation: COCO metrics through pycocotools, semantic mIoU, slices; tasks.plots' PR and
metric-vs-factor figures. Small hand-built sets (64×64, 3 categories, 17 / 4 / no keypoints)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("pycocotools")

from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from synthcv.tasks import evaluation as E
from synthcv.tasks.instances import Instances, InstanceSet, Predictions

H = W = 64
CATS = ["person", "box", "disc"]
KPT_NAMES = {"person": [f"p{i}" for i in range(17)], "box": ["tl", "tr", "br", "bl"]}
K = 17


def make_set(n: int = 8, seed: int = 0, categories: list[str] | None = None) -> InstanceSet:
    """n images; objects in the four 32×32 quadrants (no overlap): person/box rectangles with
    17 / 4 visible keypoints, disc ellipses without keypoints; the last image has none."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(n):
        m = 0 if i == n - 1 else int(rng.integers(1, 5))
        cells = rng.permutation(4)[:m]
        boxes, labels, masks, kps, occl = [], [], [], [], []
        for cell in cells:
            c = int(rng.integers(0, 3))
            w, h = (int(v) for v in rng.integers(10, 24, 2))
            x0 = 32 * (cell % 2) + int(rng.integers(0, 32 - w))
            y0 = 32 * (cell // 2) + int(rng.integers(0, 32 - h))
            if c == 2:  # an ellipse inscribed in the box
                cx, cy = x0 + (w - 1) / 2, y0 + (h - 1) / 2
                mk = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
            else:
                mk = np.zeros((H, W), bool)
                mk[y0 : y0 + h, x0 : x0 + w] = True
            ys, xs = np.nonzero(mk)
            boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
            kp = np.zeros((K, 3), np.float32)
            if c == 0:
                kp[:, 0] = rng.uniform(x0, x0 + w, K)
                kp[:, 1] = rng.uniform(y0, y0 + h, K)
                kp[:, 2] = 2
                kp[3, 2] = 1  # labelled but hidden still counts
            elif c == 1:
                kp[:4, :2] = [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]]
                kp[:4, 2] = 2
            labels.append(c)
            masks.append(mk)
            kps.append(kp)
            occl.append(float(rng.uniform()))
        targets.append(
            Instances(
                np.array(boxes, np.float32).reshape(-1, 4),
                np.array(labels),
                np.array(masks, bool).reshape(-1, H, W),
                np.array(kps, np.float32).reshape(-1, K, 3),
                factors={"occlusion": np.array(occl)},
            )
        )
        images.append(np.zeros((H, W, 3), np.uint8))
    return InstanceSet(
        images,
        targets,
        categories or list(CATS),
        image_ids=np.arange(100, 100 + n),
        keypoint_names=dict(KPT_NAMES),
        factors={"light": np.linspace(0, 1, n), "bg": np.array(["a", "b"] * (n // 2))},
    )


def gt_as_predictions(gt: InstanceSet, keep=None, score=1.0) -> list[Predictions]:
    out = []
    for t in gt.targets:
        sel = np.arange(len(t)) if keep is None else np.array(keep(t), dtype=np.int64)
        kp = t.keypoints[sel].copy()
        kp[:, :, 2] = 1.0  # a confidence, not a visibility
        out.append(
            Predictions(t.boxes[sel], np.full(len(sel), score), t.labels[sel], t.masks[sel], kp)
        )
    return out


def noisy_predictions(gt: InstanceSet, seed: int = 0) -> list[Predictions]:
    """Jittered boxes, random scores, some misses, false positives and wrong labels."""
    rng = np.random.default_rng(seed)
    out = []
    for t in gt.targets:
        b = t.boxes + rng.normal(0, 2.5, t.boxes.shape).astype(np.float32)
        lab = np.where(rng.uniform(size=len(t)) < 0.15, (t.labels + 1) % 3, t.labels)
        keep = rng.uniform(size=len(t)) > 0.15
        fp = rng.uniform(0, 40, (2, 4)).astype(np.float32) + np.array([0, 0, 8, 8], np.float32)
        out.append(
            Predictions(
                np.concatenate([b[keep], fp]),
                rng.uniform(0.05, 1, int(keep.sum()) + 2).round(2),
                np.concatenate([lab[keep], rng.integers(0, 3, 2)]),
            )
        )
    return out


@pytest.fixture(scope="module")
def gt() -> InstanceSet:
    return make_set()


def test_to_coco_writes_each_category_its_own_keypoints(gt):
    d = gt.to_coco()
    for a in d["annotations"]:
        name = CATS[a["category_id"] - 1]
        if name == "disc":
            assert "keypoints" not in a
        else:
            assert len(a["keypoints"]) == 3 * len(KPT_NAMES[name])
            assert a["num_keypoints"] == len(KPT_NAMES[name])
    assert [c["keypoints"] for c in d["categories"]][1] == ["tl", "tr", "br", "bl"]


def test_ground_truth_as_predictions_scores_one(gt, capsys):
    res = E.coco_evaluate(gt, gt_as_predictions(gt))
    assert capsys.readouterr().out == ""  # pycocotools' prints are swallowed
    assert set(res) == {"bbox", "segm", "keypoints"}
    for t in ("bbox", "segm"):
        r = res[t]
        assert set(r) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"}
        assert r["AP"] == pytest.approx(1.0) and r["AP50"] == 1 and r["AP75"] == 1
        assert r["AR100"] == pytest.approx(1.0)
        assert r["per_class"] == pytest.approx(dict.fromkeys(CATS, 1.0))
        assert r["pr"]["overall"]["iou50"] == pytest.approx([1.0] * 101)
        assert len(r["pr"]["recall"]) == 101 and r["pr"]["recall"][-1] == 1.0
    k = res["keypoints"]
    assert set(k) >= {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}
    assert k["AP"] == pytest.approx(1.0) and k["AR"] == pytest.approx(1.0)
    assert k["per_class"]["person"] == pytest.approx(1.0)
    assert k["per_class"]["box"] == pytest.approx(1.0)
    assert math.isnan(k["per_class"]["disc"])  # a category without keypoints


def test_summary_equals_cocoeval_summarize(gt):
    """Our reading of the accumulated arrays gives COCOeval.summarize's stats."""
    preds = noisy_predictions(gt)
    res = E.coco_evaluate(gt, preds, iou_types=("bbox",))["bbox"]
    coco_gt = E._coco(gt.to_coco())
    dets = E.predictions_to_coco(preds, gt.image_ids)
    ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm"]
    for name, want in zip(names, ev.stats, strict=False):
        got = res[name]
        assert (math.isnan(got) and want == -1) or got == pytest.approx(want), name
    assert 0 < res["AP50"] < 1


def test_half_the_predictions_halve_recall(gt):
    preds = gt_as_predictions(gt, keep=lambda t: np.arange(0, len(t), 2))
    res = E.coco_evaluate(gt, preds, iou_types=("bbox", "segm"))
    kept = np.zeros(3)
    total = np.zeros(3)
    for t in gt.targets:
        np.add.at(total, t.labels, 1)
        np.add.at(kept, t.labels[::2], 1)
    for t in ("bbox", "segm"):
        # COCO's AR is the mean over classes of each class's recall; precision stays 1 up
        # to that recall, so AP counts the 101 recall points ≤ it
        assert res[t]["AR100"] == pytest.approx(np.mean(kept / total))
        assert res[t]["AP"] == pytest.approx(
            np.mean((np.floor(kept / total * 100 + 1e-9) + 1) / 101)
        )
    rows = E.instance_slices(gt, preds, factors=["class"])
    for r in rows:
        c = CATS.index(r["slice"])
        assert r["recall"] == kept[c] / total[c] and r["n_objects"] == total[c]


def test_shift_lowers_ap75_before_ap50(gt):
    def shifted(frac):
        out = []
        for p in gt_as_predictions(gt):
            b = p.boxes.copy()
            b[:, 0] += frac * b[:, 2]  # IoU = (1 - f) / (1 + f)
            out.append(Predictions(b, p.scores, p.labels))
        return out

    small = E.coco_evaluate(gt, shifted(0.2), iou_types=("bbox",))["bbox"]  # IoU 0.67
    assert small["AP50"] == pytest.approx(1.0) and small["AP75"] == 0.0
    big = E.coco_evaluate(gt, shifted(0.5), iou_types=("bbox",))["bbox"]  # IoU 0.33
    assert big["AP50"] == 0.0


def test_per_class_ap_by_name_and_missing_class():
    gt = make_set(categories=[*CATS, "unused"])
    preds = gt_as_predictions(gt, keep=lambda t: np.flatnonzero(t.labels != 2))
    res = E.coco_evaluate(gt, preds, iou_types=("bbox",))["bbox"]
    pc = res["per_class"]
    assert list(pc) == [*CATS, "unused"]
    assert pc["person"] == pytest.approx(1) and pc["box"] == pytest.approx(1)
    assert pc["disc"] == 0.0
    assert math.isnan(pc["unused"])  # no ground truth: undefined, not 0
    assert res["AP"] == pytest.approx(2 / 3)  # the mean over classes with ground truth
    assert all(math.isnan(v) for v in res["pr"]["per_class"]["unused"]["iou50"])
    assert res["pr"]["per_class"]["disc"]["iou50"] == [0.0] * 101


def test_predictions_to_coco_round_trips_through_loadres(gt):
    preds = gt_as_predictions(gt)
    counts = [gt.keypoint_count(c) for c in gt.categories]
    dets = E.predictions_to_coco(preds, gt.image_ids, keypoint_counts=counts)
    json.dumps(dets)  # ASCII RLE counts: plain JSON
    assert len(dets) == sum(len(p) for p in preds)
    coco_gt = E._coco(gt.to_coco())
    with E._quiet():
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
    assert len(coco_dt.getAnnIds()) == len(dets)
    anns = coco_dt.loadAnns(coco_dt.getAnnIds(imgIds=[int(gt.image_ids[0])]))
    t = gt.targets[0]
    for j, a in enumerate(anns):
        assert a["category_id"] == t.labels[j] + 1 and a["score"] == 1.0
        assert np.array_equal(mask_utils.decode(a["segmentation"]).astype(bool), t.masks[j])
        assert a["bbox"] == pytest.approx(t.boxes[j].tolist())
        k = counts[t.labels[j]]
        assert len(a.get("keypoints", [])) == 3 * k
    no_masks = E.predictions_to_coco(preds, gt.image_ids, masks=False, keypoints=False)
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in no_masks)
    with pytest.raises(ValueError):
        E.predictions_to_coco(preds, gt.image_ids[:2])


def test_no_predictions_give_zeros(gt):
    empty = [Predictions(np.zeros((0, 4)), np.zeros(0), np.zeros(0)) for _ in gt.targets]
    res = E.coco_evaluate(gt, empty)
    for t in ("bbox", "segm", "keypoints"):
        assert res[t]["AP"] == 0.0 and res[t]["AP50"] == 0.0
        assert all(v == 0.0 for v in res[t]["per_class"].values() if not math.isnan(v))
    rows = E.instance_slices(gt, empty, factors=["light", "class"])
    assert rows and all(r["recall"] == 0.0 for r in rows)
    assert all(r["ap50"] == 0.0 for r in rows if "n_images" in r and r["n_objects"])


def test_boxes_only_ground_truth_skips_segm_and_keypoints(gt):
    plain = InstanceSet(
        gt.images, [Instances(t.boxes, t.labels) for t in gt.targets], CATS, image_ids=gt.image_ids
    )
    res = E.coco_evaluate(plain, gt_as_predictions(gt))
    assert set(res) == {"bbox"} and res["bbox"]["AP"] == pytest.approx(1.0)
    # keypoint categories whose objects carry no keypoints: nothing labelled, AP undefined
    unlabelled = InstanceSet(
        gt.images,
        [Instances(t.boxes, t.labels, t.masks) for t in gt.targets],
        CATS,
        image_ids=gt.image_ids,
        keypoint_names=KPT_NAMES,
    )
    res = E.coco_evaluate(unlabelled, gt_as_predictions(gt))
    assert res["segm"]["AP"] == pytest.approx(1.0) and math.isnan(res["keypoints"]["AP"])


def test_keypoint_sigmas():
    assert np.allclose(E.keypoint_sigmas("person", 17), E.COCO_PERSON_SIGMAS)
    assert E.COCO_PERSON_SIGMAS[0] == pytest.approx(0.026)
    assert np.allclose(E.keypoint_sigmas("box", 4), [E.DEFAULT_SIGMA] * 4)
    assert np.allclose(E.keypoint_sigmas("robot", 17), [E.DEFAULT_SIGMA] * 17)
    assert np.allclose(E.keypoint_sigmas("box", 4, {"box": [0.1] * 4}), [0.1] * 4)
    assert np.allclose(E.keypoint_sigmas("person", 17, {"box": [0.1] * 4}), E.COCO_PERSON_SIGMAS)
    assert np.allclose(E.keypoint_sigmas("box", 4, 0.2), [0.2] * 4)
    with pytest.raises(ValueError):
        E.keypoint_sigmas("box", 4, [0.1] * 3)


def test_keypoint_sigmas_change_keypoint_ap(gt):
    """A keypoint error of 2 px: strict sigmas punish it, lenient ones do not."""
    preds = gt_as_predictions(gt)
    for p in preds:
        p.keypoints[:, :, 0] += 2
    strict = E.coco_evaluate(gt, preds, ("keypoints",), kpt_sigmas=0.005)["keypoints"]["AP"]
    lenient = E.coco_evaluate(gt, preds, ("keypoints",), kpt_sigmas=0.5)["keypoints"]["AP"]
    assert strict < 0.5 < lenient == pytest.approx(1.0)


def test_semantic_iou():
    gt = make_set(n=4)
    maps = E.semantic_maps(gt)
    assert maps[0].shape == (H, W) and maps[0].dtype == np.int64
    assert set(np.unique(np.concatenate([m.ravel() for m in maps]))) <= {0, 1, 2, 3}
    r = E.semantic_iou(maps, maps, 4, class_names=["background", *CATS])
    assert r["mIoU"] == 1.0 and r["pixel_acc"] == 1.0
    assert list(r["per_class"]) == ["background", *CATS]
    # by hand: class 0 tp 1, union 2 → 1/2; class 1 tp 2, union 3 → 2/3; class 2 absent → NaN
    g = np.array([[0, 0], [1, 1], [255, 255]])
    p = np.array([[0, 1], [1, 1], [2, 0]])
    r = E.semantic_iou([g], [p], 3)
    assert r["per_class"]["background"] == pytest.approx(0.5)
    assert r["per_class"]["1"] == pytest.approx(2 / 3)
    assert math.isnan(r["per_class"]["2"])
    assert r["mIoU"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert r["pixel_acc"] == pytest.approx(3 / 4)
    assert r["confusion"].tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    with pytest.raises(ValueError):
        E.semantic_iou([g], [p + 5], 3)


def test_semantic_maps_later_objects_on_top():
    a = np.zeros((2, 4, 4), bool)
    a[0, :2] = True
    a[1, 1:3] = True
    s = InstanceSet(
        [np.zeros((4, 4, 3), np.uint8)],
        [Instances(np.zeros((2, 4)), [0, 2], a)],
        ["x", "y", "z"],
    )
    assert E.semantic_maps(s)[0][:, 0].tolist() == [1, 3, 3, 0]


def test_instance_slices_recall_and_intervals(gt):
    # keep every other object; give the kept ones of class "box" a score under the threshold
    preds = gt_as_predictions(gt, keep=lambda t: np.arange(0, len(t), 2))
    for p in preds:
        p.scores[p.labels == 1] = 0.2
    rows = E.instance_slices(gt, preds, bins=2)
    factors = [r["factor"] for r in rows]
    assert factors == sorted(factors, key=["light", "bg", "occlusion", "class", "size"].index)
    hit = [
        np.isin(np.arange(len(t)), np.arange(0, len(t), 2)) & (t.labels != 1) for t in gt.targets
    ]
    light = gt.factors["light"]
    for r in rows:
        assert set(r) >= {"factor", "slice", "ap50", "ap50_lo", "ap50_hi", "recall"}
        assert r["recall_lo"] <= r["recall"] <= r["recall_hi"]
        if not math.isnan(r["ap50"]):
            assert r["ap50_lo"] <= r["ap50"] <= r["ap50_hi"]
    light_rows = [r for r in rows if r["factor"] == "light"]
    assert len(light_rows) == 2 and sum(r["n_images"] for r in light_rows) == len(gt)
    for r in light_rows:  # recall by hand
        lo = r["slice"].startswith("[0,")
        imgs = np.flatnonzero(light < np.median(light)) if lo else np.flatnonzero(light >= 0.5)
        k = sum(int(hit[i].sum()) for i in imgs)
        n = sum(len(gt.targets[i]) for i in imgs)
        assert (r["n_images"], r["n_objects"], r["recall"]) == (len(imgs), n, k / n)
        sub = E.coco_evaluate(gt.take(imgs), [preds[i] for i in imgs], ("bbox",))
        assert r["ap50"] == pytest.approx(sub["bbox"]["AP50"], abs=1e-12)
    cls = {r["slice"]: r for r in rows if r["factor"] == "class"}
    assert cls["box"]["recall"] == 0.0 and "n_images" not in cls["box"]
    assert math.isnan(cls["box"]["ap50"])  # AP is not defined for a slice of objects
    recalls = [r["recall"] for r in rows if r["factor"] == "class"]
    assert recalls == sorted(recalls)  # worst first
    n_obj = sum(len(t) for t in gt.targets)
    assert sum(r["n_objects"] for r in rows if r["factor"] == "size") == n_obj
    assert [r["factor"] for r in E.instance_slices(gt, preds, factors=["bg"])] == ["bg"] * 2
    with pytest.raises(KeyError):
        E.instance_slices(gt, preds, factors=["nope"])


def test_slice_ap50_of_all_images_is_cocoeval_ap50(gt):
    preds = noisy_predictions(gt, seed=3)
    whole = InstanceSet(
        gt.images, gt.targets, CATS, image_ids=gt.image_ids, factors={"all": np.zeros(len(gt))}
    )
    (row,) = E.instance_slices(whole, preds, factors=["all"])
    want = E.coco_evaluate(whole, preds, iou_types=("bbox",))["bbox"]["AP50"]
    assert row["ap50"] == pytest.approx(want, abs=1e-12)
    assert row["ap50_lo"] < row["ap50"] < row["ap50_hi"]
    again = E.instance_slices(whole, preds, factors=["all"])
    assert again == [row]  # seeded bootstrap


def test_plots(gt, tmp_path):
    from synthcv.tasks import plots

    res = E.coco_evaluate(gt, noisy_predictions(gt), iou_types=("bbox",))["bbox"]
    p = plots.pr_curves(res, tmp_path / "pr.png")
    assert p.stat().st_size > 1000
    rows = E.instance_slices(gt, noisy_predictions(gt), bins=3)
    p = plots.metric_vs_factor(rows, "light", "ap50", tmp_path / "ap_light.png")
    assert p.stat().st_size > 1000
    assert plots.metric_vs_factor(rows, "size", "recall", tmp_path / "r.png").exists()
    with pytest.raises(ValueError):
        plots.metric_vs_factor(rows, "nope", "recall", tmp_path / "x.png")


def test_semantic_slices_give_miou_per_slice_with_intervals():
    from synthcv.tasks.evaluation import semantic_slices

    rng = np.random.default_rng(0)
    gt = [rng.integers(0, 3, (16, 16)) for _ in range(10)]
    pred = [g.copy() for g in gt]
    for p in pred[5:]:  # the "dark" half is predicted all background
        p[:] = 0
    light = np.array(["bright"] * 5 + ["dark"] * 5)
    rows = semantic_slices(gt, pred, 3, {"light": light})
    assert [r["slice"] for r in rows] == ["dark", "bright"]  # worst first
    dark, bright = rows
    assert bright["miou"] == 1.0 and bright["n_images"] == 5
    assert dark["miou"] < 0.5
    assert dark["miou_lo"] <= dark["miou"] <= dark["miou_hi"]
    with pytest.raises(KeyError, match="unknown factor"):
        semantic_slices(gt, pred, 3, {"light": light}, names=["height"])
