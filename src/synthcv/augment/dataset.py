"""``synthcv augment DIR --out DIR2``: a new dataset whose images are augmented copies.

The child is a complete dataset in the same format (docs/FORMAT.md), written through the same
writer as ``synthcv generate`` (:mod:`synthcv.format.writer`): same samples, same labels
(augmentations change only RGB), every other file copied byte for byte, realized augmentation
parameters added as ``augment.*`` columns of samples.parquet (so results can be sliced by them),
and a manifest that records its parent (path, spec_hash, manifest sha256) and the augmentation
config. Sample i uses ``Generator([seed, sample_index])``, so output does not depend on the
order of work, and an interrupted run resumes where it stopped (finished shards are kept).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthcv.augment.ops import build_pipeline
from synthcv.fileio import sha256_file, sha256_text
from synthcv.format import Dataset, layout, open_dataset
from synthcv.format.codecs import read_depth, read_png
from synthcv.format.reader import upgrade_samples
from synthcv.format.writer import (
    ShardWriter,
    claim_output,
    unfinished_shards,
    write_manifest,
)
from synthcv.interrupts import InterruptGuard, interruption_point


def augment_dataset(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    ops: list[dict[str, Any]],
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the augmented child of dataset ``src`` to ``out``; returns ``out``.

    Raises FileExistsError if ``out`` already holds a complete dataset (``overwrite`` replaces
    it), :class:`synthcv.format.writer.OutputError` if it holds another run's partial output.
    """
    src, out = Path(src), Path(out)
    parent = open_dataset(src)
    pipeline = build_pipeline(ops)
    if out.resolve() == src.resolve():
        raise ValueError(f"augment: --out must differ from the input dataset ({src})")
    if (out / layout.MANIFEST).exists() and not overwrite:
        raise FileExistsError(f"{out}: a dataset already exists here (pass --overwrite)")
    parent_sha = sha256_file(src / layout.MANIFEST)
    run = {
        "parent_manifest_sha256": parent_sha,
        "ops_sha256": sha256_text(json.dumps(ops, sort_keys=True, default=str)),
        "seed": seed,
    }
    shards = _parent_shards(parent)  # a damaged parent fails before --out is touched
    index = parent.samples.column("sample_index").to_pylist()
    positions = {int(v): j for j, v in enumerate(index)}  # sample index -> dataset position
    sizes = Counter(str(s) for s in parent.samples.column("shard").to_pylist())
    # its own guard, so a library call (no CLI around it) does not lose a swallowed Ctrl-C either
    with InterruptGuard(), claim_output(out, run, overwrite):
        todo = set(unfinished_shards(out, len(shards)))
        with _progress(progress, f"augmenting {src.name}", len(parent)) as advance:
            for k, shard_rel in enumerate(shards):
                if k in todo:
                    _augment_shard(parent, positions, shard_rel, out, k, pipeline, seed, advance)
                else:
                    advance(sizes[shard_rel])
        fields = {k: v for k, v in parent.manifest.items() if k not in _FORMAT_KEYS}
        fields["parent"] = {
            "path": str(src.resolve()),
            "spec_hash": parent.manifest.get("spec_hash"),
            "manifest_sha256": parent_sha,
        }
        fields["augment"] = {"ops": ops, "seed": seed}
        interruption_point()  # never a manifest after an interrupt
        write_manifest(out, fields, len(shards))
    return out


#: Manifest keys the format writes itself (never copied from the parent).
_FORMAT_KEYS = {"format_version", "synthcv_version", "num_shards", "files", "depth", "normals"}


def _augment_shard(
    parent: Dataset,
    positions: dict[int, int],
    shard_rel: str,
    out: Path,
    k: int,
    pipeline: Any,
    seed: int,
    advance: Any,
) -> None:
    """Child shard ``k``: augmented RGB, every other file copied, realized params as columns."""
    sdir = layout.inside(parent.root, shard_rel)
    version = int(parent.manifest["format_version"])
    table = upgrade_samples(pq.read_table(layout.shard_table(sdir, layout.SAMPLES)), version)
    meta = json.loads((sdir / layout.SHARD_META).read_text())
    meta.pop("files", None)
    with ShardWriter(out, k) as writer:
        realized = []
        for idx in table.column("sample_index").to_pylist():
            interruption_point()  # a Ctrl-C Python swallowed stops here, the shard unpublished
            name, image, params = _augment_sample(parent, positions[int(idx)], pipeline, seed)
            writer.write(name, "rgb", image)
            realized.append(params)
            advance(1)
        written = {p.name for p in writer.tmp.iterdir()}
        skip = {*written, layout.SHARD_META, *layout.SHARD_TABLE_NAMES}  # tables: written anew
        for f in sorted(sdir.iterdir()):
            if f.is_file() and f.name not in skip:
                writer.copy(f)
        objects = pq.read_table(layout.shard_table(sdir, layout.OBJECTS))
        writer.finish(_with_realized(table, realized), objects, meta)


def _parent_shards(parent: Dataset) -> list[str]:
    """The parent's shard directories in shard order; they must be numbered 0..n-1."""
    shards = sorted({str(s) for s in parent.samples.column("shard").to_pylist()})
    expected = [f"{layout.SHARDS}/{layout.shard_name(k)}" for k in range(len(shards))]
    if shards != expected:
        raise ValueError(
            f"{parent.root}: shard directories {shards[:3]}... do not follow the format's "
            f"numbering ({expected[:3]}...)"
        )
    for rel in shards:  # checked before anything is written
        sdir = layout.inside(parent.root, rel)
        needed = (
            layout.shard_table(sdir, layout.SAMPLES),
            layout.shard_table(sdir, layout.OBJECTS),
            sdir / layout.SHARD_META,
        )
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            what = "is missing" if not sdir.is_dir() else f"lacks {', '.join(missing)}"
            raise FileNotFoundError(
                f"{parent.root}: shard {rel} {what} (the dataset is damaged; "
                f"synthcv inspect {parent.root} checks every file)"
            )
    return shards


def _augment_sample(
    parent: Dataset, j: int, pipeline: Any, seed: int
) -> tuple[str, np.ndarray, dict[str, Any]]:
    """Augmented RGB of sample position ``j``: its file name, the image, realized params."""
    rgb_p, inst_p, depth_p = (parent.path(j, m) for m in ("rgb", "instance", "depth"))
    idx = int(parent.samples.column("sample_index")[j].as_py())
    if rgb_p is None or inst_p is None:
        raise ValueError(f"{parent.root}: sample {idx} lacks rgb or instance (needed)")
    sample = {
        "rgb": read_png(rgb_p),
        "instance": read_png(inst_p, expect_uint16=True),
        "depth": read_depth(depth_p) if (pipeline.needs_depth and depth_p) else None,
        "objects": parent.objects_of(j),
        "classes": parent.classes,
    }
    img, realized = pipeline(sample, np.random.default_rng([seed, idx]))
    return rgb_p.name, img, realized


def _with_realized(table: pa.Table, rows: list[dict[str, Any]]) -> pa.Table:
    """The shard's samples table with one column per realized parameter (sorted by name)."""
    for c in sorted({k for r in rows for k in r}):
        if c not in table.column_names:
            table = table.append_column(c, pa.array([r.get(c) for r in rows]))
    return table


class _progress:
    """A rich progress bar (or nothing) exposing one ``advance(n)`` callable."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n=1: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task(self.description, total=self.total)
        return lambda n=1: self.bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()
