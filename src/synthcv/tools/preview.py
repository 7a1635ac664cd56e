"""Contact sheet: a tile per sample with RGB + boxes, instance overlay and colormapped depth.

The sheet is a deterministic function of the dataset and (n, cols): samples are picked evenly
over the index, colours come from a fixed palette keyed by instance id, and depth is
histogram-equalised per image over valid pixels. Small images are upscaled (nearest) so
labels stay readable.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import write_with_atomic
from synthcv.format import Dataset, open_dataset

PAD = 4  # pixels between panels and tiles, and around the sheet
HEADER = 14  # height of the caption strip above each tile
PANEL_MIN = 128  # small images are upscaled by an integer factor to at least this size
PANELS = 3  # RGB + boxes, instance overlay, depth
BACKGROUND = (24, 24, 24)


def panel_scale(width: int, height: int) -> int:
    """Integer upscaling factor so the larger side is at least PANEL_MIN pixels."""
    return max(1, math.ceil(PANEL_MIN / max(width, height)))


def pick_samples(length: int, n: int) -> list[int]:
    """``n`` positions spread evenly over ``range(length)`` (all of them if n >= length)."""
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    if n >= length:
        return list(range(length))
    return [int(v) for v in np.linspace(0, length - 1, n).round().astype(int)]


def palette(ids: np.ndarray) -> np.ndarray:
    """Distinct, stable RGB colours (uint8) for instance ids via golden-ratio hue steps."""
    ids = np.asarray(ids, dtype=np.float64)
    h = (ids * 0.618033988749895) % 1.0
    s, v = 0.75, 0.95
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    vv = np.full_like(h, v)
    pp = np.full_like(h, p)
    r = np.choose(i, [vv, q, pp, pp, t, vv])
    g = np.choose(i, [t, vv, vv, q, pp, pp])
    b = np.choose(i, [pp, pp, t, vv, vv, q])
    return (np.stack([r, g, b], axis=-1) * 255).round().astype(np.uint8)


def _viridis() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]


def _upscale(img: np.ndarray, s: int) -> np.ndarray:
    return img if s == 1 else np.repeat(np.repeat(img, s, axis=0), s, axis=1)


def _placeholder(w: int, h: int, text: str, font: Any):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (w, h), (60, 60, 60))
    ImageDraw.Draw(im).text((4, 4), text, fill=(200, 200, 200), font=font)
    return im


def _rgb_panel(item: dict[str, Any], s: int, font: Any):
    from PIL import Image, ImageDraw

    im = Image.fromarray(_upscale(_as_rgb(item["rgb"]), s))
    draw = ImageDraw.Draw(im)
    for obj in item["objects"]:
        box = obj.get("bbox")
        if obj.get("is_distractor") or box is None or obj.get("status") != "visible":
            continue
        x, y, w, h = box
        colour = tuple(int(c) for c in palette(np.array([obj["instance_id"]]))[0])
        x0, y0 = round(x * s), round(y * s)
        x1, y1 = round((x + w) * s) - 1, round((y + h) * s) - 1
        draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=colour, width=1)
        label = str(obj.get("class_name", obj.get("class_id")))
        tb = draw.textbbox((0, 0), label, font=font)
        ty = y0 - (tb[3] - tb[1]) - 2 if y0 - (tb[3] - tb[1]) - 2 >= 0 else y0 + 1
        draw.rectangle([x0, ty, x0 + tb[2] + 2, ty + tb[3] + 1], fill=(0, 0, 0))
        draw.text((x0 + 1, ty), label, fill=colour, font=font)
    return im


def _instance_panel(item: dict[str, Any], s: int):
    from PIL import Image

    inst = item["instance"]
    rgb = _as_rgb(item["rgb"]).astype(np.float32) if item["rgb"] is not None else None
    colours = palette(inst).astype(np.float32)
    base = rgb if rgb is not None else np.zeros((*inst.shape, 3), np.float32)
    fg = inst > 0
    out = base * 0.5
    out[fg] = base[fg] * 0.35 + colours[fg] * 0.65
    return Image.fromarray(_upscale(out.round().clip(0, 255).astype(np.uint8), s))


def depth_colors(depth: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """Histogram-equalised depth as (H, W, 3) uint8: objects a few cm apart stay
    distinguishable even when the ground spans metres. Near is bright (yellow), far dark
    (purple), no hit black. Shared by the contact sheet and the HTML report."""
    lut = _viridis() if lut is None else lut
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros((*depth.shape, 3), np.uint8)
    if valid.any():
        v = depth[valid]
        ordered = np.sort(v)
        rank = np.searchsorted(ordered, v, side="left").astype(np.float64)
        t = 1.0 - rank / max(len(v) - 1, 1)
        out[valid] = lut[(t * 255).round().astype(int)]
    return out


def _depth_panel(depth: np.ndarray, s: int, lut: np.ndarray):
    """The depth panel: :func:`depth_colors`, upscaled."""
    from PIL import Image

    return Image.fromarray(_upscale(depth_colors(depth, lut), s))


def contact_sheet(dataset: Dataset | str | os.PathLike[str], n: int = 16, cols: int = 4):
    """Build the contact sheet as a PIL image (see module doc for the layout)."""
    from PIL import Image, ImageDraw, ImageFont

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    if cols <= 0:
        raise ValueError(f"--cols must be positive, got {cols}")
    if len(ds) == 0:
        raise ValueError(f"{ds.root}: dataset has no samples to preview")
    picks = pick_samples(len(ds), n)
    items = [ds[j] for j in picks]
    width = max(_image_shape(it)[1] for it in items)
    height = max(_image_shape(it)[0] for it in items)
    s = panel_scale(width, height)
    pw, ph = width * s, height * s
    tw, th = PANELS * pw + (PANELS - 1) * PAD, HEADER + ph
    ncols = min(cols, len(items))
    nrows = math.ceil(len(items) / ncols)
    sheet = Image.new(
        "RGB", (ncols * tw + (ncols + 1) * PAD, nrows * th + (nrows + 1) * PAD), BACKGROUND
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    lut = _viridis()
    for k, item in enumerate(items):
        r, c = divmod(k, ncols)
        x0, y0 = PAD + c * (tw + PAD), PAD + r * (th + PAD)
        nvis = sum(1 for o in item["objects"] if o.get("status") == "visible")
        caption = f"#{item['index']}  objects {len(item['objects'])}  visible {nvis}"
        draw.text((x0, y0), caption, fill=(230, 230, 230), font=font)
        panels = [
            _rgb_panel(item, s, font)
            if item["rgb"] is not None
            else _placeholder(pw, ph, "no rgb", font),
            _instance_panel(item, s)
            if item["instance"] is not None
            else _placeholder(pw, ph, "no instance", font),
            _depth_panel(item["depth"], s, lut)
            if item["depth"] is not None
            else _placeholder(pw, ph, "no depth", font),
        ]
        for p, panel in enumerate(panels):
            sheet.paste(panel, (x0 + p * (pw + PAD), y0 + HEADER))
    return sheet


def _image_shape(item: dict[str, Any]) -> tuple[int, int]:
    for m in ("rgb", "instance", "depth", "semantic"):
        if item[m] is not None:
            return item[m].shape[:2]
    raise ValueError(f"sample {item['index']} has no image modality to preview")


def write_preview(
    dataset: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str],
    n: int = 16,
    cols: int = 4,
) -> Path:
    """Render the contact sheet and write it to ``out`` (PNG) atomically."""
    out = Path(out)
    sheet = contact_sheet(dataset, n=n, cols=cols)
    write_with_atomic(out, lambda tmp: sheet.save(tmp, format="PNG"))
    return out


def flow_colors(flow: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Optical flow as colour (Middlebury's convention: hue is the direction, saturation the
    magnitude relative to the largest in the image; black where there is no surface)."""
    import matplotlib.colors

    if flow is None:
        return np.zeros((*shape, 3), np.uint8)
    dx, dy = flow[..., 0], flow[..., 1]
    ok = np.isfinite(dx) & np.isfinite(dy)
    mag = np.where(ok, np.hypot(dx, dy), 0.0)
    hue = (np.arctan2(-dy, -dx) / np.pi + 1) / 2
    hsv = np.stack([np.where(ok, hue, 0), np.clip(mag / max(mag.max(), 1e-6), 0, 1), ok], -1)
    return (matplotlib.colors.hsv_to_rgb(hsv) * 255).round().astype(np.uint8)


