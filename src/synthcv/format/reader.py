"""Read a dataset directory written by ``synthcv generate`` (format: docs/FORMAT.md).

The reader depends only on the on-disk contract, never on the writer's code, so any dataset
that follows the format (including hand-made ones in tests) opens the same way. Images decode
lazily per item; the parquet indexes load once and objects are grouped by sample once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthcv.fileio import sha256_file
from synthcv.format import layout
from synthcv.format.codecs import read_modality
from synthcv.format.layout import MODALITIES, PATH_COLUMNS
from synthcv.format.manifest import problems as integrity_problems


class Dataset:
    """An opened synthcv dataset: indexable samples with numpy images and their annotations."""

    def __init__(self, root: Path, manifest: dict[str, Any], samples: pa.Table, objects: pa.Table):
        self.root = root
        self.manifest = manifest
        # Sort once so position i is sample_index order whatever order shards were merged in.
        self.samples = samples.sort_by("sample_index") if len(samples) else samples
        self.objects = objects.sort_by(
            [("sample_index", "ascending"), ("instance_id", "ascending")]
        )
        self._sample_index = np.asarray(self.samples.column("sample_index").to_numpy(), np.int64)
        obj_idx = np.asarray(self.objects.column("sample_index").to_numpy(), np.int64)
        # Object rows of sample s are [starts[s], ends[s]): found by binary search, once.
        self._obj_start = np.searchsorted(obj_idx, self._sample_index, side="left")
        self._obj_end = np.searchsorted(obj_idx, self._sample_index, side="right")
        self._factor_columns = [c for c in self.samples.column_names if c not in PATH_COLUMNS]

    @property
    def classes(self) -> list[dict[str, Any]]:
        """``[{id, name}]`` with ids 1..C in spec order (0 is background/distractor)."""
        return list(self.manifest.get("classes", []))

    def __len__(self) -> int:
        return len(self._sample_index)

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, samples={len(self)}, objects={len(self.objects)})"

    def _position(self, i: int) -> int:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"sample {i} out of range for a dataset of {n} samples")
        return j

    def path(self, i: int, modality: str) -> Path | None:
        """Absolute path of one modality file of sample position ``i`` (None if absent)."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        j = self._position(i)
        if modality not in self.samples.column_names:
            return None
        rel = self.samples.column(modality)[j].as_py()
        return None if rel is None else layout.inside(self.root, rel)

    def objects_of(self, i: int) -> list[dict[str, Any]]:
        """objects.parquet rows of sample position ``i`` as dicts."""
        j = self._position(i)
        start, end = int(self._obj_start[j]), int(self._obj_end[j])
        return self.objects.slice(start, end - start).to_pylist()

    def factors_of(self, i: int) -> dict[str, Any]:
        """samples.parquet row of sample position ``i`` without the path columns."""
        j = self._position(i)
        return self.samples.select(self._factor_columns).slice(j, 1).to_pylist()[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.read(i)

    def read(self, i: int, modalities: Iterable[str] | None = None) -> dict[str, Any]:
        """Sample position ``i`` with only ``modalities`` decoded (None: all of them; the
        others are None): a loader that trains on RGB alone skips decoding depth, masks and
        normals, most of the cost of a read."""
        wanted = MODALITIES if modalities is None else tuple(modalities)
        if unknown := [m for m in wanted if m not in MODALITIES]:
            raise ValueError(f"unknown modalities {unknown}; expected some of {list(MODALITIES)}")
        j = self._position(i)
        item: dict[str, Any] = {"index": int(self._sample_index[j])}
        for m in MODALITIES:
            p = self.path(j, m) if m in wanted else None
            item[m] = None if p is None else read_modality(p, m)
        item["objects"] = self.objects_of(j)
        item["factors"] = self.factors_of(j)
        return item

    @property
    def clips(self) -> int:
        """Clips in a dataset written with ``sequence:`` (0 for single frames)."""
        return int((self.manifest.get("sequence") or {}).get("clips", 0))

    def clip(self, c: int, modalities: Iterable[str] | None = None) -> dict[str, Any]:
        """Every frame of clip ``c`` (a ``sequence:`` dataset), in frame order: each modality
        stacked to (T, H, W, ...) (None when absent; ``flow`` is None on the last frame and
        ``flow_back`` on the first, so those are lists), plus per-frame ``objects`` (instance
        ids are tracks across the frames), ``factors``, ``frame`` and ``time``."""
        if "clip" not in self.samples.column_names:
            raise ValueError(f"{self.root}: not a sequence dataset (written without sequence:)")
        clips = np.asarray(self.samples.column("clip").to_numpy(zero_copy_only=False))
        rows = np.nonzero(clips == c)[0]
        if not len(rows):
            raise IndexError(f"clip {c} out of range for a dataset of {self.clips} clips")
        frames = [self.read(int(j), modalities) for j in rows]
        frames.sort(key=lambda f: f["factors"]["frame"])
        out: dict[str, Any] = {"clip": c}
        for m in MODALITIES:
            values = [f[m] for f in frames]
            if all(v is None for v in values):
                out[m] = None
            elif any(v is None for v in values):
                out[m] = values
            else:
                out[m] = np.stack(values)
        out["objects"] = [f["objects"] for f in frames]
        out["factors"] = [f["factors"] for f in frames]
        out["frame"] = [f["factors"]["frame"] for f in frames]
        out["time"] = [f["factors"]["time"] for f in frames]
        return out

    def __iter__(self):
        for j in range(len(self)):
            yield self[j]

    def verify(self, progress: bool = False) -> list[str]:
        """Problems found by re-hashing every file the manifest lists; [] means intact.

        Also reports files under ``shards/`` that the manifest does not list (e.g. leftovers of
        an interrupted run), since those would silently change what a reader sees.
        """
        files: dict[str, str] = self.manifest.get("files", {})
        problems: list[str] = []
        items = sorted(files.items())
        iterator: Any = items
        if progress and items:
            from rich.console import Console
            from rich.progress import track

            # stderr, so ``synthcv inspect --json | jq`` gets clean JSON on stdout.
            iterator = track(
                items,
                description="verifying checksums",
                transient=True,
                console=Console(stderr=True),
            )
        for rel, expected in iterator:
            try:
                p = layout.inside(self.root, rel)
            except ValueError as exc:
                problems.append(f"manifest lists a path outside the dataset: {exc}")
                continue
            if not p.is_file():
                problems.append(f"missing file: {rel}")
            elif (got := sha256_file(p)) != expected:
                problems.append(
                    f"checksum mismatch: {rel} (expected {expected[:12]}…, got {got[:12]}…)"
                )
        shards = self.root / "shards"
        if shards.is_dir():
            for dirpath, _dirs, names in os.walk(shards):
                for name in names:
                    rel = Path(dirpath, name).relative_to(self.root).as_posix()
                    if rel not in files:
                        problems.append(f"extra file not in manifest: {rel}")
        return sorted(problems)


def upgrade_samples(table: pa.Table, version: int) -> pa.Table:
    """A samples table of format ``version`` with the current format's column names."""
    if version == 1:  # factor columns were renamed to their spec paths in format 2
        return table.rename_columns(
            [layout.V1_FACTOR_RENAMES.get(c, c) for c in table.column_names]
        )
    return table


def _enclosing_dataset(p: Path) -> Path | None:
    """The finished dataset directory ``p`` lies inside (up to three levels up), if any."""
    for up in list(p.parents)[:3]:
        if (up / layout.MANIFEST).is_file():
            return up
    return None


def _similar_datasets(p: Path) -> list[str]:
    """Dataset directories beside ``p`` whose names are close to its name (typos)."""
    import difflib

    parent = p.parent if p.parent.is_dir() else None
    if parent is None:
        return []
    with contextlib.suppress(OSError):
        names = [c.name for c in parent.iterdir() if c.is_dir() and (c / layout.MANIFEST).is_file()]
        return difflib.get_close_matches(p.name, names, n=3, cutoff=0.6)
    return []


def not_a_dataset(path: str | os.PathLike[str]) -> str:
    """Why ``path`` (which has no manifest.json) is not a dataset, and which dataset directory
    was probably meant (the one it lies inside, or a similarly named one beside it)."""
    p = Path(path)
    if not p.exists():
        if (root := _enclosing_dataset(p)) is not None:
            return (
                f"no such dataset directory: {p} (it would lie inside dataset {root}; "
                f"pass the dataset directory {root})"
            )
        if close := _similar_datasets(p):
            return f"no such dataset directory: {p} (did you mean {' or '.join(close)}?)"
        return f"no such dataset directory: {p}"
    if not p.is_dir():
        if (root := _enclosing_dataset(p)) is not None:
            return f"{p} is a file inside dataset {root}; pass the dataset directory {root}"
        return f"{p} is a file, not a dataset directory"
    if (p / layout.RUN_FILE).is_file():
        return (
            f"{p}: unfinished dataset (no manifest.json yet) — was generation interrupted? "
            "re-run synthcv generate (or augment) with the same arguments to finish it"
        )
    for up in (p.parent, p.parent.parent):
        if (up / layout.MANIFEST).is_file():
            inside = p.relative_to(up).as_posix()
            return f"{p} is {inside}/ inside dataset {up}; pass the dataset directory {up}"
        if (up / layout.RUN_FILE).is_file():
            inside = p.relative_to(up).as_posix()
            return f"{p} is {inside}/ inside the unfinished dataset {up} (no manifest.json yet)"
        if up == up.parent:
            break
    return f"not a synthcv dataset (no manifest.json): {p}"


def open_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Open dataset directory ``path``; fail clearly if it is missing or incomplete."""
    root = Path(path)
    manifest_path = root / layout.MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(not_a_dataset(root))
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{manifest_path}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise ValueError(f"{manifest_path}: expected a JSON object, got {type(manifest).__name__}")
    version = manifest.get("format_version")
    if version not in layout.READABLE_VERSIONS:
        raise ValueError(
            f"{manifest_path}: format_version {version!r} is not supported (this synthcv reads "
            f"format_version {', '.join(map(str, layout.READABLE_VERSIONS))}; a newer dataset "
            "needs a newer synthcv)"
        )
    tables = {}
    for name in ("samples", "objects"):
        p = root / f"{name}.parquet"
        if not p.is_file():
            raise FileNotFoundError(f"{root}: manifest.json present but {name}.parquet is missing")
        tables[name] = pq.read_table(p)
    tables["samples"] = upgrade_samples(tables["samples"], version)
    for name, cols in (
        ("samples", ("sample_index",)),
        ("objects", ("sample_index", "instance_id")),
    ):
        t = tables[name]
        missing = [c for c in cols if c not in t.column_names]
        if missing and t.num_rows == 0:
            # A dataset without objects may store an empty, column-less table: give it the keys.
            for c in missing:
                t = t.append_column(c, pa.array([], pa.int64()))
            tables[name] = t
        elif missing:
            raise ValueError(f"{root / (name + '.parquet')}: missing required columns {missing}")
    if found := integrity_problems(manifest, tables["samples"].num_rows):
        raise ValueError(
            f"{manifest_path}: " + "; ".join(found) + " — the dataset cannot be trusted; "
            "regenerate it (or restore manifest.json)"
        )
    return Dataset(root, manifest, tables["samples"], tables["objects"])
