"""Data sources for the harness, by name or path, all loaded into one in-memory form.

Every source — the real digits, a synthcv dataset directory, a generated-samples ``.npz`` —
becomes an :class:`ArraySet`: uint8 images, int64 labels, per-sample factors (for slicing) and
the content hash of the file(s) it came from (for lineage). Small classification datasets fit in
memory, and a single representation keeps every recipe source-agnostic.

Source specs (YAML or dict)::

    {kind: mnist, split: train|test|all, path: null}
    {kind: dataset, path: out/digits, match_domain: mnist, fill: mask, augment: [...], copies: 1}
    {kind: dataset, path: out/pairs, modality: clean}  # the pre-sensor half of outputs.pairs
    {kind: samples, path: samples.npz}
    {kind: coco, images: DIR, annotations: FILE.json, label_map: {...}}  # instance tasks
    # any kind: n: 100 (class-balanced subset, drawn per seed), classes: [0, 1] (keep only these),
    # part: train|val with val_fraction: 0.1 (a fixed split carved for tuning)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synthcv.format.layout import OBJECT_ID_COLUMNS, SAMPLE_ID_COLUMNS
from synthcv.targets import label_space_by_name, target_object
from synthcv.tasks.domain import MatchDomain


@dataclass
class ArraySet:
    """Images (N, H, W) or (N, H, W, C) uint8, labels (N,) int64, factors name → (N,) array."""

    images: np.ndarray
    labels: np.ndarray
    name: str = "data"
    digest: str = ""
    factors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"{self.name}: {len(self.images)} images but {len(self.labels)} labels"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64)
        for k, v in self.factors.items():
            if len(v) != len(self.labels):
                raise ValueError(f"{self.name}: factor {k!r} has {len(v)} values, want {len(self)}")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray, name: str | None = None) -> ArraySet:
        idx = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            name=name or self.name,
            factors={k: v[idx] for k, v in self.factors.items()},
        )


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` samples with classes as equal as possible, drawn with ``seed``.

    A 100-sample MNIST subset with 4 sevens and 16 ones would measure the draw, not the
    recipe; balancing removes that variance. Sorted, so order does not depend on the draw.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    per = {c: 0 for c in classes}
    left = n
    # Round-robin over classes in a seeded order until n are taken or pools run dry.
    order = list(rng.permutation(classes))
    while left > 0:
        progressed = False
        for c in order:
            if left == 0:
                break
            if per[c] < len(pools[c]):
                per[c] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return np.sort(np.concatenate([pools[c][: per[c]] for c in classes]))


class SourceSpec(BaseModel):
    """One data source; see the module docstring for the forms."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mnist", "dataset", "samples", "coco"]
    path: str | None = None
    images: str | None = None  # coco: the image directory
    annotations: str | None = None  # coco: the annotation file
    label_map: dict[str, str | None] | None = None  # instance tasks: rename / merge / drop
    part: Literal["train", "val"] | None = None  # a fixed validation split of the source
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    split: Literal["train", "test", "all"] = "all"
    n: int | None = Field(default=None, ge=1)
    classes: list[int] | None = None
    match_domain: Literal["mnist"] | None = "mnist"
    fill: Literal["mask", "intensity"] = "mask"
    invert: bool = False
    # dataset: which image to read; "clean" is the pre-sensor half of outputs.pairs
    modality: Literal["rgb", "clean"] = "rgb"
    augment: list[dict[str, Any]] = Field(default_factory=list)
    copies: int = Field(default=1, ge=1)
    augment_seed: int = 0


_SKIP_OBJECT_COLUMNS = OBJECT_ID_COLUMNS
#: Identifiers and file paths of samples.parquet: not factors.
_NOT_SAMPLE_FACTORS = SAMPLE_ID_COLUMNS


def sample_factor_columns(ds: Any) -> list[str]:
    """The samples.parquet columns that are per-sample factors (scalar, not ids or paths)."""
    return [
        c
        for c in ds.samples.column_names
        if c not in _NOT_SAMPLE_FACTORS and _scalar_type(ds.samples.schema.field(c).type)
    ]


def object_factor_columns(ds: Any) -> list[str]:
    """The objects.parquet columns that are per-object factors (scalar, not ids)."""
    return [
        c
        for c in ds.objects.column_names
        if c not in _SKIP_OBJECT_COLUMNS and _scalar_type(ds.objects.schema.field(c).type)
    ]


