"""Figures people would rather see than read: learning curves, forgetting curves, slice bars,
confusion matrices, precision-recall curves, a metric along a factor. Matplotlib with the Agg
backend (no display needed); each function saves a PNG atomically and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import write_with_atomic


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name ends in .tmp, so tell savefig the format the real name asks for
    write_with_atomic(
        path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix[1:])
    )
    _plt().close(fig)
    return path


def learning_curve(
    sizes: Sequence[int], series: Mapping[str, Sequence[Mapping[str, float]]], path: str | Path
) -> Path:
    """``series[name][k]`` = mean_ci dict at ``sizes[k]``; accuracy (%) vs size, log x."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, pts in series.items():
        m = np.array([p["mean"] for p in pts]) * 100
        lo = np.array([p["lo"] for p in pts]) * 100
        hi = np.array([p["hi"] for p in pts]) * 100
        ax.plot(sizes, m, marker="o", label=name)
        ax.fill_between(sizes, lo, hi, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("training-set size")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Learning curve (mean, 95% interval over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def forgetting_curve(curves: Mapping[str, Sequence[float]], path: str | Path, ylabel: str) -> Path:
    """``curves[name]`` = reference accuracy per fine-tune epoch (index 0 = before)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, accs in curves.items():
        ax.plot(range(len(accs)), np.asarray(accs) * 100, marker="o", label=name)
    ax.set_xlabel("fine-tune epoch (0 = before fine-tuning)")
    ax.set_ylabel(f"{ylabel} accuracy (%)")
    ax.set_title("Forgetting curve on the broad reference set")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def slice_bars(rows: Sequence[Mapping[str, Any]], path: str | Path, top: int = 25) -> Path:
    """Horizontal bars of slice accuracy (classification) or recall (instance tasks) with
    Wilson intervals, worst at the top."""
    plt = _plt()
    rows = list(rows)[:top]
    key = next((k for k in ("acc", "recall", "miou") if rows and k in rows[0]), "acc")
    lo, hi = ("lo", "hi") if key == "acc" else (f"{key}_lo", f"{key}_hi")
    label = {"acc": "accuracy", "recall": "recall at IoU 0.5", "miou": "mIoU"}[key]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    acc = np.array([r[key] for r in rows]) * 100
    err = np.array([[r[key] - r[lo], r[hi] - r[key]] for r in rows]).T * 100
    ax.barh(y, acc, xerr=err if len(rows) else None, color="tab:blue", alpha=0.7, capsize=2)
    count = [r.get("n", r.get("n_objects", r.get("n_images"))) for r in rows]
    names = [f"{r['factor']} = {r['slice']} (n={n})" for r, n in zip(rows, count, strict=True)]
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlim(0, 100)
    how = "Wilson" if key != "miou" else "bootstrap"
    ax.set_xlabel(f"{label} (%), 95% {how} interval")
    ax.set_title("Slices, worst first")
    return _save(fig, path)


def confusion(pred: np.ndarray, true: np.ndarray, num_classes: int, path: str | Path) -> Path:
    plt = _plt()
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(true), np.asarray(pred)), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if v > cm.max() / 2 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(num_classes))
    ax.set_yticks(range(num_classes))
    fig.colorbar(im, ax=ax)
    ax.set_title("Confusion matrix")
    return _save(fig, path)


def pr_curves(result: Mapping[str, Any], path: str | Path) -> Path:
    """Precision-recall at IoU 0.5 of one iou type of ``evaluation.coco_evaluate``: a line per
    class with ground truth, and the overall curve (the mean over classes, whose area is AP50)
    in black."""
    plt = _plt()
    pr = result["pr"]
    r = np.asarray(pr["recall"])
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, c in pr["per_class"].items():
        p = np.asarray(c["iou50"], dtype=float)
        if not np.isnan(p).all():
            ax.plot(r, p, lw=1, alpha=0.8, label=f"{name} (AP50 {np.mean(p) * 100:.1f})")
    p = np.asarray(pr["overall"]["iou50"], dtype=float)
    if not np.isnan(p).all():
        ax.plot(r, p, color="black", lw=2.2, label=f"overall (AP50 {np.mean(p) * 100:.1f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated)")
    ax.set_title("Precision-recall at IoU 0.5")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def _slice_order(s: str) -> tuple:
    """Natural order of slice names from ``slices.bin_labels``: bins by their lower edge,
    numbers by value, then names, the missing slice last."""
    from synthcv.tasks.slices import MISSING

    if s == MISSING:
        return (2, 0.0, s)
    try:
        return (0, float(s.lstrip("[").split(",")[0]), s)
    except ValueError:
        return (1, 0.0, s)


def metric_vs_factor(
    rows: Sequence[Mapping[str, Any]], factor: str, metric: str, path: str | Path
) -> Path:
    """One metric of slice rows (``evaluation.instance_slices``, ``slices.slice_metrics``) against
    the slices of one factor in their natural order, with the ``<metric>_lo``/``_hi`` interval as
    error bars when the rows have one: how a metric moves along a swept factor."""
    plt = _plt()
    sel = sorted((r for r in rows if r["factor"] == factor), key=lambda r: _slice_order(r["slice"]))
    if not sel:
        raise ValueError(f"metric_vs_factor: no rows for factor {factor!r}")
    y = np.array([float(r[metric]) for r in sel])
    x = np.arange(len(sel))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(sel) + 2), 4))
    with_ci = all(f"{metric}_lo" in r and f"{metric}_hi" in r for r in sel)
    if with_ci:
        lo = np.array([float(r[f"{metric}_lo"]) for r in sel])
        hi = np.array([float(r[f"{metric}_hi"]) for r in sel])
        err = np.nan_to_num(np.stack([y - lo, hi - y]).clip(min=0))
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3)
    else:
        ax.plot(x, y, marker="o")
    n = [r.get("n_images", r.get("n_objects", r.get("n"))) for r in sel]
    ax.set_xticks(x, [f"{r['slice']}\n(n={k})" for r, k in zip(sel, n, strict=True)], fontsize=7)
    ax.set_xlabel(factor)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {factor}" + (" (interval as error bars)" if with_ci else ""))
    ax.grid(alpha=0.3)
    return _save(fig, path)
