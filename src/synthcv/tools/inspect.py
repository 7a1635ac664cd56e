"""Summarise a dataset: counts, class and status histograms, factor ranges, checksum check.

:func:`summarize` returns plain JSON-able data (for ``--json`` and scripts); :func:`render`
draws it as rich tables for people.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synthcv.format import Dataset, open_dataset
from synthcv.format.layout import (
    MODALITIES,
    OBJECT_ID_COLUMNS,
    OBJECT_LABEL_COLUMNS,
    OPTIONAL_MODALITIES,
    SAMPLE_ID_COLUMNS,
)

# Columns that identify rows or hold labels rather than realized factors; an object's
# visibility stays in view (how occluded the objects are is what a user checks first).
SAMPLE_NON_FACTORS = SAMPLE_ID_COLUMNS
OBJECT_NON_FACTORS = OBJECT_ID_COLUMNS | (OBJECT_LABEL_COLUMNS - {"visibility"})


def _column_summary(col: pa.ChunkedArray) -> dict[str, Any] | None:
    """min/max/mean for numbers, value counts for strings and booleans; None for lists."""
    t = col.type
    nulls = col.null_count
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        counts = Counter(v for v in col.to_pylist() if v is not None)
        ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))
        return {
            "kind": "categorical",
            "counts": {str(k): v for k, v in ordered.items()},
            "nulls": nulls,
        }
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        if len(col) == nulls:
            return {"kind": "numeric", "min": None, "max": None, "mean": None, "nulls": nulls}
        mm = pc.min_max(col).as_py()
        return {
            "kind": "numeric",
            "min": mm["min"],
            "max": mm["max"],
            "mean": pc.mean(col).as_py(),
            "nulls": nulls,
            "histogram": histogram(col, mm["min"], mm["max"]),
        }
    return None


HIST_BINS = 16
_BARS = "▁▂▃▄▅▆▇█"


def histogram(col: pa.ChunkedArray, lo: float, hi: float, bins: int = HIST_BINS) -> list[int]:
    """Counts of the non-null values in ``bins`` equal bins over [lo, hi] (one bin if the
    column is constant): what ``inspect`` draws as a sparkline."""
    import numpy as np

    values = np.asarray(pc.drop_null(col).to_numpy(), dtype=np.float64)
    if hi == lo:
        return [len(values)]
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    return [int(c) for c in counts]


def sparkline(counts: list[int]) -> str:
    """One block character per bin, height by count (a space for an empty bin, so gaps in a
    distribution stay visible)."""
    top = max(counts, default=0)
    if top == 0:
        return ""
    return "".join(" " if c == 0 else _BARS[min(7, (c * 8 - 1) // top)] for c in counts)


def _factor_ranges(table: pa.Table, skip: set[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in table.column_names:
        if name in skip:
            continue
        s = _column_summary(table.column(name))
        if s is not None:
            out[name] = s
    return out


def summarize(dataset: Dataset | str | os.PathLike[str], verify: bool = True) -> dict[str, Any]:
    """Everything ``synthcv inspect`` reports, as JSON-able data."""
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    m = ds.manifest
    samples, objects = ds.samples, ds.objects
    shard_dir = ds.root / "shards"
    shards_on_disk = (
        sorted(p.name for p in shard_dir.iterdir() if p.is_dir()) if shard_dir.is_dir() else []
    )

    modalities = {}
    for name in MODALITIES:
        present = (
            0
            if name not in samples.column_names
            else len(samples) - samples.column(name).null_count
        )
        if present or name not in OPTIONAL_MODALITIES:
            modalities[name] = present

    names = {c["id"]: c["name"] for c in ds.classes}
    per_class: dict[int, dict[str, int]] = {cid: {"objects": 0, "visible": 0} for cid in names}
    distractors = {"objects": 0, "visible": 0}
    status: Counter[str] = Counter()
    if len(objects):
        cols = objects.select(
            [c for c in ("class_id", "is_distractor", "status") if c in objects.column_names]
        ).to_pydict()
        n = len(objects)
        class_ids = cols.get("class_id", [0] * n)
        is_dist = cols.get("is_distractor", [False] * n)
        stats = cols.get("status", ["unknown"] * n)
        for cid, dist, st in zip(class_ids, is_dist, stats, strict=True):
            status[st or "unknown"] += 1
            bucket = (
                distractors if dist else per_class.setdefault(cid, {"objects": 0, "visible": 0})
            )
            bucket["objects"] += 1
            bucket["visible"] += int(st == "visible")

    sizes = Counter()
    if {"width", "height"} <= set(samples.column_names):
        for w, h in zip(
            samples.column("width").to_pylist(), samples.column("height").to_pylist(), strict=True
        ):
            sizes[f"{w}x{h}"] += 1

    check: dict[str, Any] | None = None
    if verify:
        problems = ds.verify(progress=True)
        check = {"files": len(m.get("files", {})), "ok": not problems, "problems": problems}

    return {
        "root": str(ds.root),
        "format_version": m.get("format_version"),
        "synthcv_version": m.get("synthcv_version"),
        "spec_hash": m.get("spec_hash"),
        "backend": m.get("backend"),
        "count": m.get("count"),
        "samples": len(ds),
        "sequence": m.get("sequence"),  # clips, frames, fps of a sequence dataset
        "objects": len(objects),
        "shard_size": m.get("shard_size"),
        "num_shards": m.get("num_shards"),
        "shards_on_disk": len(shards_on_disk),
        "image_sizes": dict(sizes),
        "modalities": modalities,
        "classes": [
            {"id": cid, "name": names.get(cid, f"<unknown {cid}>"), **per_class[cid]}
            for cid in sorted(per_class)
        ],
        "distractors": distractors,
        "status": dict(sorted(status.items())),
        "sample_factors": _factor_ranges(samples, SAMPLE_NON_FACTORS),
        "object_factors": _factor_ranges(objects, OBJECT_NON_FACTORS),
        "checksums": check,
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _row(table: Any, *cells: Any) -> None:
    """Add a row of plain text: names like ``pybullet_data:duck:`` must not become emoji/markup."""
    from rich.text import Text

    table.add_row(*(Text(str(c)) for c in cells))


def _factor_tables(title: str, factors: dict[str, dict[str, Any]]) -> list[Any]:
    """One table of numeric ranges and one of categorical value counts (each only if any)."""
    from rich.table import Table

    numeric = {k: v for k, v in factors.items() if v["kind"] == "numeric"}
    categorical = {k: v for k, v in factors.items() if v["kind"] == "categorical"}
    tables = []
    if numeric:
        table = Table(title=f"{title} (numeric)", title_justify="left")
        table.add_column("factor", no_wrap=True)
        for col in ("min", "max", "mean", "nulls"):
            table.add_column(col, justify="right")
        table.add_column(f"distribution ({HIST_BINS} bins, min → max)", no_wrap=True)
        for name, st in numeric.items():
            line = sparkline(st.get("histogram") or [])
            if st.get("histogram") and len(st["histogram"]) == 1:
                line = "constant"
            _row(
                table,
                name,
                _fmt(st["min"]),
                _fmt(st["max"]),
                _fmt(st["mean"]),
                st["nulls"],
                line,
            )
        tables.append(table)
    if categorical:
        table = Table(title=f"{title} (categorical)", title_justify="left")
        table.add_column("factor", no_wrap=True)
        table.add_column("values (count)")
        table.add_column("nulls", justify="right")
        for name, st in categorical.items():
            items = list(st["counts"].items())
            shown = ", ".join(f"{k} ({v})" for k, v in items[:12])
            if len(items) > 12:
                shown += f", … (+{len(items) - 12} more)"
            _row(table, name, shown, st["nulls"])
        tables.append(table)
    return tables


def render(summary: dict[str, Any], console: Any = None) -> None:
    """Print a summary from :func:`summarize` as rich tables."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    s = summary
    backend = s.get("backend") or {}
    head = Table(title=f"dataset {s['root']}", title_justify="left", show_header=False)
    head.add_column("key")
    head.add_column("value")
    for key, value in (
        ("samples", f"{s['samples']} (manifest count {s['count']})"),
        *(
            [("clips", "{clips} × {frames} frames at {fps:g} fps".format(**s["sequence"]))]
            if s.get("sequence")
            else []
        ),
        ("objects", s["objects"]),
        (
            "shards",
            f"{s['shards_on_disk']} on disk / {s['num_shards']} in manifest, "
            f"shard_size {s['shard_size']}",
        ),
        ("image sizes", ", ".join(f"{k} ({v})" for k, v in s["image_sizes"].items())),
        ("modalities", ", ".join(f"{k} {v}" for k, v in s["modalities"].items())),
        (
            "backend",
            f"{backend.get('name')} {backend.get('version')}, "
            f"normals {backend.get('normals_source')}",
        ),
        ("synthcv", s["synthcv_version"]),
        ("spec hash", s["spec_hash"]),
    ):
        _row(head, key, _fmt(value))
    console.print(head)

    classes = Table(title="classes", title_justify="left")
    for col in ("id", "class", "objects", "visible"):
        classes.add_column(col, justify="left" if col == "class" else "right")
    for c in s["classes"]:
        _row(classes, str(c["id"]), c["name"], str(c["objects"]), str(c["visible"]))
    d = s["distractors"]
    if d["objects"]:
        _row(classes, "0", "(distractors)", str(d["objects"]), str(d["visible"]))
    console.print(classes)

    status = Table(title="object status", title_justify="left")
    status.add_column("status")
    status.add_column("objects", justify="right")
    for k, v in s["status"].items():
        _row(status, k, str(v))
    console.print(status)

    if s["sample_factors"]:
        console.print(*_factor_tables("sample factors", s["sample_factors"]))
    if s["object_factors"]:
        console.print(*_factor_tables("object factors", s["object_factors"]))

    check = s["checksums"]
    if check is None:
        console.print("checksums: [yellow]not verified[/] (--no-verify)")
    elif check["ok"]:
        console.print(f"checksums: [green]OK[/] ({check['files']} files)")
    else:
        console.print(f"checksums: [red]FAILED[/] ({len(check['problems'])} problems)")
        for p in check["problems"]:
            console.print(Text(f"  {p}", style="red"))
