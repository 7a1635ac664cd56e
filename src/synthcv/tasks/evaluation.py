"""Detection, instance-segmentation, keypoint and semantic-segmentation metrics, and where
they fail.

COCO metrics come from pycocotools' ``COCOeval`` itself, so numbers compare with published
ones; this module only feeds it (:meth:`InstanceSet.to_coco` as ground truth,
:func:`predictions_to_coco` as results, all in memory), keeps it quiet (pycocotools prints on
every step; library users get no prints), and reads its accumulated arrays into plain dicts:
the summary stats, AP per class (by name) and precision-recall curves.

Slices (:func:`instance_slices`) locate the errors by factor, as :mod:`synthcv.tasks.slices`
does for classification: AP50 per slice of images from this module's own cheap accumulator
(the same greedy matching and 101-point interpolation as COCOeval, so the slice of all images
gives COCOeval's AP50), with a bootstrap interval over images, and recall with a Wilson
interval per slice of images or of objects.

Semantic segmentation: class 0 is background, object class ``i`` (an index into
``categories``) is ``i + 1`` (:func:`semantic_maps`), and :func:`semantic_iou` scores maps
from one confusion matrix.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from synthcv.oks import COCO_PERSON_SIGMAS, DEFAULT_SIGMA, PERSON_NAMES, keypoint_sigmas  # noqa: F401 (re-exported)
from synthcv.tasks.instances import InstanceSet, Predictions
from synthcv.tasks.slices import bin_labels
from synthcv.tasks.stats import wilson

IouType = Literal["bbox", "segm", "keypoints"]
_BOX_STATS = [
    ("AP", True, None, "all", -1),
    ("AP50", True, 0.5, "all", -1),
    ("AP75", True, 0.75, "all", -1),
    ("APs", True, None, "small", -1),
    ("APm", True, None, "medium", -1),
    ("APl", True, None, "large", -1),
    ("AR1", False, None, "all", 0),
    ("AR10", False, None, "all", 1),
    ("AR100", False, None, "all", -1),
    ("ARs", False, None, "small", -1),
    ("ARm", False, None, "medium", -1),
    ("ARl", False, None, "large", -1),
]
_KPT_STATS = [
    ("AP", True, None, "all", -1),
    ("AP50", True, 0.5, "all", -1),
    ("AP75", True, 0.75, "all", -1),
    ("APm", True, None, "medium", -1),
    ("APl", True, None, "large", -1),
    ("AR", False, None, "all", -1),
    ("AR50", False, 0.5, "all", -1),
    ("AR75", False, 0.75, "all", -1),
    ("ARm", False, None, "medium", -1),
    ("ARl", False, None, "large", -1),
]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools prints progress on every call; swallow it."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _coco(dataset: Mapping[str, Any]) -> Any:
    from pycocotools.coco import COCO

    with _quiet():
        c = COCO()
        c.dataset = dict(dataset)
        c.createIndex()
    return c


def _keypoint_counts(gt: InstanceSet) -> list[int]:
    return [gt.keypoint_count(c) for c in gt.categories]


def predictions_to_coco(
    preds: Sequence[Predictions],
    image_ids: Sequence[int] | np.ndarray,
    *,
    masks: bool = True,
    keypoints: bool = True,
    keypoint_counts: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """COCO results entries (the list ``COCO.loadRes`` takes): ``image_id``, ``category_id`` =
    label + 1, ``bbox`` xywh, ``score``; with ``masks`` and masks present a compressed RLE
    ``segmentation`` (counts as ASCII, so it is JSON); with ``keypoints`` and keypoints present
    ``keypoints`` flattened ``x, y, confidence``. ``keypoint_counts[label]`` is the K of each
    category (see :meth:`InstanceSet.keypoint_count`): only the first K keypoints are written,
    none for a category with K = 0; without it every keypoint is written."""
    from pycocotools import mask as mask_utils

    if len(preds) != len(image_ids):
        raise ValueError(f"predictions_to_coco: {len(preds)} predictions, {len(image_ids)} ids")
    out: list[dict[str, Any]] = []
    for p, image_id in zip(preds, image_ids, strict=True):
        rles = None
        if masks and p.masks is not None and len(p):
            m = np.asfortranarray(np.asarray(p.masks, dtype=np.uint8).transpose(1, 2, 0))
            rles = mask_utils.encode(m)
        kps = None
        if keypoints and p.keypoints is not None and len(p):
            kps = np.asarray(p.keypoints, dtype=np.float64)
        for j in range(len(p)):
            label = int(p.labels[j])
            entry: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": label + 1,
                "bbox": [float(v) for v in p.boxes[j]],
                "score": float(p.scores[j]),
            }
            if rles is not None:
                entry["segmentation"] = {
                    "size": [int(v) for v in rles[j]["size"]],
                    "counts": rles[j]["counts"].decode("ascii"),
                }
            if kps is not None:
                k = kps.shape[1] if keypoint_counts is None else int(keypoint_counts[label])
                if k:
                    entry["keypoints"] = [float(v) for v in kps[j, :k].reshape(-1)]
            out.append(entry)
    return out


def _run_cocoeval(
    coco_gt: Any,
    dets: list[dict[str, Any]],
    iou_type: str,
    cat_ids: list[int],
    sigmas: np.ndarray | None = None,
) -> Any:
    from pycocotools.cocoeval import COCOeval

    with _quiet():
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))  # loadRes writes into its input
        else:  # loadRes cannot take an empty list; an empty result set is still a result set
            coco_dt = _coco(
                {
                    "images": coco_gt.dataset["images"],
                    "categories": coco_gt.dataset["categories"],
                    "annotations": [],
                }
            )
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.imgIds = sorted(coco_gt.getImgIds())
        ev.params.catIds = cat_ids
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
    return ev


def _summary(
    precision: np.ndarray, recall: np.ndarray, params: Any, stats: list[tuple]
) -> dict[str, float]:
    """COCOeval.summarize's numbers without its prints; NaN where COCO says -1 (no ground
    truth in that area range)."""
    out: dict[str, float] = {}
    for name, is_ap, iou, area, mdet in stats:
        a = list(params.areaRngLbl).index(area)
        m = mdet if mdet >= 0 else len(params.maxDets) - 1
        s = precision[..., a, m] if is_ap else recall[..., a, m]
        if iou is not None:
            s = s[np.isclose(params.iouThrs, iou)]
        valid = s[s > -1]
        out[name] = float(valid.mean()) if valid.size else math.nan
    return out


def _curve(p: np.ndarray) -> list[float]:
    """(T?, R) precision with -1 for undefined → list over R (mean over T), NaN if undefined."""
    if (p <= -1).all():
        return [math.nan] * p.shape[-1]
    return [float(v) for v in (p.mean(0) if p.ndim == 2 else p)]


def _read_eval(
    precision: np.ndarray, recall: np.ndarray, params: Any, names: list[str], iou_type: str
) -> dict[str, Any]:
    """Summary, per-class AP / AP50 and PR curves from accumulated (T, R, K, A, M) arrays
    whose K axis follows ``names``."""
    res: dict[str, Any] = _summary(
        precision, recall, params, _KPT_STATS if iou_type == "keypoints" else _BOX_STATS
    )
    a, m = list(params.areaRngLbl).index("all"), len(params.maxDets) - 1
    p = precision[:, :, :, a, m]  # (T, R, K)
    t50 = int(np.flatnonzero(np.isclose(params.iouThrs, 0.5))[0])
    per_class, per_class50, curves = {}, {}, {}
    for k, name in enumerate(names):
        pk = p[:, :, k]
        defined = (pk > -1).all()
        per_class[name] = float(pk.mean()) if defined else math.nan
        per_class50[name] = float(pk[t50].mean()) if defined else math.nan
        curves[name] = {"iou50": _curve(pk[t50]), "iou50_95": _curve(pk)}
    ok = (p > -1).all(axis=(0, 1))  # classes with ground truth: COCO averages over these
    undefined = [math.nan] * p.shape[1]
    overall = {
        "iou50": [float(v) for v in p[t50][:, ok].mean(1)] if ok.any() else undefined,
        "iou50_95": [float(v) for v in p[:, :, ok].mean((0, 2))] if ok.any() else undefined,
    }
    res["per_class"] = per_class
    res["per_class_ap50"] = per_class50
    res["pr"] = {
        "recall": [float(r) for r in params.recThrs],
        "overall": overall,
        "per_class": curves,
    }
    return res


def coco_evaluate(
    gt: InstanceSet,
    preds: Sequence[Predictions],
    iou_types: Sequence[IouType] = ("bbox", "segm", "keypoints"),
    kpt_sigmas: Sequence[float] | Mapping[str, Sequence[float]] | float | None = None,
) -> dict[str, dict[str, Any]]:
    """COCO metrics of ``preds`` (one :class:`Predictions` per image of ``gt``, same order).

    Returns per iou type a dict with COCOeval's summary stats — bbox / segm: ``AP, AP50, AP75,
    APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl``; keypoints: ``AP, AP50, AP75, APm, APl,
    AR, AR50, AR75, ARm, ARl`` — plus ``per_class`` (AP by category name), ``per_class_ap50``
    and ``pr``: ``recall`` (COCO's 101-point grid) with interpolated precision ``overall`` and
    ``per_class[name]``, each ``{"iou50": [...], "iou50_95": [...]}`` (area all, the largest
    maxDets). NaN where COCO reports -1: a class without ground truth, an empty area range.

    An iou type the ground truth has no labels for (no masks, no category with keypoints) is
    left out of the result. No predictions at all give AP 0. Keypoint AP counts only the
    categories with keypoints and objects with at least one labelled keypoint (COCO ignores
    the rest); each category gets its own OKS sigmas (:func:`keypoint_sigmas`), which is why
    keypoints are evaluated one COCOeval per distinct (K, sigmas) and merged.
    """
    if len(preds) != len(gt):
        raise ValueError(f"coco_evaluate: {len(preds)} predictions for {len(gt)} images")
    for t in iou_types:
        if t not in ("bbox", "segm", "keypoints"):
            raise ValueError(f"coco_evaluate.iou_types: got {t!r}, expected bbox/segm/keypoints")
    assert gt.image_ids is not None
    counts = _keypoint_counts(gt)
    gt_dict = gt.to_coco()
    coco_gt = _coco(gt_dict)
    dets = predictions_to_coco(preds, gt.image_ids, keypoint_counts=counts)
    cat_ids = list(range(1, len(gt.categories) + 1))
    out: dict[str, dict[str, Any]] = {}
    if "bbox" in iou_types:
        d = [{k: v for k, v in e.items() if k not in ("segmentation", "keypoints")} for e in dets]
        ev = _run_cocoeval(coco_gt, d, "bbox", cat_ids)
        out["bbox"] = _read_eval(
            ev.eval["precision"], ev.eval["recall"], ev.params, gt.categories, "bbox"
        )
    has_masks = all(t.masks is not None for t in gt.targets if len(t))
    if "segm" in iou_types and has_masks and len(gt):
        # without the box, loadRes takes the area from the mask (as COCO's own masks do)
        d = [
            {k: v for k, v in e.items() if k not in ("bbox", "keypoints")}
            for e in dets
            if "segmentation" in e
        ]
        ev = _run_cocoeval(coco_gt, d, "segm", cat_ids)
        out["segm"] = _read_eval(
            ev.eval["precision"], ev.eval["recall"], ev.params, gt.categories, "segm"
        )
    kpt_cats = [i for i, k in enumerate(counts) if k > 0]
    if "keypoints" in iou_types and kpt_cats:
        out["keypoints"] = _keypoint_eval(gt, coco_gt, dets, counts, kpt_cats, kpt_sigmas)
    return out


def _keypoint_eval(
    gt: InstanceSet,
    coco_gt: Any,
    dets: list[dict[str, Any]],
    counts: list[int],
    kpt_cats: list[int],
    kpt_sigmas: Any,
) -> dict[str, Any]:
    groups: dict[tuple, list[int]] = {}
    for i in kpt_cats:
        s = keypoint_sigmas(gt.categories[i], counts[i], kpt_sigmas)
        groups.setdefault((counts[i], tuple(s.tolist())), []).append(i)
    precs, recs, order, params = [], [], [], None
    for (_, sig), cats in groups.items():
        ids = {i + 1 for i in cats}
        d = [e for e in dets if e["category_id"] in ids and "keypoints" in e]
        ev = _run_cocoeval(coco_gt, d, "keypoints", sorted(ids), np.asarray(sig))
        precs.append(ev.eval["precision"])
        recs.append(ev.eval["recall"])
        order += sorted(cats)
        params = ev.params
    names = [gt.categories[i] for i in order]
    res = _read_eval(
        np.concatenate(precs, axis=2), np.concatenate(recs, axis=1), params, names, "keypoints"
    )
    # every category appears, NaN for those without keypoints
    for key in ("per_class", "per_class_ap50"):
        res[key] = {c: res[key].get(c, math.nan) for c in gt.categories}
    return res


# --- semantic segmentation -------------------------------------------------------------------


def semantic_maps(gt: InstanceSet) -> list[np.ndarray]:
    """Per-pixel class maps (H, W) int64 from the instance masks: 0 background, class index
    + 1 for objects; where objects overlap the later one (drawn on top) wins."""
    out = []
    for img, t in zip(gt.images, gt.targets, strict=True):
        m = np.zeros(img.shape[:2], dtype=np.int64)
        if len(t):
            if t.masks is None:
                raise ValueError(f"{gt.name}: semantic maps need masks; a target has none")
            for j in range(len(t)):
                m[t.masks[j]] = int(t.labels[j]) + 1
        out.append(m)
    return out


def semantic_iou(
    gt_maps: Sequence[np.ndarray],
    pred_maps: Sequence[np.ndarray],
    num_classes: int,
    ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Mean IoU over classes from one confusion matrix of all pixels (not a mean of per-image
    IoUs, which small images would dominate). Class 0 is background and counts like any class;
    ``num_classes`` includes it (``len(categories) + 1`` for :func:`semantic_maps`). Pixels
    whose ground truth is ``ignore_index`` are skipped. A class in neither ground truth nor
    prediction has IoU NaN and is left out of the mean. Returns ``mIoU``, ``per_class``
    (name → IoU; names default to "background", "1", ...), ``pixel_acc`` and ``confusion``
    (rows ground truth, columns prediction)."""
    if len(gt_maps) != len(pred_maps):
        raise ValueError(f"semantic_iou: {len(gt_maps)} ground-truth maps, {len(pred_maps)} pred")
    names = (
        list(class_names)
        if class_names is not None
        else ["background", *[str(i) for i in range(1, num_classes)]]
    )
    if len(names) != num_classes:
        raise ValueError(f"semantic_iou: {len(names)} class names for {num_classes} classes")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for g, p in zip(gt_maps, pred_maps, strict=True):
        g, p = np.asarray(g), np.asarray(p)
        if g.shape != p.shape:
            raise ValueError(f"semantic_iou: maps of shapes {g.shape} and {p.shape}")
        keep = g != ignore_index
        g, p = g[keep].astype(np.int64), p[keep].astype(np.int64)
        for what, v in (("ground truth", g), ("prediction", p)):
            if v.size and (v.min() < 0 or v.max() >= num_classes):
                raise ValueError(
                    f"semantic_iou: {what} has class {int(v.min())}..{int(v.max())}, "
                    f"expected 0..{num_classes - 1} (or {ignore_index} to ignore)"
                )
        cm += np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(cm.shape)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    valid = ~np.isnan(iou)
    return {
        "mIoU": float(iou[valid].mean()) if valid.any() else math.nan,
        "per_class": {n: float(v) for n, v in zip(names, iou, strict=True)},
        "pixel_acc": float(tp.sum() / cm.sum()) if cm.sum() else math.nan,
        "confusion": cm,
    }


# --- slices --------------------------------------------------------------------------------


def _match(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    p: Predictions,
    iou: float,
    max_dets: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval's greedy matching for one image, per class: detections by descending score
    (top ``max_dets`` per class), each takes the unmatched ground truth of best IoU ≥ ``iou``.
    Returns the kept detections' (scores, labels, is-true-positive) and per ground truth the
    score of the detection that matched it (-inf: none)."""
    import torch

    from synthcv.tasks.boxes import box_iou, xywh_to_xyxy

    gt_score = np.full(len(gt_labels), -np.inf)
    scores, labels, tps = [], [], []
    thr = min(iou, 1 - 1e-10)
    for c in np.unique(p.labels):
        d = np.flatnonzero(p.labels == c)
        d = d[np.argsort(-p.scores[d], kind="mergesort")][:max_dets]
        g = np.flatnonzero(gt_labels == c)
        tp = np.zeros(len(d), dtype=bool)
        if len(g):
            ious = box_iou(
                xywh_to_xyxy(torch.as_tensor(p.boxes[d], dtype=torch.float64)),
                xywh_to_xyxy(torch.as_tensor(gt_boxes[g], dtype=torch.float64)),
            ).numpy()
            taken = np.zeros(len(g), dtype=bool)
            for i in range(len(d)):
                row = np.where(taken, -1.0, ious[i])
                best = len(row) - 1 - int(np.argmax(row[::-1]))  # COCO: the last of equal IoUs
                if row[best] >= thr:
                    taken[best] = True
                    tp[i] = True
                    gt_score[g[best]] = p.scores[d[i]]
        scores.append(p.scores[d].astype(np.float64))
        labels.append(np.full(len(d), c, dtype=np.int64))
        tps.append(tp)
    if not scores:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool), gt_score
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(tps), gt_score


def detection_outcomes(
    gt: InstanceSet, preds: Sequence[Predictions], iou: float = 0.5, max_dets: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Every kept detection's (score, is-true-positive) over a set, matched as COCOeval matches
    at one IoU: what a detector's calibration (precision against confidence) is measured on."""
    if len(preds) != len(gt):
        raise ValueError(f"detection_outcomes: {len(preds)} predictions for {len(gt)} images")
    matches = [
        _match(t.boxes, t.labels, p, iou, max_dets) for t, p in zip(gt.targets, preds, strict=True)
    ]
    if not matches:
        return np.zeros(0), np.zeros(0, bool)
    return np.concatenate([m[0] for m in matches]), np.concatenate([m[2] for m in matches])


class _APAccumulator:
    """AP at one IoU from per-image matches, for any weighting of the images: a bootstrap
    resample is a weight (its multiplicity) per image, and a weighted sum of the detections
    sorted once is the same curve as the resample's repeated detections, so 200 resamples
    cost 200 cumulative sums instead of 200 evaluations."""

    def __init__(self, matches: list[tuple], gt_labels: list[np.ndarray], num_classes: int):
        n = len(matches)
        self.ngt = np.zeros((n, num_classes), dtype=np.float64)  # ground truth per image, class
        for i, lab in enumerate(gt_labels):
            np.add.at(self.ngt[i], lab, 1)
        self.classes = []  # per class: (image of each detection, is-tp) in COCO's order
        for c in range(num_classes):
            img = [np.full(int((m[1] == c).sum()), i) for i, m in enumerate(matches)]
            sc = [m[0][m[1] == c] for m in matches]
            tp = [m[2][m[1] == c] for m in matches]
            if sum(len(s) for s in sc):
                s_all = np.concatenate(sc)
                o = np.argsort(-s_all, kind="mergesort")  # as COCOeval.accumulate
                self.classes.append((np.concatenate(img)[o], np.concatenate(tp)[o]))
            else:
                self.classes.append((np.zeros(0, np.int64), np.zeros(0, bool)))
        self.rec_thrs = np.linspace(0.0, 1.0, 101)

    def ap(self, weights: np.ndarray) -> np.ndarray:
        """AP per weighting: ``weights`` (B, N images) → (B,), NaN where no ground truth."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        npos = w @ self.ngt  # (B, C)
        per_class = np.full(npos.shape, np.nan)
        for c, (img, tp) in enumerate(self.classes):
            has = npos[:, c] > 0
            if not has.any():
                continue
            if len(img) == 0:
                per_class[has, c] = 0.0
                continue
            dw = w[:, img]  # (B, D)
            tps = np.cumsum(dw * tp, axis=1)
            fps = np.cumsum(dw * ~tp, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                rc = tps / npos[:, c : c + 1]
            pr = tps / (tps + fps + np.spacing(1))
            env = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            q = np.zeros((len(w), len(self.rec_thrs)))
            rows = np.arange(len(w))
            for r, thr in enumerate(self.rec_thrs):
                idx = (rc < thr).sum(1)  # searchsorted(rc, thr, "left") per row
                inside = idx < rc.shape[1]
                q[inside, r] = env[rows[inside], idx[inside]]
            per_class[has, c] = q[has].mean(1)
        defined = ~np.isnan(per_class)
        count = defined.sum(1)
        total = np.where(defined, per_class, 0.0).sum(1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _object_values(gt: InstanceSet, name: str) -> np.ndarray:
    vals: list[Any] = []
    for t in gt.targets:
        if name in t.factors:
            vals.extend(np.asarray(t.factors[name]).tolist())
        else:
            vals.extend([None] * len(t))
    if any(v is None for v in vals):
        return np.array(vals, dtype=object)
    return np.asarray(vals)


def _sort_key(metric: str) -> Any:
    def key(r: dict[str, Any]) -> tuple:
        v = r[metric]
        n = r.get("n_images", r.get("n_objects", 0))
        return (math.isnan(v), v, r["recall"] if metric != "recall" else 0, -n, r["slice"])

    return key


def instance_slices(
    gt: InstanceSet,
    preds: Sequence[Predictions],
    factors: Sequence[str] | None = None,
    bins: int = 5,
    binning: Literal["quantile", "uniform"] = "quantile",
    iou: float = 0.5,
    score_threshold: float = 0.3,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    max_dets: int = 100,
) -> list[dict[str, Any]]:
    """Where detection fails, by factor, worst slice first within each factor.

    Factors are the per-image ones (``gt.factors``) and the per-object ones
    (``Instances.factors``, plus always ``class`` — the category name — and ``size`` =
    sqrt(box area) in pixels); ``factors=None`` takes them all, a name found in both is the
    per-image one. Numeric factors are binned by :func:`synthcv.tasks.slices.bin_labels`.

    A per-image slice (a subset of images) gets ``n_images``, ``n_objects``, ``ap50`` (AP at
    IoU ``iou`` over the slice's images, COCO's matching and interpolation) with a percentile
    bootstrap interval over images (``n_boot`` resamples, seeded; widened to include the
    estimate should a skewed resample distribution miss it), and ``recall``: the share of its
    ground-truth objects matched (greedily by score, as COCO) by a detection scoring at least
    ``score_threshold``, with a Wilson interval (objects counted as independent).

    A per-object slice gets ``n_objects`` and recall only: AP is not defined for a subset of
    objects (a false positive belongs to no object's slice), so its ``ap50*`` are NaN.

    Rows: ``{factor, slice, n_images | n_objects, ap50, ap50_lo, ap50_hi, recall, recall_lo,
    recall_hi}``; per-image slices are sorted by AP50, per-object ones by recall.
    """
    if len(preds) != len(gt):
        raise ValueError(f"instance_slices: {len(preds)} predictions for {len(gt)} images")
    n_img = len(gt)
    matches = [
        _match(t.boxes, t.labels, p, iou, max_dets) for t, p in zip(gt.targets, preds, strict=True)
    ]
    gt_img = np.concatenate([np.full(len(t), i) for i, t in enumerate(gt.targets)] or [[]])
    gt_img = gt_img.astype(np.int64)
    hit = np.concatenate([m[3] for m in matches] or [[]]) >= score_threshold
    obj_factors: list[str] = []
    for t in gt.targets:
        obj_factors += [k for k in t.factors if k not in obj_factors]
    obj_factors += ["class", "size"]
    names = list(gt.factors) + [f for f in obj_factors if f not in gt.factors]
    if factors is not None:
        unknown = [f for f in factors if f not in names]
        if unknown:
            raise KeyError(f"instance_slices: unknown factor(s) {unknown}; available: {names}")
        names = list(factors)
    acc = _APAccumulator(matches, [t.labels for t in gt.targets], len(gt.categories))
    rng = np.random.default_rng(seed)
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    rows: list[dict[str, Any]] = []
    for f in names:
        out: list[dict[str, Any]] = []
        if f in gt.factors:
            labels, order = bin_labels(np.asarray(gt.factors[f]), bins, binning)
            for s in order:
                imgs = np.flatnonzero(labels == s)
                if not len(imgs):
                    continue
                w = np.zeros(n_img)
                w[imgs] = 1
                ap = float(acc.ap(w)[0])
                boot = np.zeros((n_boot, n_img))
                boot[:, imgs] = rng.multinomial(
                    len(imgs), np.full(len(imgs), 1 / len(imgs)), n_boot
                )
                aps = acc.ap(boot)
                if np.isnan(aps).all():
                    lo = hi = math.nan
                else:
                    lo, hi = (float(v) for v in np.nanpercentile(aps, q))
                    lo, hi = min(lo, ap), max(hi, ap)
                objs = np.isin(gt_img, imgs)
                out.append(_row(f, s, hit[objs], level, n_images=len(imgs), ap=(ap, lo, hi)))
            out.sort(key=_sort_key("ap50"))
        else:
            if f == "class":
                v = np.array([gt.categories[int(c)] for t in gt.targets for c in t.labels])
            elif f == "size" and not any("size" in t.factors for t in gt.targets):
                v = np.concatenate(
                    [np.sqrt(t.boxes[:, 2] * t.boxes[:, 3]) for t in gt.targets] or [[]]
                )
            else:
                v = _object_values(gt, f)
            labels, order = bin_labels(v, bins, binning)
            for s in order:
                m = labels == s
                if m.any():
                    out.append(_row(f, s, hit[m], level))
            out.sort(key=_sort_key("recall"))
        rows += out
    return rows


def _row(
    factor: str,
    s: str,
    hit: np.ndarray,
    level: float,
    n_images: int | None = None,
    ap: tuple[float, float, float] = (math.nan, math.nan, math.nan),
) -> dict[str, Any]:
    n, k = len(hit), int(hit.sum())
    lo, hi = wilson(k, n, level)
    if n:  # Wilson's bounds at 0 / n can miss k/n by a rounding error
        lo, hi = min(lo, k / n), max(hi, k / n)
    row: dict[str, Any] = {"factor": factor, "slice": s}
    if n_images is not None:
        row["n_images"] = n_images
    row["n_objects"] = n
    row.update(
        {
            "ap50": ap[0],
            "ap50_lo": ap[1],
            "ap50_hi": ap[2],
            "recall": k / n if n else math.nan,
            "recall_lo": lo,
            "recall_hi": hi,
        }
    )
    return row


def semantic_slices(
    gt_maps: Sequence[np.ndarray],
    pred_maps: Sequence[np.ndarray],
    num_classes: int,
    factors: Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
    bins: int = 5,
    binning: Literal["quantile", "uniform"] = "quantile",
    n_boot: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """mIoU of the images in each slice of each per-image factor, with a 95% bootstrap interval
    over those images (per-image confusion matrices are summed, so a resample costs a sum).
    Rows ``factor, slice, n_images, miou, miou_lo, miou_hi``, worst first within a factor."""
    per_image = []
    for g, p in zip(gt_maps, pred_maps, strict=True):
        g, p = np.asarray(g).astype(np.int64).ravel(), np.asarray(p).astype(np.int64).ravel()
        per_image.append(
            np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(
                num_classes, num_classes
            )
        )
    cms = np.stack(per_image) if per_image else np.zeros((0, num_classes, num_classes), np.int64)

    def miou(cm: np.ndarray) -> float:
        tp = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - tp
        valid = union > 0
        return float((tp[valid] / union[valid]).mean()) if valid.any() else math.nan

    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for f in names if names is not None else sorted(factors):
        if f not in factors:
            raise KeyError(f"semantic_slices: unknown factor {f!r}; available: {sorted(factors)}")
        labels, order = bin_labels(np.asarray(factors[f]), bins, binning)
        block = []
        for s in order:
            idx = np.flatnonzero(labels == s)
            if not len(idx):
                continue
            point = miou(cms[idx].sum(0))
            boots = [miou(cms[rng.choice(idx, len(idx))].sum(0)) for _ in range(n_boot)]
            lo, hi = np.nanpercentile(boots, [2.5, 97.5]) if boots else (point, point)
            block.append(
                {
                    "factor": f,
                    "slice": s,
                    "n_images": len(idx),
                    "miou": point,
                    "miou_lo": float(min(lo, point)),
                    "miou_hi": float(max(hi, point)),
                }
            )
        rows.extend(sorted(block, key=lambda r: np.nan_to_num(r["miou"], nan=-1.0)))
    return rows
