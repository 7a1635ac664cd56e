"""How a synthetic image set differs from a real one, measured in a classifier's feature space.

Accuracy after training says *whether* synthetic data falls short; this says *where*. Both sets
are embedded by one network (by default a :class:`~synthcv.tasks.model.SmallCNN` trained on the
real MNIST *training part*, validation digits held out, its penultimate 128-d layer — the same
idea as FID's Inception features, sized for digits), and compared there:

- **precision / recall** of distributions (Kynkäänniemi et al. 2019): the share of synthetic
  samples inside the real manifold (each real sample's ball out to its k-th nearest real
  neighbour) — "is synthetic realistic?" — and the share of real samples inside the synthetic
  manifold — "does synthetic cover real?";
- **density / coverage** (Naeem et al. 2020): coverage is the share of real samples whose own
  ball holds at least one synthetic sample, robust to synthetic outliers;
- a **Fréchet distance** between Gaussian fits of the two feature clouds (FID's formula in this
  feature space), beside the same distance between two halves of the real set — the floor that
  says how much of the figure is sampling noise;
- the same per class, the **real samples farthest from any synthetic one** (the gap, as a
  picture) and the synthetic samples farthest from any real one;
- when the synthetic set records factors (a synthcv dataset), **realism by factor**: precision
  in every slice of every factor, worst first — which spec values make unrealistic images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.tasks.data import ArraySet, SourceSpec

__all__ = [
    "CompareReport",
    "compare_sets",
    "frechet_distance",
    "load_compare_source",
    "manifold_metrics",
    "parse_source",
]

#: Neighbourhood size of the manifold estimates (Kynkäänniemi et al. use k = 3).
DEFAULT_K = 3


def parse_source(text: str) -> SourceSpec:
    """A command-line source: ``mnist[:train|test|val|train-part]``, a synthcv dataset
    directory, or a samples ``.npz`` file. ``mnist:val`` is the fixed validation part of the
    7,000 training digits (the experiments' ``part: val``); ``mnist:train-part`` the rest."""
    if text == "mnist" or text.startswith("mnist:"):
        which = text.partition(":")[2] or "train"
        forms = {
            "train": {"split": "train"},
            "test": {"split": "test"},
            "all": {"split": "all"},
            "val": {"split": "train", "part": "val"},
            "train-part": {"split": "train", "part": "train"},
        }
        if which not in forms:
            raise ValueError(f"{text!r}: expected mnist:{{{','.join(forms)}}}")
        return SourceSpec(kind="mnist", **forms[which])
    path = Path(text)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"samples file not found: {path}")
        return SourceSpec(kind="samples", path=str(path))
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"{path}: expected a synthcv dataset directory (no manifest.json there), a .npz "
            "samples file, or mnist[:split]"
        )
    return SourceSpec(kind="dataset", path=str(path))


def load_compare_source(
    text: str, n: int | None = None, seed: int = 0, mnist_path: str | None = None
) -> ArraySet:
    """Load a source for comparison; ``n`` keeps a seeded random subset (class shares kept in
    expectation), so large sets compare in seconds."""
    from synthcv.realdata import validation_part
    from synthcv.tasks.data import load_full

    spec = parse_source(text)
    if spec.kind == "mnist" and mnist_path:
        spec = spec.model_copy(update={"path": mnist_path})
    data = load_full(spec, name=text)
    if spec.part is not None:
        data = data.take(validation_part(len(data), spec.part, spec.val_fraction))
    if n is not None and n < len(data):
        data = data.take(np.sort(np.random.default_rng(seed).permutation(len(data))[:n]))
    return data


# -- metrics on features ---------------------------------------------------------------------


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = (a * a).sum(1)[:, None]
    bb = (b * b).sum(1)[None, :]
    return np.maximum(aa + bb - 2 * a @ b.T, 0.0)


