"""Content hashes and atomic writes: the two file idioms every layer needs, in one place.

Why one module: a dataset's promise ("nothing half-written is ever left as if complete", "every
file is checksummed") holds only if every writer uses the same write-then-rename and the same
hash. Writers get a temporary name in the target's own directory (so the rename never crosses
filesystems), and the rename happens only after the content is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> bytes:
    """Raw sha256 digest of ``data`` (seeds are cut from it)."""
    return hashlib.sha256(data).digest()


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """Hex sha256 over byte strings, each prefixed by its length, so that where one ends
    counts (the digest of exactly an in-memory split: its arrays' headers and bytes)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little"))
        h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of UTF-8 ``text`` (spec and scene hashes)."""
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary name is unique per call (``mkstemp``), so two processes writing the same
    target never clobber each other's half-written file; the last complete one wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = 1) -> None:
    """Deterministic JSON (sorted keys, numpy scalars as numbers), written atomically."""
    text = json.dumps(data, indent=indent, sort_keys=True, default=_json_default)
    write_text_atomic(path, text + "\n")


def write_with_atomic(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` for a library that writes to a path itself (parquet, savefig)."""
    with atomic_path(path) as tmp:
        write(tmp)


def read_images_npz(
    path: str | os.PathLike[str], *, labels_required: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``images`` (uint8 (N, H, W[, C])) and ``labels`` (int64 (N,), or None when absent and
    not required) of an ``.npz``: the one reader behind every images-and-labels file
    (generated samples, production batches, training data, the real digits), so each names
    the same problems in the same words. Pickled arrays are refused (never run code from a
    data file)."""
    import zipfile

    p = Path(path)
    try:
        d = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable .npz ({exc})") from None
    if not isinstance(d, np.lib.npyio.NpzFile):
        raise ValueError(f"{p}: a single array, expected an .npz holding 'images'")
    with d:
        if "images" not in d.files:
            raise ValueError(f"{p}: no 'images' array (has {d.files})")
        if labels_required and "labels" not in d.files:
            raise ValueError(f"{p}: no 'labels' array (has {d.files})")
        try:
            images = np.asarray(d["images"])
            labels = np.asarray(d["labels"]) if "labels" in d.files else None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValueError(f"{p}: not a readable .npz ({exc})") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"{p}: images must be uint8 (N,H,W[,C]), got {images.dtype} "
                         f"{images.shape}")  # fmt: skip
    if labels is not None:
        whole = np.issubdtype(labels.dtype, np.integer) or (
            np.issubdtype(labels.dtype, np.floating) and bool(np.all(np.mod(labels, 1) == 0))
        )
        if labels.shape != (len(images),) or not whole:
            raise ValueError(
                f"{p}: {len(images)} images but labels of {labels.dtype} {labels.shape}, "
                f"expected whole numbers of shape ({len(images)},)"
            )
        labels = labels.astype(np.int64)
    return images, labels


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """``dst`` as a hard link to ``src`` (no copy of an image an export repeats), or a copy
    where the filesystem cannot link (another device, no hard links)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def publish_dir(tmp: Path, final: Path) -> bool:
    """Rename a completed directory into place; False if another process already did.

    Directories are published whole: a reader sees either no directory or a complete one.
    When the final name exists already (a concurrent or orphaned run finished the same work
    first) the temporary directory is removed and the existing one kept.
    """
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


@contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``final``; it becomes ``final`` only if the
    block succeeds (published whole with :func:`publish_dir`), else it is removed.

    ``final`` must not exist or be an empty directory (which is replaced): a directory with
    content raises ``FileExistsError`` before anything is written.
    """
    final = Path(final)
    if final.exists() and not (final.is_dir() and not any(final.iterdir())):
        raise FileExistsError(f"{final} exists and is not an empty directory; pick another --out")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.is_dir():
            final.rmdir()  # empty (checked above); a concurrent writer's content makes this fail
        if not publish_dir(tmp, final):
            raise FileExistsError(f"{final} was written by another process meanwhile")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
