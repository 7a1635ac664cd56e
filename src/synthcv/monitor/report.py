"""A drift report on disk: ``drift.json`` (every figure), ``drift.md`` and ``drift.html`` (one
page: verdict, table, a histogram per feature), each written atomically."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import write_text_atomic
from synthcv.monitor.drift import DriftReport, FeatureDrift


def _num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return f"{v:.{digits}g}"


def _rows(report: DriftReport) -> list[list[str]]:
    out = []
    for f in sorted(report.tests, key=lambda t: (not t.drifted, t.feature)):
        out.append(
            [
                f.feature,
                f.test,
                _num(f.reference_mean),
                _num(f.current_mean),
                _num(f.statistic),
                _num(f.p_adjusted),
                _num(f.wasserstein_norm, 3) if f.feature not in ("embedding", "class_mix") else "—",
                _num(f.psi, 3) if f.feature not in ("embedding", "class_mix") else "—",
                "**yes**" if f.drifted else "no",
            ]
        )
    return out


HEADER = ["feature", "test", "reference mean", "current mean", "statistic", "p (Holm)",
          "Wasserstein/std", "PSI", "drifted"]  # fmt: skip


def _verdict(report: DriftReport) -> str:
    """One sentence: what was found, on how many images, at which alpha (markdown bold)."""
    found = (
        f"**Drift found** in {len(report.drifted_features)} of {len(report.tests)} tests: "
        + ", ".join(f.feature for f in report.drifted_features)
        if report.drifted
        else f"No drift found ({len(report.tests)} tests)"
    )
    return (
        f"{found}. {report.n_current} current vs {report.n_reference} reference images; "
        f"alpha {report.alpha} over all p-values (Holm–Bonferroni)."
    )


def to_markdown(report: DriftReport) -> str:
    lines = [
        f"# {report.current} vs {report.reference}",
        "",
        _verdict(report),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    return "\n".join(lines) + "\n"


def _histogram_png(name: str, ref: np.ndarray, cur: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.2), dpi=90)
    lo, hi = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
    ax.hist(ref, bins=bins, alpha=0.55, density=True, label="reference")
    ax.hist(cur, bins=bins, alpha=0.55, density=True, label="current")
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def to_html(report: DriftReport) -> str:
    """One self-contained page: the verdict, the table and a histogram per image feature."""
    esc = html.escape
    colour = "#b00020" if report.drifted else "#1b5e20"
    md = _verdict(report)
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(c.replace('**', ''))}</td>" for c in r) + "</tr>"
        for r in _rows(report)
    )
    plots = "".join(
        f'<img alt="{esc(k)}" src="data:image/png;base64,{_histogram_png(k, *v)}">'
        for k, v in report.values.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>drift: {esc(report.current)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{margin:2px}</style>"
        f"</head><body><h1>{esc(report.current)} vs {esc(report.reference)}</h1>"
        f"<p style='color:{colour};font-weight:bold'>{esc(md.replace('**', ''))}</p>"
        f"<table><tr>{head}</tr>{body}</table><h2>Features</h2>{plots}</body></html>"
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def write_report(report: DriftReport, out: Path) -> list[Path]:
    """Write drift.json, drift.md and drift.html into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "drift.json": json.dumps(_jsonable(report.to_dict()), indent=2) + "\n",
        out / "drift.md": to_markdown(report),
        out / "drift.html": to_html(report),
    }
    for path, text in files.items():
        write_text_atomic(path, text)
    return list(files)


__all__ = ["FeatureDrift", "to_html", "to_markdown", "write_report"]
