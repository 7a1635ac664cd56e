"""Detection, segmentation and keypoint sources as :class:`~synthcv.tasks.instances.InstanceSet`.

Two readers and one writer:

- :func:`load_coco` reads a COCO-format dataset (an image directory and an annotations JSON),
  validated strictly: every problem is listed with the file and the field path
  (``ann.json: annotations[3].bbox: got [1, 2, 3], expected 4 numbers [x, y, w, h]``) in one
  :class:`CocoFormatError` (a ``ValueError``: the command line reports it with exit code 2);
- :func:`load_synthcv` reads a synthcv dataset directory through the same path (its COCO dict
  comes from :func:`synthcv.tools.coco.build_coco`), with the dataset's factors;
- :func:`to_coco_files` writes any InstanceSet as COCO (PNG images + ``annotations.json``), so
  anything can be exported and read back.

Rules (the same for both readers):

- ``iscrowd: 1`` annotations are dropped (a crowd region is not an object to detect);
- segmentation may be polygons, RLE (compressed ``counts`` string or uncompressed list) or
  absent: masks are present when every kept annotation has one, ``None`` for the whole set when
  none has (a set with some masks missing is an error);
- keypoints: a category's ``keypoints`` names give its K; an annotation's ``keypoints`` must then
  hold 3K numbers (missing = all unlabelled); K of the set is the largest K, shorter categories
  are padded with unlabelled points; no keypoint names anywhere → keypoints ``None``;
- images are decoded with PIL to RGB uint8 (grayscale files become 3 channels, so sources mix);
- classes: ``label_map`` {source name: target name or null} renames, merges (two names to one)
  or drops (null) classes first — the label gap between a generator's classes and a real
  dataset's; then indexes follow ``categories`` if given (the model's class list; a name that is
  not in it is an error: map it or drop it), else the source's categories sorted by id;
- factors: per object ``area``, ``visibility`` when present and every other scalar annotation
  key; per image every scalar key of the image entry beyond its ``id``, ``file_name``,
  ``width``, ``height`` (and COCO's ``license``, ``coco_url``, ``flickr_url``,
  ``date_captured``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import atomic_dir, sha256_file, sha256_text, write_json_atomic
from synthcv.tasks.instances import Instances, InstanceSet
from synthcv.validation import short_value

__all__ = ["CocoFormatError", "load_coco", "load_synthcv", "to_coco_files"]

MAX_LISTED = 20
_TOP_KEYS = ("images", "annotations", "categories")
_IMAGE_NOT_FACTORS = {
    "id",
    "file_name",
    "width",
    "height",
    "license",
    "coco_url",
    "flickr_url",
    "date_captured",
}
_ANN_NOT_FACTORS = {
    "id",
    "image_id",
    "category_id",
    "bbox",
    "segmentation",
    "keypoints",
    "num_keypoints",
    "iscrowd",
}


class CocoFormatError(ValueError):
    """A COCO annotation file failed validation; ``problems`` lists every problem as
    ``FILE: field.path: what``, the message the first :data:`MAX_LISTED` of them."""

    def __init__(self, problems: list[str], source: str = "annotations") -> None:
        self.problems = list(problems)
        self.source = source
        shown = self.problems[:MAX_LISTED]
        lines = [f"  {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  and {len(self.problems) - len(shown)} more")
        n = len(self.problems)
        super().__init__(
            f"{source}: {n} problem{'s' if n != 1 else ''} in the COCO data\n" + "\n".join(lines)
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.problems, self.source)


# ---------------------------------------------------------------------------------- helpers


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _is_scalar(v: Any) -> bool:
    return isinstance(v, str | bool) or _is_num(v)


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, detail: str) -> None:
        self.items.append(f"{self.source}: {path}: {detail}")

    def got(self, path: str, value: Any, expected: str) -> None:
        self.add(path, f"got {short_value(value)}, expected {expected}")

    def raise_if_any(self) -> None:
        if self.items:
            raise CocoFormatError(self.items, self.source)


def _factor_array(values: list[Any], kind: str) -> np.ndarray:
    if kind == "int":
        return np.array(values, dtype=np.int64)
    if kind == "float":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if kind == "bool":
        return np.array(values, dtype=bool)
    if kind == "str":
        return np.array(["" if v is None else v for v in values], dtype=str)
    return np.array(values, dtype=object)


def _factor_kind(values: list[Any]) -> str:
    """How a factor is stored, from all its values in the set (``None`` = missing)."""
    present = [v for v in values if v is not None]
    missing = len(present) < len(values)
    if present and all(isinstance(v, bool) for v in present):
        return "object" if missing else "bool"
    if present and all(_is_num(v) for v in present):
        return "int" if all(_is_int(v) for v in present) and not missing else "float"
    if present and all(isinstance(v, str) for v in present):
        return "str"
    return "object"


def _decode_segmentation(seg: Any, h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):  # polygons
        rles = mask_utils.frPyObjects([[float(v) for v in p] for p in seg], h, w)
        rle = mask_utils.merge(rles)
    elif isinstance(seg["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = {"size": [h, w], "counts": seg["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def _check_segmentation(seg: Any, path: str, h: int | None, w: int | None, p: _Problems) -> bool:
    """Whether ``seg`` is a usable polygon list or RLE (problems reported otherwise)."""
    if isinstance(seg, list):
        if not seg:
            p.got(path, seg, "a list of polygons [[x1, y1, x2, y2, ...], ...] or an RLE dict")
            return False
        ok = True
        for k, poly in enumerate(seg):
            if (
                not isinstance(poly, list)
                or len(poly) < 6
                or len(poly) % 2
                or not all(_is_num(v) for v in poly)
            ):
                p.got(f"{path}[{k}]", poly, "a polygon: an even number (≥ 6) of x, y numbers")
                ok = False
        return ok
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            p.got(f"{path}.size", size, "[height, width] of the image")
            return False
        if h is not None and w is not None and list(size) != [h, w]:
            p.got(f"{path}.size", size, f"the image's [height, width] [{h}, {w}]")
            return False
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                p.got(f"{path}.counts", counts, "run lengths (non-negative integers)")
                return False
            if sum(counts) != size[0] * size[1]:
                p.add(
                    f"{path}.counts",
                    f"run lengths add up to {sum(counts)}, expected height × width = "
                    f"{size[0] * size[1]}",
                )
                return False
            return True
        if isinstance(counts, str):
            try:
                _decode_segmentation(seg, size[0], size[1])
            except Exception as exc:  # pycocotools raises plain errors on bad strings
                p.add(f"{path}.counts", f"not a valid compressed RLE string ({exc})")
                return False
            return True
        p.got(f"{path}.counts", counts, "a compressed RLE string or a list of run lengths")
        return False
    p.got(path, seg, "a list of polygons or an RLE dict {size, counts}")
    return False


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


# ---------------------------------------------------------------------------- conversion


def _convert(
    data: Any,
    images_dir: Path,
    source: str,
    *,
    name: str,
    digest: str | None,
    label_map: dict[str, str | None] | None,
    categories: Sequence[str] | None,
) -> InstanceSet:
    """Validate a COCO dict and turn it into an InstanceSet (``digest`` None: hash the files)."""
    p = _Problems(source)
    if not isinstance(data, dict):
        p.got(
            "(top level)", type(data).__name__, "a JSON object with images, annotations, categories"
        )
        p.raise_if_any()
    missing = [k for k in _TOP_KEYS if k not in data]
    if missing:
        p.add("(top level)", f"missing key(s) {', '.join(missing)} (a COCO file has {_TOP_KEYS})")
    for k in _TOP_KEYS:
        if k in data and not isinstance(data[k], list):
            p.got(k, type(data[k]).__name__, "a list")
    p.raise_if_any()

    # -- categories
    cats: dict[int, dict[str, Any]] = {}
    names_seen: set[str] = set()
    for i, c in enumerate(data["categories"]):
        at = f"categories[{i}]"
        if not isinstance(c, dict):
            p.got(at, c, "an object {id, name}")
            continue
        cid, cname = c.get("id"), c.get("name")
        if not _is_int(cid):
            p.got(f"{at}.id", cid, "an integer")
        elif cid in cats:
            p.add(f"{at}.id", f"duplicate category id {cid}")
        if not isinstance(cname, str) or not cname:
            p.got(f"{at}.name", cname, "a non-empty string")
        elif cname in names_seen:
            p.add(f"{at}.name", f"duplicate category name {cname!r}")
        kps = c.get("keypoints", [])
        if kps is None:
            kps = []
        if not isinstance(kps, list) or not all(isinstance(k, str) for k in kps):
            p.got(f"{at}.keypoints", kps, "a list of keypoint names")
            kps = []
        if _is_int(cid) and isinstance(cname, str) and cname and cid not in cats:
            names_seen.add(cname)
            cats[cid] = {"name": cname, "keypoints": list(kps), "at": at}

    # -- label map and the target class list
    label_map = dict(label_map or {})
    source_names = [cats[k]["name"] for k in sorted(cats)]
    for src, dst in label_map.items():
        if src not in names_seen:
            p.add(
                f"label_map[{src!r}]",
                f"no category named {src!r} (categories: {', '.join(map(repr, source_names))})",
            )
        if dst is not None and (not isinstance(dst, str) or not dst):
            p.got(f"label_map[{src!r}]", dst, "a class name or null (drop the class)")
    target_of = {cid: label_map.get(c["name"], c["name"]) for cid, c in cats.items()}
    if categories is not None:
        classes = list(categories)
        if len(set(classes)) != len(classes):
            raise ValueError(f"categories: duplicate names in {classes}")
        unknown = sorted({t for t in target_of.values() if t is not None and t not in set(classes)})
        for t in unknown:
            p.add(
                "categories",
                f"class {t!r} is not one of the requested categories {classes}; map it "
                "(label_map: {"
                + f"{t!r}: <a class>"
                + "}) or drop it (label_map: {"
                + f"{t!r}"
                + ": null})",
            )
    else:
        classes = []
        for cid in sorted(cats):
            t = target_of[cid]
            if t is not None and t not in classes:
                classes.append(t)
    index_of = {c: i for i, c in enumerate(classes)}
    keypoint_names: dict[str, list[str]] = {}
    for cid in sorted(cats):
        t, kps = target_of[cid], cats[cid]["keypoints"]
        if t is None or not kps:
            continue
        if t in keypoint_names and keypoint_names[t] != kps:
            p.add(
                f"{cats[cid]['at']}.keypoints",
                f"{cats[cid]['name']!r} is merged into {t!r}, whose keypoints differ "
                f"({keypoint_names[t]} vs {kps})",
            )
        keypoint_names.setdefault(t, kps)
    num_k = max((len(v) for v in keypoint_names.values()), default=0)

    # -- images
    images_meta: list[dict[str, Any]] = []
    pos_of: dict[int, int] = {}
    for i, im in enumerate(data["images"]):
        at = f"images[{i}]"
        if not isinstance(im, dict):
            p.got(at, im, "an object {id, file_name, width, height}")
            continue
        iid, fname = im.get("id"), im.get("file_name")
        ok = True
        if not _is_int(iid):
            p.got(f"{at}.id", iid, "an integer")
            ok = False
        elif iid in pos_of:
            p.add(f"{at}.id", f"duplicate image id {iid}")
            ok = False
        for k in ("width", "height"):
            if k in im and not (_is_int(im[k]) and im[k] > 0):
                p.got(f"{at}.{k}", im[k], "a positive integer")
                ok = False
        if not isinstance(fname, str) or not fname:
            p.got(f"{at}.file_name", fname, "a file name relative to the image directory")
            ok = False
        elif not (images_dir / fname).is_file():
            p.add(f"{at}.file_name", f"file not found: {images_dir / fname}")
            ok = False
        if ok:
            pos_of[iid] = len(images_meta)
            images_meta.append({**im, "at": at})

    # -- annotations
    all_ids = {im.get("id") for im in data["images"] if isinstance(im, dict)}
    per_image: list[list[dict[str, Any]]] = [[] for _ in images_meta]
    for i, a in enumerate(data["annotations"]):
        at = f"annotations[{i}]"
        if not isinstance(a, dict):
            p.got(at, a, "an object {id, image_id, category_id, bbox, ...}")
            continue
        ok = True
        iid, cid = a.get("image_id"), a.get("category_id")
        if not _is_int(iid) or iid not in pos_of:
            if _is_int(iid) and iid in all_ids:
                ok = False  # its image has a problem of its own, reported there
            else:
                p.got(f"{at}.image_id", iid, "the id of an entry of images")
                ok = False
        if not _is_int(cid) or cid not in cats:
            p.got(f"{at}.category_id", cid, f"one of the category ids {sorted(cats)}")
            ok = False
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            p.got(f"{at}.iscrowd", crowd, "0 or 1")
            ok = False
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
            p.got(f"{at}.bbox", bbox, "4 numbers [x, y, w, h]")
            ok = False
        elif bbox[2] < 0 or bbox[3] < 0:
            p.got(f"{at}.bbox", bbox, "a width and height ≥ 0 ([x, y, w, h])")
            ok = False
        if crowd == 1:
            continue  # dropped; its other fields need not be checked
        im = images_meta[pos_of[iid]] if ok else None
        h, w = (im.get("height"), im.get("width")) if im is not None else (None, None)
        seg = a.get("segmentation")
        if seg is not None and not _check_segmentation(seg, f"{at}.segmentation", h, w, p):
            ok = False
        kps = a.get("keypoints")
        if kps is not None and _is_int(cid) and cid in cats:
            want = 3 * len(cats[cid]["keypoints"])
            if not isinstance(kps, list) or not all(_is_num(v) for v in kps):
                p.got(f"{at}.keypoints", kps, "a list of numbers x1, y1, v1, x2, ...")
                ok = False
            elif len(kps) % 3:
                p.add(
                    f"{at}.keypoints",
                    f"{len(kps)} numbers, not a multiple of 3 (x, y, v per keypoint)",
                )
                ok = False
            elif len(kps) not in (0, want):  # [] = no keypoints labelled
                p.add(
                    f"{at}.keypoints",
                    f"{len(kps)} numbers, expected {want} (3 × the {want // 3} keypoints of "
                    f"category {cats[cid]['name']!r})",
                )
                ok = False
            elif any(kps[k] not in (0, 1, 2) for k in range(2, len(kps), 3)):
                p.add(f"{at}.keypoints", "visibility flags (every third number) must be 0, 1 or 2")
                ok = False
        if ok and target_of[cid] is not None:
            per_image[pos_of[iid]].append({**a, "at": at})
    p.raise_if_any()

    kept = [a for anns in per_image for a in anns]
    with_seg = [a for a in kept if a.get("segmentation") is not None]
    has_masks = bool(with_seg)
    if has_masks and len(with_seg) < len(kept):
        a = next(a for a in kept if a.get("segmentation") is None)
        p.add(
            f"{a['at']}.segmentation",
            f"missing, but {len(with_seg)} other annotation(s) have one (masks are all or none)",
        )
        p.raise_if_any()

    # -- images, and their sizes against the entries
    images: list[np.ndarray] = []
    for im in images_meta:
        path = images_dir / im["file_name"]
        try:
            arr = _read_rgb(path)
        except Exception as exc:
            p.add(f"{im['at']}.file_name", f"not a readable image: {path} ({exc})")
            images.append(np.zeros((1, 1, 3), np.uint8))
            continue
        for k, got in (("height", arr.shape[0]), ("width", arr.shape[1])):
            if k in im and im[k] != got:
                p.add(f"{im['at']}.{k}", f"got {im[k]}, but {path} is {got} pixels")
        images.append(arr)
    p.raise_if_any()

    # -- factors, typed over the whole set
    obj_keys = sorted(
        {k for a in kept for k, v in a.items() if k not in _ANN_NOT_FACTORS and _is_scalar(v)}
        - {"at"}
    )
    obj_kind = {k: _factor_kind([a.get(k) for a in kept]) for k in obj_keys}
    img_keys = sorted(
        {
            k
            for im in images_meta
            for k, v in im.items()
            if k not in _IMAGE_NOT_FACTORS and k != "at" and _is_scalar(v)
        }
    )
    img_factors = {
        k: _factor_array(
            [im.get(k) for im in images_meta], _factor_kind([im.get(k) for im in images_meta])
        )
        for k in img_keys
    }

    targets: list[Instances] = []
    for img, anns in zip(images, per_image, strict=True):
        h, w = img.shape[:2]
        m = len(anns)
        boxes = np.array([a["bbox"] for a in anns], np.float32).reshape(m, 4)
        labels = np.array([index_of[target_of[a["category_id"]]] for a in anns], np.int64)
        masks = None
        if has_masks:
            masks = np.zeros((m, h, w), bool)
            for j, a in enumerate(anns):
                masks[j] = _decode_segmentation(a["segmentation"], h, w)
        keypoints = None
        if num_k:
            keypoints = np.zeros((m, num_k, 3), np.float32)
            for j, a in enumerate(anns):
                kp = a.get("keypoints") or []
                if kp:
                    keypoints[j, : len(kp) // 3] = np.asarray(kp, np.float32).reshape(-1, 3)
        factors = {k: _factor_array([a.get(k) for a in anns], obj_kind[k]) for k in obj_keys}
        targets.append(Instances(boxes, labels, masks, keypoints, factors))

    if digest is None:
        lines = [f"annotations {sha256_file(source)}"]
        lines += [
            f"{im['file_name']} {sha256_file(images_dir / im['file_name'])}" for im in images_meta
        ]
        digest = sha256_text("\n".join(lines))
    return InstanceSet(
        images=images,
        targets=targets,
        categories=classes,
        name=name,
        digest=digest,
        image_ids=np.array([im["id"] for im in images_meta], np.int64),
        keypoint_names=keypoint_names,
        factors=img_factors,
    )


# ---------------------------------------------------------------------------------- public


def load_coco(
    images: str | os.PathLike[str],
    annotations: str | os.PathLike[str],
    name: str = "coco",
    label_map: dict[str, str | None] | None = None,
    categories: Sequence[str] | None = None,
) -> InstanceSet:
    """A COCO-format dataset as an InstanceSet (rules: module docstring).

    ``images`` is the directory ``file_name`` is relative to, ``annotations`` the JSON file.
    ``digest`` is the sha256 over the annotations file and every image file.
    Raises :class:`CocoFormatError` listing every problem, ``FileNotFoundError`` for a missing
    file or directory.
    """
    images_dir, ann = Path(images), Path(annotations)
    if not ann.is_file():
        raise FileNotFoundError(f"COCO annotations file not found: {ann}")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"COCO image directory not found: {images_dir}")
    try:
        data = json.loads(ann.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CocoFormatError([f"{ann}: not UTF-8 text ({exc.reason})"], str(ann)) from None
    except json.JSONDecodeError as exc:
        raise CocoFormatError(
            [f"{ann}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"],
            str(ann),
        ) from None
    return _convert(
        data,
        images_dir,
        str(ann),
        name=name,
        digest=None,
        label_map=label_map,
        categories=categories,
    )


def load_synthcv(
    path: str | os.PathLike[str],
    name: str | None = None,
    label_map: dict[str, str | None] | None = None,
    categories: Sequence[str] | None = None,
) -> InstanceSet:
    """A synthcv dataset directory as an InstanceSet.

    The objects are those :func:`~synthcv.tools.coco.build_coco` exports (non-distractors with a
    visible pixel: modal box, instance mask, keypoints); class names come from the manifest.
    Per-image factors: every scalar ``samples.parquet`` column (camera, lights, ...); per-object
    factors: every scalar ``objects.parquet`` column of the kept objects (``visibility``,
    ``scale``, ``class_name``, ``glyph.font``, ...) plus ``area``. ``digest`` is the dataset's
    content digest; ``name`` defaults to the directory name.
    """
    from synthcv.format import content_digest, open_dataset
    from synthcv.tasks.data import object_factor_columns, sample_factor_columns
    from synthcv.tools.coco import build_coco

    ds = open_dataset(path)
    data = build_coco(ds)
    # a room's stuff classes (floor, wall, ...) have no instances: not detection classes
    data["categories"] = [c for c in data["categories"] if c.get("isthing", 1) != 0]
    sample_cols = sample_factor_columns(ds)  # the same factors as classification's
    sample_values = ds.samples.select(sample_cols).to_pydict()
    for j, im in enumerate(data["images"]):
        for c in sample_cols:
            im.setdefault(c, sample_values[c][j])
    obj_cols = object_factor_columns(ds)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    if obj_cols:
        cols = ds.objects.select(["sample_index", "instance_id", *obj_cols]).to_pydict()
        for r in range(len(ds.objects)):
            key = (int(cols["sample_index"][r]), int(cols["instance_id"][r]))
            rows[key] = {c: cols[c][r] for c in obj_cols}
    for a in data["annotations"]:
        for c, v in rows.get((a["image_id"], a["instance_id"]), {}).items():
            a.setdefault(c, v)
        a.pop("instance_id", None)  # an identifier, not a factor
    return _convert(
        data,
        ds.root,
        str(ds.root),
        name=name or ds.root.name,
        digest=content_digest(ds.root),
        label_map=label_map,
        categories=categories,
    )


def _scalar(v: Any) -> Any:
    v = v.item() if isinstance(v, np.generic) else v
    return None if isinstance(v, float) and not math.isfinite(v) else v  # missing


def to_coco_files(instance_set: InstanceSet, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``instance_set`` as COCO: ``images/<image id, 6 digits>.png`` and
    ``annotations.json`` (``file_name`` relative to ``out_dir``), published whole.

    Masks become compressed RLE, factors become extra keys of the image and annotation entries,
    so :func:`load_coco` (``images=out_dir``) reads back the same boxes, labels, masks,
    keypoints and factors. ``out_dir`` must not exist or be empty.
    """
    from synthcv.format.codecs import write_png

    data = instance_set.to_coco()
    assert instance_set.image_ids is not None
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        for i, (img, t) in enumerate(zip(instance_set.images, instance_set.targets, strict=True)):
            entry = data["images"][i]
            rel = f"images/{int(instance_set.image_ids[i]):06d}.png"
            entry["file_name"] = rel
            for k, v in instance_set.factors.items():
                if k not in entry:
                    entry[k] = _scalar(v[i])
            arr = img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img
            write_png(tmp / rel, np.ascontiguousarray(arr))
            for j, a in enumerate(by_image.get(int(instance_set.image_ids[i]), [])):
                for k, v in t.factors.items():
                    if k not in ("id", "image_id", "category_id", "bbox", "segmentation"):
                        a[k] = _scalar(v[j])
        write_json_atomic(tmp / "annotations.json", data, indent=None)
    return out
