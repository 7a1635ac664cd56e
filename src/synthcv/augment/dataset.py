"""``synthcv augment DIR --out DIR2``: a new dataset whose images are augmented copies.

The child is a complete dataset in the same format (docs/FORMAT.md): same samples, same labels
(augmentations change only RGB), every other modality copied byte for byte, realized
augmentation parameters added as ``augment.*`` columns of samples.parquet (so results can be
sliced by them), and a manifest that records its parent (path, spec_hash, manifest sha256) and
the augmentation config. Sample i uses ``Generator([seed, sample_index])``, so output does not
depend on the order of work. Shards are written under a temporary name and renamed into place;
the manifest is written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthcv.augment.ops import build_pipeline


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _is_sha_map(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and bool(v)
        and all(isinstance(x, str) and len(x) == 64 for x in v.values())
    )


def _write_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="PNG")


def augment_dataset(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    ops: list[dict[str, Any]],
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the augmented child of dataset ``src`` to ``out``; returns ``out``."""
    import synthcv
    from synthcv._version import __version__
    from synthcv.dataset import read_depth, read_png

    src, out = Path(src), Path(out)
    parent = synthcv.open_dataset(src)
    pipeline = build_pipeline(ops)
    if out.resolve() == src.resolve():
        raise ValueError(f"augment: --out must differ from the input dataset ({src})")
    if (out / "manifest.json").exists() and not overwrite:
        raise FileExistsError(f"{out}: a dataset already exists here (pass --overwrite)")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    shard_dirs = sorted({str(s) for s in parent.samples.column("shard").to_pylist()})
    files: dict[str, str] = {}
    all_samples: list[pa.Table] = []
    realized_cols: set[str] = set()
    per_shard: list[tuple[str, list[dict[str, Any]]]] = []
    total = len(parent)
    prog = None
    if progress:
        from rich.progress import Progress

        prog = Progress(transient=True)
        prog.start()
        task = prog.add_task(f"augmenting {src.name}", total=total)
    try:
        positions = {
            int(v): j for j, v in enumerate(parent.samples.column("sample_index").to_pylist())
        }
        for shard_rel in shard_dirs:
            sdir = src / shard_rel
            stable = pq.read_table(sdir / "samples.parquet")
            tmp = out / "shards" / f".{Path(shard_rel).name}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            realized_rows: list[dict[str, Any]] = []
            for idx in stable.column("sample_index").to_pylist():
                j = positions[int(idx)]
                rgb_p, inst_p, depth_p = (parent.path(j, m) for m in ("rgb", "instance", "depth"))
                if rgb_p is None or inst_p is None:
                    raise ValueError(f"{src}: sample {idx} lacks rgb or instance (needed)")
                sample = {
                    "rgb": read_png(rgb_p),
                    "instance": read_png(inst_p, expect_uint16=True),
                    "depth": read_depth(depth_p) if (pipeline.needs_depth and depth_p) else None,
                    "objects": parent.objects_of(j),
                    "classes": parent.classes,
                }
                img, realized = pipeline(sample, np.random.default_rng([seed, int(idx)]))
                _write_png(img, tmp / rgb_p.name)
                realized_rows.append(realized)
                realized_cols.update(realized)
                if prog is not None:
                    prog.advance(task)
            for f in sorted(sdir.iterdir()):
                if f.is_file() and not (tmp / f.name).exists() and f.name != "shard.json":
                    shutil.copyfile(f, tmp / f.name)
            per_shard.append((shard_rel, realized_rows))
            # samples.parquet of the shard gains the realized columns (written below).
            stable = _with_realized(stable, realized_rows, sorted(realized_cols))
            pq.write_table(stable, tmp / "samples.parquet")
            all_samples.append(stable)
            sj = (
                json.loads((sdir / "shard.json").read_text())
                if (sdir / "shard.json").exists()
                else {}
            )
            shas = {f.name: _sha(f) for f in sorted(tmp.iterdir()) if f.name != "shard.json"}
            replaced = False
            for k, v in list(sj.items()):
                if _is_sha_map(v):
                    sj[k] = shas
                    replaced = True
            if not replaced:
                sj["files"] = shas
            (tmp / "shard.json").write_text(json.dumps(sj, sort_keys=True))
            final = out / shard_rel
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        if prog is not None:
            prog.stop()
    cols = sorted(realized_cols)
    tables = [
        _with_realized(t.drop_columns([c for c in t.column_names if c in cols]), rows, cols)
        for t, (_s, rows) in zip(all_samples, per_shard, strict=True)
    ]
    samples = pa.concat_tables(tables, promote_options="permissive")
    _atomic_parquet(samples.sort_by("sample_index"), out / "samples.parquet")
    shutil.copyfile(src / "objects.parquet", out / ".objects.parquet.tmp")
    os.replace(out / ".objects.parquet.tmp", out / "objects.parquet")
    for p in sorted((out / "shards").rglob("*")):
        if p.is_file():
            files[p.relative_to(out).as_posix()] = _sha(p)
    for name in ("samples.parquet", "objects.parquet"):
        files[name] = _sha(out / name)
    manifest = dict(parent.manifest)
    manifest.update(
        synthcv_version=__version__,
        files=files,
        parent={
            "path": str(src.resolve()),
            "spec_hash": parent.manifest.get("spec_hash"),
            "manifest_sha256": _sha(src / "manifest.json"),
        },
        augment={"ops": ops, "seed": seed},
    )
    tmpm = out / ".manifest.json.tmp"
    tmpm.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    os.replace(tmpm, out / "manifest.json")
    return out


def _with_realized(table: pa.Table, rows: list[dict[str, Any]], cols: list[str]) -> pa.Table:
    for c in cols:
        if c in table.column_names:
            continue
        vals = [r.get(c) for r in rows]
        table = table.append_column(c, pa.array(vals))
    return table


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
