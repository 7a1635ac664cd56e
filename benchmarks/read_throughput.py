"""Training-side read throughput: images/s into a torch DataLoader from the directory layout,
from WebDataset tar shards and from Hugging Face parquet, for the same tabletop samples.

Every reader delivers the same thing per sample, so the rates compare: the RGB image as a
uint8 CHW tensor and the boxes and class ids of the visible non-distractor objects. The
DataLoader uses ``--workers`` processes and batches of ``--batch``; one pass over the data is
timed after a warm-up pass (page cache warm for all three). The dataset is rendered once into
``--data`` (tiny backend) and reused on later runs, as are its exports.

Example::

    ./run python benchmarks/read_throughput.py --count 2000
    ./run python benchmarks/read_throughput.py --count 10000 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

os.environ.setdefault("SYNTHCV_TRACKING", "0")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--data", type=Path, default=Path("out/bench/read_tabletop"))
    args = p.parse_args(argv)
    announce()
    return args


def _labels(objects: list[dict[str, Any]]) -> tuple[list[list[float]], list[int]]:
    kept = [o for o in objects if not o["is_distractor"] and o["status"] == "visible"]
    return [list(o["bbox"]) for o in kept], [int(o["class_id"]) for o in kept]


class DirectoryReader:
    """The directory layout: synthcv's own reader, RGB decoded alone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ds = None

    def __len__(self) -> int:
        from synthcv.format import open_dataset

        return len(open_dataset(self.root))

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        from synthcv.format import open_dataset

        if self.ds is None:
            self.ds = open_dataset(self.root)
        item = self.ds.read(i, ["rgb"])
        boxes, labels = _labels(item["objects"])
        return torch.from_numpy(item["rgb"].transpose(2, 0, 1).copy()), (boxes, labels)


def _collate(batch: list[tuple[Any, Any]]) -> tuple[Any, list[Any]]:
    import torch

    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def _time(loader: Any) -> tuple[int, float]:
    n = 0
    for images, _ in loader:  # warm-up pass
        n += len(images)
    start = time.perf_counter()
    n = 0
    for images, _ in loader:
        n += len(images)
    return n, time.perf_counter() - start


def _rate(source: Any, args: argparse.Namespace) -> tuple[int, float]:
    """One timed pass of ``source`` (a map- or iterable-style dataset) through the DataLoader."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        source,
        batch_size=args.batch,
        num_workers=args.workers,
        collate_fn=_collate,
        persistent_workers=args.workers > 0,
    )
    return _time(loader)


def directory_rate(root: Path, args: argparse.Namespace) -> tuple[int, float]:
    return _rate(DirectoryReader(root), args)


def webdataset_rate(root: Path, args: argparse.Namespace) -> tuple[int, float]:
    import torch
    import webdataset as wds

    manifest = json.loads((root / "manifest.json").read_text())
    urls = [str(root / s["file"]) for s in manifest["shards"]]

    def to_pair(sample: dict[str, Any]) -> tuple[Any, Any]:
        rgb = torch.from_numpy(sample["rgb.png"].transpose(2, 0, 1).copy())
        return rgb, _labels(sample["json"]["objects"])

    pipeline = (
        wds.WebDataset(urls, shardshuffle=False, empty_check=False)
        .map(lambda s: {"rgb.png": s["rgb.png"], "json": s["json"]})  # decode only these
        .decode("rgb8")
        .map(to_pair)
    )
    return _rate(pipeline, args)


class ParquetReader:
    """Hugging Face parquet through ``datasets`` (memory-mapped Arrow), images decoded by PIL."""

    def __init__(self, root: Path) -> None:
        import datasets

        data = datasets.load_dataset(str(root), split="train").select_columns(["image", "objects"])
        self.data = data.cast_column("image", datasets.Image(decode=False))  # PIL below

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import numpy as np
        import torch
        from PIL import Image

        row = self.data[i]
        with Image.open(io.BytesIO(row["image"]["bytes"])) as im:
            rgb = np.asarray(im.convert("RGB"))
        objs = row["objects"]
        visible = [k for k, s in enumerate(objs["status"]) if s == "visible"]
        boxes = [objs["bbox"][k] for k in visible]
        labels = [objs["category"][k] + 1 for k in visible]
        return torch.from_numpy(rgb.transpose(2, 0, 1).copy()), (boxes, labels)


def parquet_rate(root: Path, args: argparse.Namespace) -> tuple[int, float]:
    return _rate(ParquetReader(root), args)


def prepare(args: argparse.Namespace) -> dict[str, Path]:
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec
    from synthcv.tools.hf import export_hf
    from synthcv.tools.webdataset import export_webdataset

    root = args.data
    spec = load_spec(REPO / "examples" / "tabletop.yaml").with_count(args.count)
    manifest = root / "manifest.json"
    if not (manifest.is_file() and json.loads(manifest.read_text())["count"] == args.count):
        print(f"[data] rendering {args.count} tabletop samples → {root}", flush=True)
        generate(spec, root, workers=2, overwrite=manifest.is_file(), on_empty="allow")
    paths = {"directory": root, "webdataset": root / "webdataset", "hf": root / "hf"}
    if not (paths["webdataset"] / "manifest.json").is_file():
        print("[data] exporting webdataset", flush=True)
        # enough shards for every DataLoader worker to get some (WebDataset splits by shard)
        export_webdataset(root, paths["webdataset"], shard_size=max(1, min(500, args.count // 8)))
    if not (paths["hf"] / "README.md").is_file():
        print("[data] exporting hf", flush=True)
        export_hf(root, paths["hf"], shard_size=500)
    return paths


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    paths = prepare(args)
    rows = []
    for name, rate in (
        ("directory", directory_rate),
        ("webdataset", webdataset_rate),
        ("hf parquet", parquet_rate),
    ):
        key = "hf" if name == "hf parquet" else name
        n, seconds = rate(paths[key], args)
        rows.append((name, n, n / seconds))
        print(f"[read] {name}: {n} images in {seconds:.2f} s", flush=True)
    base = rows[0][2]
    print(f"\nRGB + boxes into a DataLoader, {args.workers} workers, batch {args.batch}")
    print("| layout | images | images/s | vs directory |")
    print("|---|---|---|---|")
    for name, n, r in rows:
        print(f"| {name} | {n} | {r:.0f} | {r / base:.2f} |")
    import torch

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
