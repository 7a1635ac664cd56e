"""The one dataset writer: output-directory claims, shards published whole, the manifest last.

``synthcv generate`` and ``synthcv augment`` both write through here, so both resume after an
interruption, both checksum every file the same way, and a dataset is complete exactly when its
``manifest.json`` exists (written last, atomically).

Life of an output directory::

    with claim_output(root, run) as claim:   # lock + resume record; refuses another run's dir
      for each unfinished shard k:
        with ShardWriter(root, k) as w:   # a private temporary directory
            w.write(...); w.copy(...)
            w.finish(sample_rows, object_rows, meta)   # checksums, shard.json, rename
      write_manifest(root, fields, num_shards)         # merged indexes, files map, manifest
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
from synthcv.format.manifest import with_digest


class OutputError(RuntimeError):
    """The output directory cannot take this run (another dataset, not a dataset, ...)."""


class Claim:
    """An output directory held by this process: an exclusive lock on ``.synthcv.lock``.

    Only one synthcv process writes into a directory at a time; a second one is refused with
    the holder's pid and command instead of deleting the first one's temporary shards under
    it. The kernel drops the lock when the process ends, however it ends, so a killed run
    never leaves a stale lock. ``complete`` says whether the dataset was already finished.
    """

    def __init__(self, root: Path, fd: int, complete: bool) -> None:
        self.root, self._fd, self.complete = root, fd, complete

    def release(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)  # no holder any more (and no pid left in the dataset)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _lock(root: Path) -> int:
    """Take the directory's lock or raise OutputError naming who holds it."""
    import fcntl
    import sys

    path = root / layout.LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutputError(
            f"{root} is being written by another synthcv process ({holder}); wait for it to "
            "finish or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n".encode(), 0)
    return fd


def claim_output(root: Path, run: dict[str, Any], overwrite: bool = False) -> Claim:
    """Lock ``root`` and prepare it for the run described by ``run``.

    ``run`` identifies the work (e.g. spec hash, count, shard size): a directory left by an
    interrupted run with the same record is resumed, one with another record is refused, and
    temporary shards of killed processes are removed (safe: nobody else holds the lock).
    ``overwrite`` empties the directory first, after taking the lock. Use the returned
    :class:`Claim` as a context manager around the whole write.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} exists and is not a directory; choose another --out")
    ours = {layout.LOCK_FILE}
    foreign = not overwrite and not (root / layout.RUN_FILE).exists()
    # only our own bookkeeping (the lock, a half-written resume record of a killed run) may be
    # there when the resume record is missing
    if foreign and root.exists() and any(not p.name.startswith(".synthcv") for p in root.iterdir()):
        raise OutputError(
            f"{root} exists and is not a synthcv output directory; choose another --out"
        )
    root.mkdir(parents=True, exist_ok=True)
    fd = _lock(root)
    try:
        if overwrite:
            for p in root.iterdir():
                if p.name not in ours:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        run_file = root / layout.RUN_FILE
        if run_file.exists():
            previous = json.loads(run_file.read_text())
            # a record written before a key was added is compared on the keys it has
            if previous != {k: v for k, v in run.items() if k in previous}:
                described = ", ".join(
                    f"{k} {str(v)[:40]}" for k, v in sorted(previous.items()) if run.get(k) != v
                )
                raise OutputError(
                    f"{root} holds a dataset of another run ({described}); use another --out or "
                    "--overwrite"
                )
            if (root / layout.MANIFEST).exists():
                return Claim(root, fd, complete=True)
        # the resume record first: an interrupt right after it leaves a directory that a re-run
        # recognises as its own (before it, the directory holds nothing but the lock file)
        write_json_atomic(run_file, run)
        (root / layout.SHARDS).mkdir(exist_ok=True)
        remove_stale_shards(root)
        return Claim(root, fd, complete=False)
    except BaseException:
        os.close(fd)
        raise


def remove_stale_shards(root: Path) -> None:
    """Delete temporary shard directories of writers that died (a killed run, a Ray worker
    lost mid-shard whose task was retried elsewhere). Only safe while holding the output's
    lock with no writer at work: at the claim, and once every shard is published."""
    for stale in (root / layout.SHARDS).glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


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
        for rows, name in (
            (sample_rows, layout.SHARD_SAMPLES),
            (object_rows, layout.SHARD_OBJECTS),
        ):
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
    remove_stale_shards(root)  # every shard is published: a temporary one is a dead writer's
    shard_dirs = [layout.shard_dir(root, k) for k in range(num_shards)]
    files: dict[str, str] = {}
    for d in shard_dirs:
        meta = json.loads((d / layout.SHARD_META).read_text())
        rel = f"{layout.SHARDS}/{d.name}"
        files.update({f"{rel}/{n}": h for n, h in meta["files"].items()})
        files[f"{rel}/{layout.SHARD_META}"] = sha256_file(d / layout.SHARD_META)
    for name in (layout.SAMPLES, layout.OBJECTS):
        table = codecs.concat_tables([layout.shard_table(d, name) for d in shard_dirs])
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
    manifest = with_digest(manifest)
    write_json_atomic(root / layout.MANIFEST, manifest)
    return manifest
