"""One self-contained, offline HTML page for a dataset (or an experiment run directory).

Why one file and no network: a report gets mailed, attached to a ticket, copied next to a
model or opened years later on a machine without synthcv, without the dataset and without
internet. So every image is a base64 ``data:`` URI (the page still opens when it or its
directory is moved, or the dataset deleted), CSS and a few lines of vanilla JS are inline, and
the page names no URL at all (no CDN, no web font, no server). Charts are SVG drawn here in
Python, so the page is a deterministic function of the dataset and ``n``: the same input gives
the same bytes.

A dataset page shows: the header (path, counts, backend, spec hash, versions, image size,
modalities), a grid of ``n`` samples picked evenly (:func:`~synthcv.tools.preview.pick_samples`)
whose base image switches between RGB / depth / normals / parts and whose label layers (boxes,
instance and semantic masks, keypoints with skeletons, hidden objects' boxes) toggle on and off,
the class and status tables, per-class visibility and box-size histograms, a histogram for every
realized factor column, the sweep strips (sweep datasets), and the resolved spec and manifest.
Overlays are SVG in the image's own pixel coordinates (``viewBox="0 0 W H"``, COCO convention:
pixel ``i`` spans ``[i, i + 1)``), so they stay exact when images are shown scaled or were
downscaled (larger side over :data:`MAX_SIDE` px) to keep the page small. Colours follow the
contact sheet: :func:`~synthcv.tools.preview.palette` of the instance id (boxes, masks,
keypoints) or class id (semantic mask, class table).

An experiment page (DIR holds ``results.json``) shows the summary table, per-seed values, the
slices table and every plot (``*.png``) of the run, plus ``summary.md``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthcv._version import __version__
from synthcv.fileio import write_bytes_atomic
from synthcv.format import Dataset, open_dataset
from synthcv.format.codecs import encode_normals
from synthcv.format.layout import MANIFEST
from synthcv.format.reader import not_a_dataset
from synthcv.tools.inspect import OBJECT_NON_FACTORS, SAMPLE_NON_FACTORS, summarize
from synthcv.tools.preview import depth_colors, palette, pick_samples

RESULTS = "results.json"  # what makes a directory an experiment run (tasks/experiment.py)
SUMMARY_MD = "summary.md"
REPORT_NAME = "report.html"
MAX_SIDE = 512  # embedded images whose larger side exceeds this are downscaled to it
THUMB_SIDE = 128  # sweep thumbnails
TILE_PX = 256  # display width of a grid tile (CSS); overlay text is sized for it
BINS = 20  # numeric histograms
TOP_VALUES = 12  # categorical bars: the most frequent values, the rest as "others"
SWEEP_SCENES = 4  # sweep strips: the first scenes
VIEWS = ("rgb", "clean", "depth", "normals", "parts")
VIEW_LABEL = {
    "rgb": "RGB",
    "clean": "clean (before the sensor)",
    "depth": "depth",
    "normals": "normals",
    "parts": "parts",
}
STATUS_ORDER = ("visible", "hidden", "outside")
MASK_ALPHA = 150


# ------------------------------------------------------------------------------------ entry


def write_report(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, n: int = 24
) -> Path:
    """Write the report of dataset or experiment run directory ``path`` (default
    ``path/report.html``) atomically and return where it went."""
    root = Path(path)
    if (root / MANIFEST).is_file():
        page = dataset_html(open_dataset(root), n=n)
    elif (root / RESULTS).is_file():
        page = experiment_html(root)
    else:
        raise FileNotFoundError(
            f"{not_a_dataset(root)}; synthcv report takes a dataset directory (with "
            f"{MANIFEST}) or an experiment run directory (with {RESULTS})"
        )
    target = Path(out) if out is not None else root / REPORT_NAME
    write_bytes_atomic(target, page.encode("utf-8"))
    return target


# ---------------------------------------------------------------------------- small helpers


def _e(value: Any) -> str:
    """Text for HTML (element content and quoted attributes alike)."""
    return html.escape(str(value), quote=True)


def _fmt(v: Any) -> str:
    """A value for a table cell: 4 significant digits for floats, '–' for missing."""
    if v is None:
        return "–"
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, float | np.floating):
        return "nan" if math.isnan(v) else f"{float(v):.4g}"
    return str(v)


def _c(v: float) -> str:
    """A coordinate for SVG: at most 2 decimals, no trailing zeros (short and deterministic)."""
    s = f"{float(v):.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _script_json(data: Any) -> str:
    """JSON safe inside ``<script>``: no ``</script>``, ``<!--`` or line separators can end or
    change the element, whatever the strings hold."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def _rgb(colour: np.ndarray) -> str:
    r, g, b = (int(c) for c in colour[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _colour(i: int) -> str:
    return _rgb(palette(np.array([i]))[0])


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(arr: np.ndarray, *, nearest: bool = False, max_side: int = MAX_SIDE) -> str:
    """``arr`` as a PNG data URI, downscaled so its larger side is at most ``max_side`` (label
    images with ``nearest`` so colours stay exact, photos by area averaging)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(arr))
    w, h = im.size
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        im = im.resize(size, Image.Resampling.NEAREST if nearest else Image.Resampling.BOX)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]


def _label_rgba(ids: np.ndarray, alpha: int = MASK_ALPHA) -> np.ndarray:
    """Semi-transparent mask: palette colour of each id, transparent where the id is 0."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.zeros((*ids.shape, 4), np.uint8)
    if ids.size and ids.max() > 0:
        lut = palette(np.arange(int(ids.max()) + 1))
        out[..., :3] = lut[ids]
        out[..., 3] = np.where(ids > 0, alpha, 0).astype(np.uint8)
    return out


def _parts_rgb(parts: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
    """Body parts in palette colours over the dimmed image (part 0 = background)."""
    ids = np.asarray(parts, dtype=np.int64)
    base = (
        (_as_rgb(rgb).astype(np.float32) * 0.3)
        if rgb is not None
        else np.zeros((*ids.shape, 3), np.float32)
    )
    if ids.size and ids.max() > 0:
        lut = palette(np.arange(int(ids.max()) + 1)).astype(np.float32)
        fg = ids > 0
        base[fg] = lut[ids[fg]]
    return base.round().clip(0, 255).astype(np.uint8)


def _image_size(item: dict[str, Any]) -> tuple[int, int] | None:
    """(width, height) of a sample from its first image modality."""
    for m in ("rgb", "instance", "depth", "semantic", "normals", "parts"):
        if item.get(m) is not None:
            h, w = item[m].shape[:2]
            return int(w), int(h)
    return None


Section = tuple[str, str, str]  # (element id, title, body html)


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ----------------------------------------------------------------------------------- charts


def _svg(w: int, h: int, body: str, label: str) -> str:
    return (
        f'<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{_e(label)}">{body}</svg>'
    )


def hist_svg(
    values: np.ndarray,
    label: str,
    *,
    integer: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    bins: int = BINS,
    width: int = 240,
    height: int = 90,
) -> str:
    """A histogram as inline SVG, its range labelled; a constant column is a line of text.

    Integer columns spanning at most ``bins`` values get one bar per value."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return '<p class="const">no values</p>'
    lo = float(v.min()) if lo is None else lo
    hi = float(v.max()) if hi is None else hi
    if lo == hi:
        return f'<p class="const">constant = {_e(_fmt(int(lo) if integer else lo))}</p>'
    if integer and hi - lo + 1 <= bins:
        edges = np.arange(lo - 0.5, hi + 1.0, 1.0)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(v, bins=edges)
    left, right, top, bottom = 26, 6, 12, 16
    pw, ph = width - left - right, height - top - bottom
    peak = max(int(counts.max()), 1)
    bw = pw / len(counts)
    parts = [
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>',
        f'<text class="tick" x="{left - 3}" y="{top + 4}" text-anchor="end">{peak}</text>',
    ]
    for i, cnt in enumerate(counts):
        if cnt == 0:
            continue
        bh = ph * cnt / peak
        a, b = edges[i], edges[i + 1]
        rng = f"{_fmt(round((a + b) / 2))}" if integer and b - a == 1 else f"{_fmt(a)}–{_fmt(b)}"
        parts.append(
            f'<rect class="bar" x="{_c(left + i * bw + 0.5)}" y="{_c(top + ph - bh)}" '
            f'width="{_c(max(bw - 1, 0.5))}" height="{_c(bh)}"><title>{_e(rng)}: {int(cnt)}'
            "</title></rect>"
        )
    lo_txt = _fmt(int(lo) if integer else lo)
    hi_txt = _fmt(int(hi) if integer else hi)
    parts.append(f'<text class="tick" x="{left}" y="{height - 3}">{_e(lo_txt)}</text>')
    parts.append(
        f'<text class="tick" x="{left + pw}" y="{height - 3}" text-anchor="end">{_e(hi_txt)}</text>'
    )
    return _svg(width, height, "".join(parts), f"histogram of {label}")


def bars_svg(counts: list[tuple[str, int]], label: str, *, width: int = 240) -> str:
    """Horizontal bars for categorical values: the :data:`TOP_VALUES` most frequent, the rest
    summed as "others"."""
    if not counts:
        return '<p class="const">no values</p>'
    if len(counts) == 1:
        return f'<p class="const">constant = {_e(counts[0][0])} ({counts[0][1]})</p>'
    shown = list(counts[:TOP_VALUES])
    if len(counts) > TOP_VALUES:
        shown.append(
            (f"others ({len(counts) - TOP_VALUES})", sum(c for _, c in counts[TOP_VALUES:]))
        )
    row, label_w, right = 14, 92, 34
    height = row * len(shown) + 4
    pw = width - label_w - right
    peak = max(c for _, c in shown) or 1
    parts = []
    for i, (name, cnt) in enumerate(shown):
        y = 2 + i * row
        short = name if len(name) <= 14 else name[:13] + "…"
        bw = pw * cnt / peak
        parts.append(
            f"<g><title>{_e(name)}: {cnt}</title>"
            f'<text class="tick" x="{label_w - 4}" y="{y + 10}" text-anchor="end">'
            f"{_e(short)}</text>"
            f'<rect class="bar" x="{label_w}" y="{y + 1}" width="{_c(max(bw, 0.5))}" '
            f'height="{row - 3}"/>'
            f'<text class="tick" x="{_c(label_w + bw + 3)}" y="{y + 10}">{cnt}</text></g>'
        )
    return _svg(width, height, "".join(parts), f"value counts of {label}")


def _class_bars_svg(rows: list[tuple[str, int, int, str]], *, width: int = 460) -> str:
    """Objects (grey) and visible (class colour) per class as overlaid horizontal bars."""
    if not rows:
        return ""
    row, right = 18, 70
    label_w = min(200, 12 + 7 * max(len(r[0]) for r in rows))
    pw = width - label_w - right
    peak = max(r[1] for r in rows) or 1
    parts = []
    for i, (name, total, visible, colour) in enumerate(rows):
        y = 4 + i * row
        parts.append(
            f"<g><title>{_e(name)}: {total} objects, {visible} visible</title>"
            f'<text class="tick" x="{label_w - 6}" y="{y + 11}" text-anchor="end">{_e(name)}'
            "</text>"
            f'<rect class="bar-all" x="{label_w}" y="{y}" width="{_c(max(pw * total / peak, 0.5))}"'
            f' height="{row - 4}"/>'
            f'<rect x="{label_w}" y="{y}" width="{_c(pw * visible / peak)}" height="{row - 4}" '
            f'fill="{colour}"/>'
            f'<text class="tick" x="{_c(label_w + pw * total / peak + 4)}" y="{y + 11}">'
            f"{visible}/{total}</text></g>"
        )
    return _svg(width, 8 + row * len(rows), "".join(parts), "objects and visible per class")


def _line_svg(xs: list[float], ys: list[float], xlabels: list[str], label: str) -> str:
    """A small line chart (sweep: mean visible objects per step)."""
    width, height, left, right, top, bottom = 360, 130, 34, 12, 10, 28
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = min(xs), max(xs)
    y1 = max(max(ys), 1e-9)

    def px(x: float) -> float:
        return left + (pw * (x - x0) / (x1 - x0) if x1 > x0 else pw / 2)

    def py(y: float) -> float:
        return top + ph - ph * y / y1

    pts = " ".join(f"{_c(px(x))},{_c(py(y))}" for x, y in zip(xs, ys, strict=True))
    parts = [
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{_e(_fmt(y1))}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + ph}" text-anchor="end">0</text>',
        f'<polyline class="line" points="{pts}"/>',
    ]
    for x, y, t in zip(xs, ys, xlabels, strict=True):
        parts.append(
            f'<circle class="dot" cx="{_c(px(x))}" cy="{_c(py(y))}" r="3">'
            f"<title>{_e(t)}: {_e(_fmt(y))}</title></circle>"
        )
    if xlabels:
        parts.append(f'<text class="tick" x="{left}" y="{top + ph + 14}">{_e(xlabels[0])}</text>')
        parts.append(
            f'<text class="tick" x="{left + pw}" y="{top + ph + 14}" text-anchor="end">'
            f"{_e(xlabels[-1])}</text>"
        )
    parts.append(
        f'<text class="tick" x="{left + pw / 2}" y="{height - 2}" text-anchor="middle">'
        f"{_e(label)}</text>"
    )
    return _svg(width, height, "".join(parts), f"mean visible objects per {label}")


def _column_chart(name: str, col: pa.ChunkedArray) -> str | None:
    """The chart of one factor column (None for lists and other non-scalar columns)."""
    t = col.type
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        counts = Counter(_fmt(v) for v in col.to_pylist() if v is not None)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return bars_svg(ordered, name)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = pc.drop_null(col).to_numpy().astype(np.float64)
        return hist_svg(values, name, integer=pa.types.is_integer(t))
    return None


def _factor_figures(table: pa.Table, skip: set[str], source: str) -> list[str]:
    out = []
    for name in table.column_names:
        if name in skip:
            continue
        col = table.column(name)
        chart = _column_chart(name, col)
        if chart is None:
            continue
        nulls = f' <span class="muted">({col.null_count} null)</span>' if col.null_count else ""
        out.append(
            f'<figure class="factor" data-factor="{_e(name)}" data-table="{source}">'
            f"<figcaption>{_e(name)}{nulls}</figcaption>{chart}</figure>"
        )
    return out


# ------------------------------------------------------------------------------ sample grid


def _box_label(x: float, y: float, fs: float, colour: str, text: str) -> str:
    ty = y - fs * 0.25 if y - fs >= 0 else y + fs
    return (
        f'<text x="{_c(x + 0.5 * fs / 11)}" y="{_c(ty)}" font-size="{_c(fs)}" '
        f'stroke-width="{_c(fs / 4)}" fill="{colour}">{_e(text)}</text>'
    )


def _overlay_svg(
    item: dict[str, Any], w: int, h: int, skeletons: dict[str, list[list[int]]]
) -> tuple[str, int, int, int]:
    """The SVG over one tile: keypoints (with skeleton lines), hidden objects' dashed boxes and
    visible boxes, in image pixel coordinates. Returns the svg and how many boxes, hidden boxes
    and keypoints it draws.

    Distractors are unlabelled (class 0) and, as in the contact sheet and COCO export, get no
    box or keypoints; they show in the instance mask."""
    unit = max(w, h) / TILE_PX  # one screen pixel of a TILE_PX-wide tile, in image pixels
    fs, r = 11 * unit, 2.6 * unit
    boxes, hidden, kps = [], [], []
    for o in item["objects"]:
        if o.get("is_distractor"):
            continue
        iid = int(o["instance_id"])
        colour = _colour(iid)
        name = str(o.get("class_name", o.get("class_id")))
        status = str(o.get("status"))
        vis = o.get("visibility")
        tip = f"{name} (instance {iid}) · {status} · visibility {_fmt(vis)}"
        box = o.get("bbox")
        if status == "visible" and box is not None:
            x, y, bw, bh = (float(v) for v in box)
            boxes.append(
                f"<g><title>{_e(tip)}</title>"
                f'<rect data-instance="{iid}" x="{_c(x)}" y="{_c(y)}" width="{_c(bw)}" '
                f'height="{_c(bh)}" stroke="{colour}"/>{_box_label(x, y, fs, colour, name)}</g>'
            )
        elif status != "visible":
            box = box if box is not None else o.get("bbox_amodal")
            if box is not None:
                x, y, bw, bh = (float(v) for v in box)
                hidden.append(
                    f"<g><title>{_e(tip)}</title>"
                    f'<rect data-hidden-instance="{iid}" x="{_c(x)}" y="{_c(y)}" '
                    f'width="{_c(bw)}" height="{_c(bh)}" stroke="{colour}"/>'
                    f"{_box_label(x, y, fs, colour, name + ' (' + status + ')')}</g>"
                )
        flat = o.get("keypoints") or []
        pts = [flat[k : k + 3] for k in range(0, len(flat) - 2, 3)]
        if not any(p[2] > 0 for p in pts):
            continue
        names = o.get("keypoint_names") or []
        group = [f'<g stroke="{colour}"><title>{_e(name)} (instance {iid}) keypoints</title>']
        for a, b in skeletons.get(name, []):
            if 1 <= a <= len(pts) and 1 <= b <= len(pts) and pts[a - 1][2] > 0 < pts[b - 1][2]:
                (xa, ya, _), (xb, yb, _) = pts[a - 1], pts[b - 1]
                group.append(f'<line x1="{_c(xa)}" y1="{_c(ya)}" x2="{_c(xb)}" y2="{_c(yb)}"/>')
        for k, (x, y, v) in enumerate(pts):
            if v <= 0:
                continue
            kp_name = names[k] if k < len(names) else f"keypoint {k}"
            fill = colour if v >= 2 else "none"
            state = "visible" if v >= 2 else "occluded"
            group.append(
                f'<circle data-v="{int(v)}" cx="{_c(x)}" cy="{_c(y)}" r="{_c(r)}" '
                f'fill="{fill}"><title>{_e(kp_name)} ({state})</title></circle>'
            )
        group.append("</g>")
        kps.append("".join(group))
    svg = (
        f'<svg class="ov" viewBox="0 0 {w} {h}" preserveAspectRatio="none">'
        f'<g class="layer layer-keypoints">{"".join(kps)}</g>'
        f'<g class="layer layer-hidden">{"".join(hidden)}</g>'
        f'<g class="layer layer-boxes">{"".join(boxes)}</g></svg>'
    )
    return svg, len(boxes), len(hidden), sum(s.count("<circle") for s in kps)


def _tile(
    item: dict[str, Any], skeletons: dict[str, list[list[int]]], caption_extra: str
) -> tuple[str, set[str], set[str]]:
    """One grid tile; returns (html, views it has, overlays it has)."""
    size = _image_size(item)
    idx = int(item["index"])
    if size is None:
        return (
            f'<figure class="tile"><figcaption>#{idx}: no image</figcaption></figure>',
            set(),
            set(),
        )
    w, h = size
    rgb = item.get("rgb")
    bases: dict[str, str] = {}
    if rgb is not None:
        bases["rgb"] = _png(rgb)
    if item.get("clean") is not None:
        bases["clean"] = _png(item["clean"])
    if item.get("depth") is not None:
        bases["depth"] = _png(depth_colors(item["depth"]))
    if item.get("normals") is not None:
        bases["normals"] = _png(encode_normals(item["normals"]))
    if item.get("parts") is not None:
        bases["parts"] = _png(_parts_rgb(item["parts"], rgb), nearest=True)
    layers: dict[str, str] = {}
    if item.get("instance") is not None:
        layers["instances"] = _png(_label_rgba(item["instance"]), nearest=True)
    if item.get("semantic") is not None:
        layers["semantic"] = _png(_label_rgba(item["semantic"]), nearest=True)
    svg, nboxes, nhidden, nkps = _overlay_svg(item, w, h, skeletons)
    objs = item["objects"]
    nvis = sum(1 for o in objs if o.get("status") == "visible")
    html_parts = [
        f'<figure class="tile" data-index="{idx}" data-boxes="{nboxes}" data-keypoints="{nkps}">',
        f'<div class="stage{" px" if max(w, h) < TILE_PX else ""}" style="aspect-ratio:{w}/{h}">',
    ]
    for view in VIEWS:
        if view in bases:
            html_parts.append(
                f'<img class="base base-{view}" alt="sample {idx} {view}" src="{bases[view]}">'
            )
        else:
            html_parts.append(f'<div class="missing missing-{view}">no {view}</div>')
    for name, uri in layers.items():
        html_parts.append(f'<img class="layer layer-{name}" alt="" src="{uri}">')
    html_parts.append(svg)
    html_parts.append("</div>")
    caption = f"#{idx} · objects {len(objs)} · visible {nvis}{caption_extra}"
    html_parts.append(f"<figcaption>{_e(caption)}</figcaption></figure>")
    overlays = {"boxes", *layers}
    if nhidden:
        overlays.add("hidden")
    if nkps:
        overlays.add("keypoints")
    return "".join(html_parts), set(bases), overlays


def _controls(views: set[str], overlays: set[str], first: str) -> str:
    """The view radios and overlay checkboxes, each with a stable id (``view-rgb``,
    ``toggle-boxes`` ...); only what some shown sample has is offered."""
    radios = []
    for view in VIEWS:
        if view in views:
            checked = " checked" if view == first else ""
            radios.append(
                f'<label><input type="radio" name="view" id="view-{view}" value="{view}"'
                f"{checked}> {VIEW_LABEL[view]}</label>"
            )
    boxes = []
    for name, text, on in (
        ("boxes", "boxes", True),
        ("instances", "instance masks", False),
        ("semantic", "semantic masks", False),
        ("keypoints", "keypoints + skeletons", False),
        ("hidden", "hidden objects (dashed)", False),
    ):
        if name in overlays:
            boxes.append(
                f'<label><input type="checkbox" id="toggle-{name}" data-layer="{name}"'
                f"{' checked' if on else ''}> {text}</label>"
            )
    return (
        '<div class="controls"><fieldset><legend>view</legend>'
        + "".join(radios)
        + "</fieldset><fieldset><legend>overlays</legend>"
        + "".join(boxes)
        + "</fieldset></div>"
    )


def _sweep_of(ds: Dataset) -> dict[str, Any] | None:
    spec = ds.manifest.get("spec") or {}
    sweep = spec.get("sweep") if isinstance(spec, dict) else None
    cols = ds.samples.column_names
    if not sweep or "sweep.step" not in cols or "sweep.value" not in cols:
        return None
    return sweep


def _grid(ds: Dataset, n: int) -> tuple[str, list[int]]:
    picks = pick_samples(len(ds), n) if len(ds) else []
    skeletons = ds.manifest.get("skeletons") or {}
    sweep = _sweep_of(ds)
    tiles, views, overlays, shown = [], set(), set(), []
    for j in picks:
        item = ds[j]
        extra = ""
        if sweep is not None:
            extra = f" · {sweep.get('field')} = {_fmt(item['factors'].get('sweep.value'))}"
        tile, v, o = _tile(item, skeletons, extra)
        tiles.append(tile)
        views |= v
        overlays |= o
        shown.append(int(item["index"]))
    if not tiles:
        return '<p class="muted">the dataset has no samples</p>', shown
    first = "rgb" if "rgb" in views else next((v for v in VIEWS if v in views), "rgb")
    note = (
        f'<p class="muted">{len(tiles)} of {len(ds)} samples, picked evenly over the index. '
        "Hover a box or keypoint for its class, status and visibility. Images larger than "
        f"{MAX_SIDE} px are embedded downscaled; overlays keep the original pixel coordinates."
        "</p>"
    )
    body = (
        _controls(views, overlays, first)
        + note
        + f'<div id="grid" class="grid view-{first} show-boxes">'
        + "\n".join(tiles)
        + "</div>"
    )
    return body, shown


# ------------------------------------------------------------------------- dataset sections


def _header(summary: dict[str, Any], ds: Dataset) -> str:
    backend = summary.get("backend") or {}
    mods = [k for k, v in summary["modalities"].items() if v]
    rows = [
        ("dataset", str(ds.root)),
        ("samples", f"{summary['samples']} (manifest count {summary['count']})"),
        ("objects", str(summary["objects"])),
        ("backend", f"{backend.get('name')} {backend.get('version')}"),
        ("spec hash", str(summary.get("spec_hash"))),
        ("synthcv", f"{summary.get('synthcv_version')} (report by synthcv {__version__})"),
        ("image size", ", ".join(f"{k} ({v})" for k, v in summary["image_sizes"].items())),
        ("modalities", ", ".join(mods) or "none"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv" id="header">{body}</table>'


def _objects_columns(ds: Dataset) -> dict[str, list[Any]]:
    t = ds.objects
    n = len(t)
    want = ("class_id", "is_distractor", "status", "visibility", "bbox")
    cols = t.select([c for c in want if c in t.column_names]).to_pydict()
    cols.setdefault("class_id", [0] * n)
    cols.setdefault("is_distractor", [False] * n)
    cols.setdefault("status", ["unknown"] * n)
    cols.setdefault("visibility", [None] * n)
    cols.setdefault("bbox", [None] * n)
    return cols


def _class_key(cid: Any, dist: Any) -> int:
    return 0 if dist else int(cid)


def _class_names(ds: Dataset) -> dict[int, str]:
    return {0: "(distractors)", **{int(c["id"]): str(c["name"]) for c in ds.classes}}


def _classes_section(summary: dict[str, Any]) -> str:
    rows, chart = [], []
    for c in summary["classes"]:
        colour = _colour(int(c["id"]))
        pct = f"{100 * c['visible'] / c['objects']:.1f}%" if c["objects"] else "–"
        rows.append(
            [
                f'<span class="swatch" style="background:{colour}"></span>',
                _e(c["id"]),
                _e(c["name"]),
                _e(c["objects"]),
                _e(c["visible"]),
                pct,
            ]
        )
        chart.append((str(c["name"]), int(c["objects"]), int(c["visible"]), colour))
    d = summary["distractors"]
    if d["objects"]:
        pct = f"{100 * d['visible'] / d['objects']:.1f}%"
        rows.append(
            ["", "0", "(distractors)", _e(d["objects"]), _e(d["visible"]), pct],
        )
        chart.append(("(distractors)", int(d["objects"]), int(d["visible"]), "#888888"))
    table = _table(["", "id", "class", "objects", "visible", "visible %"], rows, "classes")
    return table + _class_bars_svg(chart)


def _status_section(ds: Dataset, cols: dict[str, list[Any]]) -> str:
    names = _class_names(ds)
    overall: Counter[str] = Counter()
    per: dict[int, Counter[str]] = {cid: Counter() for cid in names if cid}
    for cid, dist, st in zip(cols["class_id"], cols["is_distractor"], cols["status"], strict=True):
        key = _class_key(cid, dist)
        st = st or "unknown"
        overall[st] += 1
        per.setdefault(key, Counter())[st] += 1
    statuses = [s for s in STATUS_ORDER if s in overall] + sorted(
        s for s in overall if s not in STATUS_ORDER
    )
    if not statuses:
        return '<p class="muted">no objects</p>'
    total = sum(overall.values())
    top = _table(
        ["status", "objects", "share"],
        [[_e(s), _e(overall[s]), f"{100 * overall[s] / total:.1f}%"] for s in statuses],
        "status",
    )
    rows = []
    for cid in sorted(per, key=lambda c: (c == 0, c)):
        if cid == 0 and not per[cid]:
            continue
        rows.append([_e(names.get(cid, f"<unknown {cid}>")), *(_e(per[cid][s]) for s in statuses)])
    return top + "<h3>per class</h3>" + _table(["class", *map(_e, statuses)], rows, "status")


def _visibility_section(ds: Dataset, cols: dict[str, list[Any]]) -> str:
    names = _class_names(ds)
    vis: dict[int, list[float]] = {}
    size: dict[int, list[float]] = {}
    for cid, dist, v, box in zip(
        cols["class_id"], cols["is_distractor"], cols["visibility"], cols["bbox"], strict=True
    ):
        key = _class_key(cid, dist)
        if v is not None:
            vis.setdefault(key, []).append(float(v))
        if box is not None:
            size.setdefault(key, []).append(math.sqrt(max(float(box[2]) * float(box[3]), 0.0)))
    keys = sorted(set(vis) | set(size), key=lambda c: (c == 0, c))
    if not keys:
        return '<p class="muted">no objects</p>'
    smax = max((max(s) for s in size.values() if s), default=1.0)
    rows = []
    for cid in keys:
        name = names.get(cid, f"<unknown {cid}>")
        rows.append(
            [
                _e(name),
                _e(len(vis.get(cid, []))),
                hist_svg(
                    np.array(vis.get(cid, [])), f"visibility of {name}", lo=0.0, hi=1.0, bins=10
                ),
                hist_svg(np.array(size.get(cid, [])), f"box size of {name}", lo=0.0, hi=smax),
            ]
        )
    return (
        '<p class="muted">visibility = visible / unoccluded pixels (0–1, every object); box size '
        "= √(width × height) of the modal box in pixels (objects with a visible box), one range "
        "for all classes.</p>"
        + _table(["class", "objects", "visibility", "box size (px)"], rows, "vis")
    )


def _factors_section(ds: Dataset) -> str:
    sample = _factor_figures(ds.samples, SAMPLE_NON_FACTORS, "samples")
    objects = _factor_figures(ds.objects, OBJECT_NON_FACTORS, "objects")
    out = []
    if sample:
        out.append(
            f'<h3>sample factors (samples.parquet)</h3><div class="charts">{"".join(sample)}</div>'
        )
    if objects:
        out.append(
            f'<h3>object factors (objects.parquet)</h3><div class="charts">{"".join(objects)}</div>'
        )
    return "".join(out) or '<p class="muted">no factor columns</p>'


def _sweep_section(ds: Dataset, sweep: dict[str, Any]) -> str:
    """A strip per scene: one thumbnail per sweep step, steps as columns. The samples of step
    ``s`` are read from the ``sweep.step`` column and the ``k``-th of them (by sample index) is
    scene ``k``: the sampler renders the same ``count`` base scenes at every step."""
    t = ds.samples.select(
        [
            c
            for c in ("sample_index", "sweep.step", "sweep.value", "num_visible")
            if c in ds.samples.column_names
        ]
    ).to_pydict()
    by_step: dict[int, list[int]] = {}
    value_of: dict[int, Any] = {}
    visible: dict[int, list[float]] = {}
    nvis = t.get("num_visible", [None] * len(t["sample_index"]))
    for pos, (step, value, nv) in enumerate(
        zip(t["sweep.step"], t["sweep.value"], nvis, strict=True)
    ):
        by_step.setdefault(int(step), []).append(pos)
        value_of.setdefault(int(step), value)
        if nv is not None:
            visible.setdefault(int(step), []).append(float(nv))
    steps = sorted(by_step)
    field = str(sweep.get("field"))
    scenes = min(SWEEP_SCENES, min(len(v) for v in by_step.values())) if steps else 0
    head = "".join(
        f'<th class="sweep-step" data-step="{s}">{_e(_fmt(value_of[s]))}</th>' for s in steps
    )
    rows = []
    for k in range(scenes):
        cells = []
        for s in steps:
            pos = by_step[s][k]
            item = ds[pos]
            img = item.get("rgb")
            if img is None:
                cells.append('<td class="muted">no rgb</td>')
                continue
            uri = _png(img, max_side=THUMB_SIDE)
            tip = f"sample #{item['index']} · {field} = {_fmt(value_of[s])} · visible " + str(
                sum(1 for o in item["objects"] if o.get("status") == "visible")
            )
            cells.append(
                f'<td><img class="thumb" alt="{_e(tip)}" title="{_e(tip)}" src="{uri}"></td>'
            )
        rows.append(f'<tr><th class="scene">scene {k}</th>{"".join(cells)}</tr>')
    table = (
        f'<div class="sweep-wrap"><table class="sweep"><thead><tr><th>{_e(field)} →</th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    chart = ""
    if visible and all(s in visible for s in steps):
        ys = [float(np.mean(visible[s])) for s in steps]
        numeric = all(isinstance(value_of[s], int | float) for s in steps)
        xs = [float(value_of[s]) for s in steps] if numeric else [float(s) for s in steps]
        labels = [_fmt(value_of[s]) for s in steps]
        chart = "<h3>mean visible objects per step</h3>" + _line_svg(xs, ys, labels, field)
    how = (
        f'<p class="muted">{len(steps)} steps of <code>{_e(field)}</code> × '
        f"{len(t['sample_index']) // max(len(steps), 1)} scenes; the first {scenes} scenes "
        "shown, every step re-renders the same scene with only the swept field changed.</p>"
    )
    return how + table + chart


def _spec_section(manifest: dict[str, Any]) -> str:
    import yaml

    spec = manifest.get("spec")
    spec_text = (
        yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
        if spec is not None
        else "(the manifest has no spec)"
    )
    files = manifest.get("files") or {}
    shown = {k: v for k, v in manifest.items() if k != "files"}
    manifest_text = json.dumps(shown, indent=1, ensure_ascii=False, default=str)
    return (
        f"<details><summary>resolved spec (YAML)</summary><pre>{_e(spec_text)}</pre></details>"
        f"<details><summary>manifest.json (without its <code>files</code> map, which lists "
        f"{len(files)} files with their sha256)</summary><pre>{_e(manifest_text)}</pre>"
        "</details>"
    )


def dataset_html(dataset: Dataset | str | os.PathLike[str], n: int = 24) -> str:
    """The dataset report page (see the module doc)."""
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    summary = summarize(ds, verify=False)
    cols = _objects_columns(ds)
    grid, shown = _grid(ds, n)
    sections: list[Section] = [
        ("samples", "samples", grid),
        ("classes", "classes", _classes_section(summary)),
        ("status", "object status", _status_section(ds, cols)),
        ("visibility", "visibility and box size per class", _visibility_section(ds, cols)),
        ("factors", "factors", _factors_section(ds)),
    ]
    sweep = _sweep_of(ds)
    if sweep is not None:
        sections.append(("sweep", "sweep", _sweep_section(ds, sweep)))
    sections.append(("spec", "spec and manifest", _spec_section(ds.manifest)))
    data = {
        "kind": "dataset",
        "root": str(ds.root),
        "samples": len(ds),
        "objects": len(ds.objects),
        "shown": shown,
        "classes": [str(c["name"]) for c in ds.classes],
        "synthcv_version": __version__,
    }
    return _page(f"synthcv report: {ds.root.name or ds.root}", _header(summary, ds), sections, data)


# ---------------------------------------------------------------------------- experiment


def _load_results(root: Path) -> dict[str, Any]:
    path = root / RESULTS
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(results).__name__}")
    return results


def experiment_html(path: str | os.PathLike[str]) -> str:
    """The experiment run report page: results.json's tables, the run's plots and summary.md."""
    root = Path(path)
    res = _load_results(root)
    head_rows = [
        ("run directory", str(root)),
        ("name", res.get("name")),
        ("recipe", res.get("recipe")),
        ("tasks", ", ".join(map(str, res.get("tasks") or [])) or None),
        ("seeds", ", ".join(map(str, res.get("seeds") or [])) or None),
    ]
    header = (
        '<table class="kv" id="header">'
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in head_rows)
        + "</table>"
    )
    sections: list[Section] = []
    summary = res.get("summary") or {}
    if isinstance(summary, dict) and summary:
        rows = []
        for metric, s in summary.items():
            s = s if isinstance(s, dict) else {"mean": s}
            rows.append([_e(metric), *(_e(_fmt(s.get(k))) for k in ("mean", "lo", "hi", "n"))])
        sections.append(
            (
                "summary",
                "summary (mean and 95% interval over seeds)",
                _table(["metric", "mean", "lo", "hi", "seeds"], rows, "summary"),
            )
        )
    per_seed = res.get("per_seed") or {}
    if isinstance(per_seed, dict) and per_seed:
        seeds = list(res.get("seeds") or [])
        width = max(len(v) if isinstance(v, list) else 1 for v in per_seed.values())
        names = (
            [f"seed {s}" for s in seeds]
            if len(seeds) == width
            else [f"run {i}" for i in range(width)]
        )
        rows = []
        for metric, values in per_seed.items():
            values = values if isinstance(values, list) else [values]
            cells = [_e(_fmt(v)) for v in values] + [""] * (width - len(values))
            rows.append([_e(metric), *cells])
        sections.append(
            ("per-seed", "per seed", _table(["metric", *map(_e, names)], rows, "summary"))
        )
    slices = res.get("slices")
    if isinstance(slices, list) and slices and all(isinstance(r, dict) for r in slices):
        keys: list[str] = []
        for r in slices:
            keys += [k for k in r if k not in keys]
        rows = [[_e(_fmt(r.get(k))) for k in keys] for r in slices]
        sections.append(("slices", "slices", _table(list(map(_e, keys)), rows, "summary")))
    figures = []
    for png in sorted(root.glob("*.png")):
        uri = _data_uri(png.read_bytes())
        figures.append(
            f'<figure class="plot"><img alt="{_e(png.name)}" src="{uri}">'
            f"<figcaption>{_e(png.name)}</figcaption></figure>"
        )
    if figures:
        sections.append(("plots", "plots", f'<div class="plots">{"".join(figures)}</div>'))
    md = root / SUMMARY_MD
    if md.is_file():
        sections.append(
            ("summary-md", SUMMARY_MD, f"<pre>{_e(md.read_text(encoding='utf-8'))}</pre>")
        )
    raw = json.dumps(res, indent=1, ensure_ascii=False, default=str)
    sections.append(
        (
            "results",
            RESULTS,
            f"<details><summary>{RESULTS}</summary><pre>{_e(raw)}</pre></details>",
        )
    )
    data = {
        "kind": "experiment",
        "root": str(root),
        "name": res.get("name"),
        "recipe": res.get("recipe"),
        "plots": [p.name for p in sorted(root.glob("*.png"))],
        "synthcv_version": __version__,
    }
    title = f"synthcv experiment: {res.get('name') or root.name}"
    return _page(title, header, sections, data)


# ------------------------------------------------------------------------------------ page

_CSS = """
:root{--fg:#1d2125;--muted:#6a737d;--line:#d0d7de;--bg:#fff;--bar:#4c78a8;--stage:#222}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;padding:16px 24px;max-width:1600px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
var(--line);padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
nav a{margin-right:12px}
table{border-collapse:collapse;margin:4px 0 10px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:middle}
td{font-variant-numeric:tabular-nums}
table.kv th{background:#f6f8fa;font-weight:600}
.muted{color:var(--muted)}.const{color:var(--muted);font-style:italic;margin:4px 0}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:middle}
.controls{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0;position:sticky;top:0;
background:var(--bg);padding:6px 0;z-index:2}
fieldset{border:1px solid var(--line);border-radius:4px;padding:3px 10px;margin:0}
fieldset label{margin-right:12px;white-space:nowrap;cursor:pointer}
.grid{display:grid;grid-template-columns:repeat(auto-fill,256px);gap:10px}
.tile{margin:0;width:256px}
.tile figcaption{font-size:12px;color:var(--muted);margin-top:2px}
.stage{position:relative;width:256px;background:var(--stage);overflow:hidden}
.stage>img,.stage>svg,.stage>.missing{position:absolute;left:0;top:0;width:100%;height:100%}
.stage.px img{image-rendering:pixelated}
.stage .base,.stage .missing,.stage .layer{display:none}
.missing{color:#bbb;align-items:center;justify-content:center;font-size:12px}
.grid.view-rgb .base-rgb,.grid.view-depth .base-depth,.grid.view-normals .base-normals,
.grid.view-parts .base-parts,.grid.view-clean .base-clean{display:block}
.grid.view-rgb .missing-rgb,.grid.view-depth .missing-depth,.grid.view-normals
.missing-normals,.grid.view-parts .missing-parts,.grid.view-clean .missing-clean{display:flex}
.grid.show-instances img.layer-instances,.grid.show-semantic img.layer-semantic{display:block}
.grid.show-boxes g.layer-boxes,.grid.show-hidden g.layer-hidden,
.grid.show-keypoints g.layer-keypoints{display:inline}
svg.ov{pointer-events:none}
svg.ov g g{pointer-events:visiblePainted}
svg.ov rect{fill:none;stroke-width:1.5;vector-effect:non-scaling-stroke}
svg.ov g.layer-hidden rect{stroke-dasharray:4 3}
svg.ov text{font-family:sans-serif;paint-order:stroke;stroke:#000;stroke-linejoin:round}
svg.ov line{stroke-width:1.5;vector-effect:non-scaling-stroke}
svg.ov circle{stroke-width:1.2;vector-effect:non-scaling-stroke}
.charts{display:flex;flex-wrap:wrap;gap:8px 18px}
figure.factor{margin:0;width:240px}
figure.factor figcaption{font-size:12px;font-family:ui-monospace,monospace;
overflow-wrap:anywhere}
svg.chart{display:block;overflow:visible}
svg.chart .bar{fill:var(--bar)}svg.chart .bar-all{fill:#c9d3dd}
svg.chart .axis{stroke:#999;stroke-width:1}
svg.chart .tick{font-size:10px;fill:#555;font-family:sans-serif}
svg.chart .line{fill:none;stroke:var(--bar);stroke-width:2}svg.chart .dot{fill:var(--bar)}
.sweep-wrap{overflow-x:auto}
table.sweep td{padding:2px}table.sweep th.scene{white-space:nowrap}
img.thumb{width:96px;display:block;image-rendering:auto}
details{margin:6px 0}summary{cursor:pointer}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:480px;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:12px}
figure.plot{margin:0;max-width:720px}figure.plot img{max-width:100%;display:block}
footer{margin-top:28px;color:var(--muted);font-size:12px}
"""

# Toggles set classes on #grid; CSS decides what is drawn. No network, no storage, no eval.
_JS = """
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  if (!grid) { return; }
  var inputs = document.querySelectorAll(".controls input");
  function apply() {
    var cls = ["grid"];
    var view = document.querySelector('.controls input[name="view"]:checked');
    if (view) { cls.push("view-" + view.value); }
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if (el.type === "checkbox" && el.checked) {
        cls.push("show-" + el.getAttribute("data-layer"));
      }
    }
    grid.className = cls.join(" ");
  }
  for (var i = 0; i < inputs.length; i++) { inputs[i].addEventListener("change", apply); }
  apply();
})();
"""


def _page(title: str, header: str, sections: list[Section], data: dict[str, Any]) -> str:
    nav = " ".join(f'<a href="#{_e(sid)}">{_e(name)}</a>' for sid, name, _ in sections)
    body = "\n".join(
        f'<section id="{_e(sid)}"><h2>{_e(name)}</h2>\n{html_body}\n</section>'
        for sid, name, html_body in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>{_CSS}</style>\n</head><body>\n"
        f"<h1>{_e(title)}</h1>\n{header}\n<nav>{nav}</nav>\n"
        + body
        + f"\n<footer>written by synthcv {_e(__version__)} · one self-contained file, works "
        "offline</footer>\n"
        f'<script type="application/json" id="report-data">{_script_json(data)}</script>\n'
        f"<script>{_JS}</script>\n</body></html>\n"
    )