def clip_frames(dataset: Dataset, clip: int) -> list[Any]:
    """One image per frame of ``clip``: RGB | instance tracks | forward flow."""
    from PIL import Image

    data = dataset.clip(clip, ("rgb", "instance", "flow"))
    frames = []
    for t in range(len(data["frame"])):
        item = {"rgb": data["rgb"][t], "instance": data["instance"][t], "index": t}
        h, w = _image_shape({**item, "depth": None, "semantic": None})
        s = panel_scale(w, h)
        flow = data["flow"][t] if isinstance(data["flow"], list) else None
        panels = [
            Image.fromarray(_upscale(_as_rgb(item["rgb"]), s)),
            _instance_panel(item, s),
            Image.fromarray(_upscale(flow_colors(flow, (h, w)), s)),
        ]
        strip = Image.new("RGB", (sum(p.width for p in panels) + 8, panels[0].height), "white")
        x = 0
        for p in panels:
            strip.paste(p, (x, 0))
            x += p.width + 4
        frames.append(strip)
    return frames


def write_clip_previews(
    dataset: Dataset | str | os.PathLike[str], out_dir: str | os.PathLike[str], n: int = 4
) -> list[Path]:
    """An animated GIF per clip (the first ``n``, spread over the dataset) at the clip's fps:
    RGB, instance tracks (a track keeps its colour) and forward flow, side by side."""
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    if not ds.clips:
        raise ValueError(f"{ds.root}: not a sequence dataset (written without sequence:)")
    fps = float((ds.manifest.get("sequence") or {}).get("fps") or 10.0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c in pick_samples(ds.clips, n):
        frames = clip_frames(ds, c)
        path = out_dir / f"clip-{c:06d}.gif"

        def save(tmp: Path, frames: list[Any] = frames) -> None:
            frames[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=frames[1:],
                duration=max(20, round(1000 / fps)),
                loop=0,
            )

        write_with_atomic(path, save)
        written.append(path)
    return written
