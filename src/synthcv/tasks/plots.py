"""Figures people would rather see than read: learning curves, forgetting curves, slice bars,
confusion matrices. Matplotlib with the Agg backend (no display needed); each function saves a
PNG atomically and returns its path."""

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
    """Horizontal bars of slice accuracy with Wilson intervals, worst at the top."""
    plt = _plt()
    rows = list(rows)[:top]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    acc = np.array([r["acc"] for r in rows]) * 100
    err = np.array([[r["acc"] - r["lo"], r["hi"] - r["acc"]] for r in rows]).T * 100
    ax.barh(y, acc, xerr=err if len(rows) else None, color="tab:blue", alpha=0.7, capsize=2)
    ax.set_yticks(y, [f"{r['factor']} = {r['slice']} (n={r['n']})" for r in rows], fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%), 95% Wilson interval")
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
