"""The one dataset writer: output-directory claims, shards published whole, the manifest last.

``synthcv generate`` and ``synthcv augment`` both write through here, so both resume after an
interruption, both checksum every file the same way, and a dataset is complete exactly when its
``manifest.json`` exists (written last, atomically).

Life of an output directory::

    claim_output(root, run)        # the resume record; refuses a directory of another run
    for each unfinished shard k:
        with ShardWriter(root, k) as w:   # a private temporary directory
            w.write(...); w.copy(...)
            w.finish(sample_rows, object_rows, meta)   # checksums, shard.json, rename
    write_manifest(root, fields, num_shards)           # merged indexes, files map, manifest
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from synthcv._version import __version__
from synthcv.fileio import publish_dir, sha256_file, write_json_atomic, write_with_atomic
from synthcv.format import codecs, layout


class OutputError(RuntimeError):
    """The output directory cannot take this run (another dataset, not a dataset, ...)."""


def claim_output(root: Path, run: dict[str, Any], overwrite: bool = False) -> bool:
    """Prepare ``root`` for the run described by ``run``; True if it is already complete.

    ``run`` identifies the work (e.g. spec hash, count, shard size): a directory left by an
    interrupted run with the same record is resumed, one with another record is refused, and
    stale temporary shards from killed processes are removed.
    """
    run_file = root / layout.RUN_FILE
    if root.exists() and overwrite:
        shutil.rmtree(root)
    if root.exists() and any(root.iterdir()):
        if not run_file.exists():
            raise OutputError(
                f"{root} exists and is not a synthcv output directory; choose another --out"
            )
        previous = json.loads(run_file.read_text())
        if previous != run:
            described = ", ".join(f"{k} {str(v)[:12]}" for k, v in sorted(previous.items()))
            raise OutputError(
                f"{root} holds a dataset of another run ({described}); use another --out or "
                "--overwrite"
            )
        if (root / layout.MANIFEST).exists():
            return True
    (root / layout.SHARDS).mkdir(parents=True, exist_ok=True)
    for stale in (root / layout.SHARDS).glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    write_json_atomic(run_file, run)
    return False


def unfinished_shards(root: Path, num_shards: int) -> list[int]:
    return [k for k in range(num_shards) if not layout.shard_dir(root, k).exists()]


class ShardWriter:
    """Files of one shard, written into a private temporary directory and published whole.

    Use as a context manager: leaving the block without :meth:`finish` (an exception, Ctrl-C)
    removes the temporary directory, so no partial shard is ever visible under its final name.
    """

    def __init__(self, root: Path, shard: int) -> None:
        self.root = Path(root)
        self.shard = shard
        self.name = layout.shard_name(shard)
        self.rel = f"{layout.SHARDS}/{self.name}"
        self.tmp = self.root / layout.SHARDS / f".tmp-{self.name}-{os.getpid()}"
        self.finished = False

    def __enter__(self) -> ShardWriter:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.finished:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, filename: str, modality: str, array: np.ndarray) -> str:
        """Write one modality's array; returns its path relative to the dataset root."""
        codecs.write_modality(self.tmp / filename, modality, array)
        return f"{self.rel}/{filename}"

    def copy(self, src: Path, filename: str | None = None) -> str:
        name = filename or src.name
        shutil.copyfile(src, self.tmp / name)
        return f"{self.rel}/{name}"

    def finish(
        self,
        sample_rows: list[dict[str, Any]] | Any,
        object_rows: list[dict[str, Any]] | Any,
        meta: dict[str, Any],
    ) -> bool:
        """Write the shard's indexes and ``shard.json`` (checksums), then publish it.

        Rows may be lists of dicts or ready pyarrow tables. Returns False if another process
        published the same shard first (its content is identical by construction).
        """
        for rows, name in ((sample_rows, layout.SAMPLES), (object_rows, layout.OBJECTS)):
            table = codecs.rows_to_table(rows) if isinstance(rows, list) else rows
            codecs.write_table(table, self.tmp / name)
        checksums = {p.name: sha256_file(p) for p in sorted(self.tmp.iterdir())}
        write_json_atomic(self.tmp / layout.SHARD_META, {**meta, "files": checksums})
        self.finished = True
        return publish_dir(self.tmp, self.root / self.rel)


def write_manifest(root: Path, fields: dict[str, Any], num_shards: int) -> dict[str, Any]:
    """Merge the shards' indexes, checksum them, and write ``manifest.json`` last.

    ``fields`` holds what the producer knows (spec, classes, backend, parent, ...); the format
    adds its own facts (version, counts, encodings, the files map).
    """
    shard_dirs = [layout.shard_dir(root, k) for k in range(num_shards)]
    files: dict[str, str] = {}
    for d in shard_dirs:
        meta = json.loads((d / layout.SHARD_META).read_text())
        rel = f"{layout.SHARDS}/{d.name}"
        files.update({f"{rel}/{n}": h for n, h in meta["files"].items()})
        files[f"{rel}/{layout.SHARD_META}"] = sha256_file(d / layout.SHARD_META)
    for name in (layout.SAMPLES, layout.OBJECTS):
        table = codecs.concat_tables([d / name for d in shard_dirs])
        write_with_atomic(root / name, lambda tmp, t=table: codecs.write_table(t, tmp))
        files[name] = sha256_file(root / name)
    manifest = {
        **fields,
        "format_version": layout.FORMAT_VERSION,
        "synthcv_version": __version__,
        "num_shards": num_shards,
        "depth": {"file": "tiff-float32", "units": "m", "invalid": 0},
        "normals": {"file": "png-uint8", "frame": "camera", "decode": "v/255*2-1"},
        "files": dict(sorted(files.items())),
    }
    write_json_atomic(root / layout.MANIFEST, manifest)
    return manifest