def load_synthcv_dataset(
    path: str | Path,
    match: MatchDomain | None = MatchDomain(),
    augment: list[dict[str, Any]] | None = None,
    copies: int = 1,
    augment_seed: int = 0,
    progress: bool = True,
    modality: str = "rgb",
    positions: Sequence[int] | None = None,
) -> ArraySet:
    """A synthcv dataset directory as an ArraySet for classification.

    Each sample is labelled by its target object (largest visible non-distractor); samples
    with none are dropped. ``match`` frames it like the real data (None keeps the full image,
    as grayscale if the dataset is). ``augment`` ops (see :mod:`synthcv.augment`) run on the
    full labelled sample *before* framing, ``copies`` times per sample with independent draws.
    ``modality="clean"`` reads the image before the sensor (datasets with ``outputs.pairs``).
    Factors: every scalar samples.parquet column plus the target object's scalar attributes
    (prefixed ``object.`` when a sample column has the same name). ``positions`` (rows of
    samples.parquet, in the order wanted) reads only those samples' images: a subset of a
    large dataset costs its own size, not the dataset's.
    """
    from synthcv.augment.ops import build_pipeline
    from synthcv.format import content_digest, open_dataset
    from synthcv.format.codecs import read_depth, read_png

    ds = open_dataset(path)
    label_of = label_space_by_name(ds.classes)
    pipeline = build_pipeline(augment or []) if augment else None
    need_depth = pipeline is not None and pipeline.needs_depth
    images, labels, rows = [], [], []
    sample_cols = sample_factor_columns(ds)
    sample_ids = ds.samples.column("sample_index").to_numpy()
    it: Any = range(len(ds)) if positions is None else [int(i) for i in positions]
    if progress and len(it) > 200:
        from rich.progress import track

        it = track(it, description=f"loading {Path(path).name}", transient=True)
    for i in it:
        objects = ds.objects_of(i)
        tgt = target_object(objects)
        if tgt is None:
            continue
        rgb_p, inst_p = ds.path(i, modality), ds.path(i, "instance")
        if rgb_p is None or inst_p is None:
            hint = " (generate with outputs: {pairs: true})" if modality == "clean" else ""
            raise ValueError(
                f"{path}: sample {i} lacks {modality} or instance images (needed here){hint}"
            )
        rgb = read_png(rgb_p)
        inst = read_png(inst_p, expect_uint16=True)
        for c in range(copies):
            img = rgb
            realized: dict[str, Any] = {}
            if pipeline is not None:
                dp = ds.path(i, "depth")
                sample = {
                    "rgb": rgb,
                    "instance": inst,
                    "depth": read_depth(dp) if (need_depth and dp is not None) else None,
                    "objects": objects,
                    "classes": ds.classes,
                }
                rng = np.random.default_rng([augment_seed, int(sample_ids[i]), c])
                img, realized = pipeline(sample, rng)
            if match is not None:
                img = match(img, inst == int(tgt["instance_id"]))
            elif img.ndim == 3 and img.shape[2] == 1:
                img = img[..., 0]
            images.append(img)
            labels.append(label_of[int(tgt["class_id"])])
            rows.append((i, tgt, realized))
    if not images:
        raise ValueError(f"{path}: no sample has a visible labelled object")
    factors: dict[str, np.ndarray] = {}
    pos = np.array([r[0] for r in rows])
    for c in sample_cols:
        factors[c] = np.asarray(ds.samples.column(c).to_numpy(zero_copy_only=False))[pos]
    for c in object_factor_columns(ds):
        key = f"object.{c}" if c in factors else c
        factors[key] = np.array([r[1].get(c) for r in rows])
    for k in sorted({k for r in rows for k in r[2]}):
        factors[k] = np.array([r[2].get(k) for r in rows])
    return ArraySet(
        images=np.stack(images),
        labels=np.array(labels, dtype=np.int64),
        name=Path(path).name,
        digest=content_digest(path),
        factors=factors,
    )


def _scalar_type(t: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_large_string(t)
    )


def load_samples_npz(path: str | Path) -> ArraySet:
    """A generated-samples file (``synthcv genmodel sample --out x.npz``): images + labels."""
    from synthcv.fileio import read_images_npz
    from synthcv.format import content_digest

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"samples file not found: {p}")
    images, labels = read_images_npz(p, labels_required=True)
    assert labels is not None
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"{p}: labels < 0 mark unconditional samples; a classifier needs class-conditional "
            "samples (train the generative model with --conditional)"
        )
    return ArraySet(images, labels, name=p.stem, digest=content_digest(p))


def load_source(spec: SourceSpec | dict[str, Any], seed: int = 0, name: str = "") -> ArraySet:
    """Load one source; ``n`` subsets are class-balanced and drawn from ``seed``."""
    if isinstance(spec, dict):
        spec = SourceSpec.model_validate(spec)
    return select(load_full(spec, name), spec, seed)


def load_full(spec: SourceSpec, name: str = "") -> ArraySet:
    """Everything a source holds, before ``classes``/``n`` selection (cacheable across seeds)."""
    if spec.kind == "mnist":
        from synthcv.format import content_digest
        from synthcv.realdata import find_mnist8000, load_mnist8000

        x, y = load_mnist8000(spec.split, spec.path)
        data = ArraySet(
            x,
            y,
            name=name or f"mnist-{spec.split}",
            digest=content_digest(find_mnist8000(spec.path)),
        )
    elif spec.kind == "dataset":
        if not spec.path:
            raise ValueError(f"source {name!r}: kind 'dataset' needs a path")
        match = (
            MatchDomain(fill=spec.fill, invert=spec.invert)
            if spec.match_domain == "mnist"
            else None
        )
        data = load_synthcv_dataset(
            spec.path,
            match,
            spec.augment,
            spec.copies,
            spec.augment_seed,
            modality=spec.modality,
        )
    elif spec.kind == "coco":
        raise ValueError(
            f"source {name!r}: kind 'coco' holds boxes and masks, not one label per image; use "
            "it with tasks: [detection, ...]"
        )
    else:
        if not spec.path:
            raise ValueError(f"source {name!r}: kind 'samples' needs a path")
        data = load_samples_npz(spec.path)
    if name:
        data.name = name
    return data


def select(data: ArraySet, spec: SourceSpec, seed: int) -> ArraySet:
    """Apply a source's ``classes`` filter and seeded class-balanced ``n`` subset."""
    name = data.name
    if spec.classes is not None:
        data = data.take(np.flatnonzero(np.isin(data.labels, spec.classes)))
    if spec.n is not None:
        if spec.n > len(data):
            raise ValueError(
                f"source {name or data.name!r}: n={spec.n} but only {len(data)} samples"
            )
        data = data.take(balanced_subset(data.labels, spec.n, seed))
    return data
