"""The on-disk dataset format (docs/FORMAT.md) in one package: what the files are called
(:mod:`~synthcv.format.layout`), how arrays become bytes (:mod:`~synthcv.format.codecs`), the
one writer (:mod:`~synthcv.format.writer`: shards published whole, manifest last) and the one
reader (:mod:`~synthcv.format.reader`). Producers (generate, augment) and consumers (tools,
tasks, genmodels, the torch adapter) go through here and never name a file themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthcv.fileio import sha256_file
from synthcv.format.layout import FORMAT_VERSION, MANIFEST, MODALITIES, READABLE_VERSIONS
from synthcv.format.reader import Dataset, not_a_dataset, open_dataset

__all__ = [
    "FORMAT_VERSION",
    "MODALITIES",
    "READABLE_VERSIONS",
    "Dataset",
    "content_digest",
    "open_dataset",
]


def content_digest(path: str | os.PathLike[str]) -> str:
    """Content hash of a data input, for lineage.

    A synthcv dataset directory is identified by the sha256 of its ``manifest.json`` (which
    itself holds the sha256 of every file), any other file by its own sha256.
    """
    p = Path(path)
    if p.is_dir():
        manifest = p / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(not_a_dataset(p))
        return sha256_file(manifest)
    if p.is_file():
        return sha256_file(p)
    raise FileNotFoundError(f"no such dataset directory or file: {p}")