def _nearest(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a`` its nearest row of ``b``: (index, distance)."""
    idx = np.empty(len(a), np.int64)
    dist = np.empty(len(a), np.float64)
    for i in range(0, len(a), chunk):
        d = _sq_dists(a[i : i + chunk], b)
        j = d.argmin(1)
        idx[i : i + chunk] = j
        dist[i : i + chunk] = np.sqrt(d[np.arange(len(j)), j])
    return idx, dist


def knn_radii(x: np.ndarray, k: int = DEFAULT_K, chunk: int = 2048) -> np.ndarray:
    """Distance from every row of ``x`` to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples, got {len(x)}")
    out = np.empty(len(x), np.float64)
    for i in range(0, len(x), chunk):
        d = _sq_dists(x[i : i + chunk], x)
        # Column k of the sorted row: index 0 is the sample itself (distance 0).
        out[i : i + chunk] = np.sqrt(np.partition(d, k, axis=1)[:, k])
    return out


def _within(a: np.ndarray, b: np.ndarray, radii_b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(len(a),) count of the balls of ``b`` (radius ``radii_b``) each row of ``a`` lies in."""
    counts = np.zeros(len(a), np.int64)
    r2 = radii_b[None, :] ** 2
    for i in range(0, len(a), chunk):
        counts[i : i + chunk] = (_sq_dists(a[i : i + chunk], b) <= r2).sum(1)
    return counts


def manifold_metrics(real: np.ndarray, synth: np.ndarray, k: int = DEFAULT_K) -> dict[str, Any]:
    """Precision, recall, density and coverage of ``synth`` against ``real`` (features), plus
    the per-sample evidence (which synthetic samples are realistic, which real ones covered)."""
    r_real, r_synth = knn_radii(real, k), knn_radii(synth, k)
    synth_in_real = _within(synth, real, r_real)
    real_in_synth = _within(real, synth, r_synth)
    _, nn_real_to_synth = _nearest(real, synth)
    _, nn_synth_to_real = _nearest(synth, real)
    covered = nn_real_to_synth <= r_real
    return {
        "precision": float((synth_in_real > 0).mean()),
        "recall": float((real_in_synth > 0).mean()),
        "density": float(synth_in_real.sum() / (k * len(synth))),
        "coverage": float(covered.mean()),
        "synth_realistic": synth_in_real > 0,
        "real_covered": covered,
        "real_to_synth": nn_real_to_synth,
        "synth_to_real": nn_synth_to_real,
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½): FID's formula on any features.

    Tr((Σa Σb)^½) is taken as the sum of square roots of the eigenvalues of Σa^½ Σb Σa^½ (the
    same spectrum, symmetric, so no complex round-off as with a general matrix square root)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)


# -- embeddings ------------------------------------------------------------------------------


@dataclass
class Embedding:
    """A named feature map of uint8 images (N, H, W[, C]) → (N, D) float64."""

    name: str
    description: str
    fn: Any

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.fn(images)


def pixel_embedding(size: int = 28) -> Embedding:
    """Raw grey pixels resized to ``size``²: no training, but blind to what a model sees."""

    def fn(images: np.ndarray) -> np.ndarray:
        x = _grey_float(images, size)
        return x.reshape(len(x), -1).astype(np.float64)

    return Embedding("pixels", f"grey pixels at {size}x{size}, in [0, 1]", fn)


def _grey_float(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 images of any size and channels → float32 (N, 1, size, size) in [0, 1]."""
    import torch.nn.functional as F

    from synthcv.tasks.train import to_tensor

    x = to_tensor(images, 1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x.numpy()


def cnn_embedding(model: Any, name: str, description: str, size: int = 28) -> Embedding:
    """The penultimate layer of a trained :class:`SmallCNN` (its 4×width hidden units), on
    grey images resized to the ``size`` it was trained at."""
    import torch

    model.eval()

    def fn(images: np.ndarray) -> np.ndarray:
        feats = []
        with torch.no_grad():
            for i in range(0, len(images), 512):
                x = torch.from_numpy(_grey_float(images[i : i + 512], size))
                if model.in_channels == 3:
                    x = x.expand(-1, 3, -1, -1)
                feats.append(model.embed(x).double().numpy())
        return np.concatenate(feats) if feats else np.zeros((0, 1))

    return Embedding(name, description, fn)


def reference_model(seed: int = 0) -> Any:
    """The reference embedding's untrained SmallCNN, its initial weights drawn from ``seed``:
    training seeds only the batches, so without this the network depended on whatever had
    used torch's global generator before (other imports, earlier models)."""
    import torch

    from synthcv.tasks.model import SmallCNN

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SmallCNN(10, 1)


def reference_embedding(
    cache_dir: str | Path, mnist_path: str | None = None, seed: int = 0, progress: bool = False
) -> Embedding:
    """The default feature space: a SmallCNN trained on the real training part of MNIST (the
    validation digits held out), 15 epochs of 110 steps of 64, seed 0 — trained once (about a
    minute on 2 cores) and cached as ``cache_dir/mnist-embedding-<digest>-s<seed>-v2.pt``
    (v2: the seed sets the initial weights too, so every machine trains the same network)."""
    import torch

    from synthcv.fileio import atomic_path
    from synthcv.format import content_digest
    from synthcv.realdata import find_mnist8000
    from synthcv.tasks.train import FitConfig, fit

    digest = content_digest(find_mnist8000(mnist_path))[:12]
    path = Path(cache_dir) / f"mnist-embedding-{digest}-s{seed}-v2.pt"
    model = reference_model(seed)
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        train = load_compare_source("mnist:train-part", mnist_path=mnist_path)
        fit(
            model,
            [train],
            None,
            FitConfig(epochs=15, steps_per_epoch=110, batch_size=64),
            seed,
            progress=progress,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), tmp)
    desc = (
        "SmallCNN (width 32) trained on the 6,300 real MNIST training-part digits (validation "
        f"part held out), seed {seed}; penultimate 128-d layer; cached at {path}"
    )
    return cnn_embedding(model, "mnist-cnn", desc)


def embedding_from_file(path: str | Path) -> Embedding:
    """A SmallCNN state dict (``torch.save(model.state_dict())``) of 10 classes, 1 channel."""
    import torch

    from synthcv.tasks.model import SmallCNN

    state = torch.load(path, map_location="cpu", weights_only=True)
    width = int(state["features.0.0.weight"].shape[0])
    in_channels = int(state["features.0.0.weight"].shape[1])
    classes = int(state["head.5.weight"].shape[0])
    model = SmallCNN(classes, in_channels, width=width)
    model.load_state_dict(state)
    return cnn_embedding(model, Path(path).name, f"SmallCNN state dict {path}")


# -- the comparison --------------------------------------------------------------------------


@dataclass
class CompareReport:
    """Everything ``synthcv compare`` prints and writes; arrays stay out of ``to_dict``."""

    synth_name: str
    real_name: str
    embedding: str
    embedding_description: str
    k: int
    n_synth: int
    n_real: int
    overall: dict[str, float]
    per_class: list[dict[str, Any]]
    factor_slices: list[dict[str, Any]]
    farthest_real: list[dict[str, Any]]
    farthest_synth: list[dict[str, Any]]
    evidence: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    conformance: Any = None  # a synthcv.conformance.ConformanceReport when SYNTH is a dataset

    def to_dict(self) -> dict[str, Any]:
        return {
            "synth": self.synth_name,
            "real": self.real_name,
            "embedding": {"name": self.embedding, "description": self.embedding_description},
            "k": self.k,
            "n_synth": self.n_synth,
            "n_real": self.n_real,
            "overall": self.overall,
            "per_class": self.per_class,
            "realism_by_factor": self.factor_slices,
            "farthest_real": self.farthest_real,
            "farthest_synth": self.farthest_synth,
            "conformance": None if self.conformance is None else self.conformance.to_dict(),
        }

    def to_markdown(self, top_slices: int = 15) -> str:
        o = self.overall
        lines = [
            f"# {self.synth_name} vs {self.real_name}",
            "",
            f"Feature space: {self.embedding} — {self.embedding_description}. k = {self.k}; "
            f"{self.n_synth} synthetic, {self.n_real} real samples.",
            "",
            "| precision (realism) | recall (covers real) | density | coverage | Fréchet "
            "distance | real-vs-real floor |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {o['precision']:.3f} | {o['recall']:.3f} | {o['density']:.3f} | "
            f"{o['coverage']:.3f} | {o['frechet']:.3f} | {o['frechet_real_halves']:.3f} |",
        ]
        if self.per_class:
            lines += [
                "",
                "## Per class (lowest coverage first)",
                "",
                "| class | n synth | n real | precision | recall | coverage | Fréchet |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for r in self.per_class:
                fd = "—" if r["frechet"] is None else f"{r['frechet']:.3f}"
                lines.append(
                    f"| {r['class']} | {r['n_synth']} | {r['n_real']} | {r['precision']:.3f} | "
                    f"{r['recall']:.3f} | {r['coverage']:.3f} | {fd} |"
                )
        if self.factor_slices:
            lines += [
                "",
                "## Realism by factor (precision per slice, worst first, 95% Wilson interval)",
                "",
                "| factor | slice | n | precision | interval |",
                "|---|---|---:|---:|---|",
            ]
            for r in self.factor_slices[:top_slices]:
                lines.append(
                    f"| {r['factor']} | {r['slice']} | {r['n']} | {r['acc']:.3f} | "
                    f"[{r['lo']:.3f}, {r['hi']:.3f}] |"
                )
        if self.conformance is not None:
            lines += ["", "## Factor conformance (realized values vs the spec)", ""]
            lines.append(self.conformance.to_markdown().rstrip())
        return "\n".join(lines)


def compare_sets(
    synth: ArraySet,
    real: ArraySet,
    embedding: Embedding,
    k: int = DEFAULT_K,
    top: int = 32,
    factors: list[str] | None = None,
    bins: int = 5,
    seed: int = 0,
) -> CompareReport:
    """Compare ``synth`` with ``real`` in ``embedding``'s feature space (see the module doc)."""
    from synthcv.tasks.slices import slice_metrics

    for data in (synth, real):
        if len(data) <= k + 1:
            raise ValueError(f"{data.name}: {len(data)} samples; compare needs more than {k + 1}")
    fs, fr = embedding(synth.images), embedding(real.images)
    m = manifold_metrics(fr, fs, k)
    half = np.random.default_rng(seed).permutation(len(fr))
    a, b = fr[half[: len(fr) // 2]], fr[half[len(fr) // 2 :]]
    overall = {key: m[key] for key in ("precision", "recall", "density", "coverage")} | {
        "frechet": frechet_distance(fs, fr),
        # Two halves of the real set: what the distance is at zero gap, for this many samples.
        "frechet_real_halves": frechet_distance(a, b),
    }
    per_class = []
    for c in sorted(set(real.labels.tolist()) | set(synth.labels.tolist())):
        rs, ss = real.labels == c, synth.labels == c
        row: dict[str, Any] = {"class": c, "n_synth": int(ss.sum()), "n_real": int(rs.sum())}
        if rs.sum() > k + 1 and ss.sum() > k + 1:
            mc = manifold_metrics(fr[rs], fs[ss], k)
            row |= {key: mc[key] for key in ("precision", "recall", "coverage")}
            enough = min(rs.sum(), ss.sum()) > fr.shape[1]
            row["frechet"] = frechet_distance(fs[ss], fr[rs]) if enough else None
        else:
            row |= {"precision": 0.0, "recall": 0.0, "coverage": 0.0, "frechet": None}
        per_class.append(row)
    per_class.sort(key=lambda r: (r["coverage"], r["class"]))
    slices: list[dict[str, Any]] = []
    usable = {f: v for f, v in synth.factors.items() if factors is None or f in factors}
    if factors:
        missing = sorted(set(factors) - set(synth.factors))
        if missing:
            raise ValueError(
                f"{synth.name}: no factor {missing}; it records {sorted(synth.factors)[:20]}"
            )
    if usable:
        slices = slice_metrics(m["synth_realistic"], usable, bins=bins, min_count=5)
    return CompareReport(
        synth.name,
        real.name,
        embedding.name,
        embedding.description,
        k,
        len(synth),
        len(real),
        overall,
        per_class,
        slices,
        _farthest(real, m["real_to_synth"], top),
        _farthest(synth, m["synth_to_real"], top),
        {k_: m[k_] for k_ in ("synth_realistic", "real_covered", "real_to_synth", "synth_to_real")},
    )


def _farthest(data: ArraySet, dist: np.ndarray, top: int) -> list[dict[str, Any]]:
    """The ``top`` samples of ``data`` farthest from their nearest neighbour in the other set."""
    return [
        {"index": int(i), "label": int(data.labels[i]), "distance": float(dist[i])}
        for i in np.argsort(-dist, kind="stable")[:top]
    ]


def write_report(
    report: CompareReport, out: str | Path, synth: ArraySet, real: ArraySet
) -> list[Path]:
    """``compare.json``, ``compare.md`` and the two picture sheets (farthest real from any
    synthetic — the gap —, farthest synthetic from any real), each written atomically."""
    import json

    from synthcv.fileio import write_text_atomic
    from synthcv.genmodels.io import image_grid, save_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        out / "compare.json",
        out / "compare.md",
    ]
    write_text_atomic(paths[0], json.dumps(report.to_dict(), indent=2) + "\n")
    write_text_atomic(paths[1], report.to_markdown() + "\n")
    for name, data, rows in (
        ("farthest_real.png", real, report.farthest_real),
        ("farthest_synth.png", synth, report.farthest_synth),
    ):
        if rows:
            imgs = _grey_uint8(data.images[[r["index"] for r in rows]])
            paths.append(save_png(out / name, image_grid(imgs, cols=8), scale=2))
    return paths


def _grey_uint8(images: np.ndarray) -> np.ndarray:
    if images.ndim == 4:
        images = images[..., :3].mean(-1) if images.shape[-1] >= 3 else images[..., 0]
    return np.asarray(images).astype(np.uint8)
