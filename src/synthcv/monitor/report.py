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
                _num(f.wasserstein_norm, 3) if not f.test.startswith(NOT_NUMERIC_TESTS) else "—",
                _num(f.psi, 3) if not f.test.startswith(NOT_NUMERIC_TESTS) else "—",
                "**yes**" if f.drifted else "no",
            ]
        )
    return out


#: tests of mixes and embeddings: no Wasserstein distance or PSI to show
NOT_NUMERIC_TESTS = ("chi-square", "Jensen", "MMD")

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


def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f} %"


def _detector_lines(m: dict[str, Any]) -> list[str]:
    ref, cur = m.get("reference", {}), m.get("current", {})
    rows = [
        ("COCO AP", _num(ref.get("AP")), _num(cur.get("AP"))),
        ("COCO AP50", _num(ref.get("AP50")), _num(cur.get("AP50"))),
        ("labelled objects", str(ref.get("objects", "—")), str(cur.get("objects", "—"))),
        ("detections per image", _num(m.get("reference_detections_per_image")),
         _num(m.get("current_detections_per_image"))),
        ("precision (measured)", _pct(ref.get("precision", {}).get("precision")),
         _pct(cur.get("precision", {}).get("precision"))),
        ("precision (estimated, CBPE-style)", "—", _pct(m.get("estimated_current_precision"))),
        ("D-ECE", _num(m.get("reference_calibration", {}).get("ece")),
         _num(m.get("current_calibration", {}).get("ece"))),
    ]  # fmt: skip
    lines = [
        "",
        f"## Detector: {m['model']}",
        "",
        "| | reference | current |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    if m.get("estimate_method"):
        lines += ["", f"The estimate is not a measurement: {m['estimate_method']}."]
    return lines


def _model_lines(m: dict[str, Any]) -> list[str]:
    """The model section: accuracy measured and estimated, confidence, calibration, slices."""
    if m.get("kind") == "detector":
        return _detector_lines(m)
    ref, cur = m.get("reference", {}), m.get("current", {})
    rows = [
        ("accuracy (measured)",
         f"{_pct(ref.get('acc'))} (n={ref.get('n', 0)})" if ref else "— (no labels)",
         f"{_pct(cur.get('acc'))} [{_pct(cur.get('lo'))}, {_pct(cur.get('hi'))}] "
         f"(n={cur.get('n', 0)})" if cur else "— (no labels)"),
        ("accuracy (estimated, CBPE-style)", "—", _pct(m.get("estimated_current_accuracy"))),
        ("mean confidence", _pct(m.get("reference_mean_confidence")),
         _pct(m.get("current_mean_confidence"))),
        ("ECE", _num(m.get("reference_calibration", {}).get("ece")),
         _num(m.get("current_calibration", {}).get("ece"))),
    ]  # fmt: skip
    lines = [
        "",
        f"## Model: {m['model']}",
        "",
        "| | reference | current |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    if m.get("estimate_method"):
        lines += ["", f"The estimate is not a measurement: {m['estimate_method']}."]
    slices = m.get("slices") or []
    if slices:
        lines += ["", "Worst slices of the current batch (accuracy, Wilson 95 % interval):", "",
                  "| factor | slice | n | accuracy |", "|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {r['factor']} | {r['slice']} | {r['n']} | {_pct(r['acc'])} "
            f"[{_pct(r['lo'])}, {_pct(r['hi'])}] |"
            for r in slices[:SLICES_SHOWN]
        ]
    return lines


SLICES_SHOWN = 8


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
    if report.model:
        lines += _model_lines(report.model)
    return "\n".join(lines) + "\n"


def _png(fig: Any, ax: Any) -> str:
    """The figure as base64 PNG for an inline <img>, with the report's small type; closed."""
    import matplotlib.pyplot as plt

    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _histogram_png(name: str, ref: np.ndarray, cur: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.2), dpi=90)
    lo, hi = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    if hi - lo < 1e-9:  # one value throughout: a bin of unit width around it
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 31)
    ax.hist(ref, bins=bins, alpha=0.55, density=True, label="reference")
    ax.hist(cur, bins=bins, alpha=0.55, density=True, label="current")
    ax.set_title(name, fontsize=9)
    return _png(fig, ax)


def _reliability_png(m: dict[str, Any]) -> str:
    """Reliability diagram: accuracy against confidence per bin (a detector: precision against
    score), for each labelled set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    detector = m.get("kind") == "detector"  # per detection: precision against score
    fig, ax = plt.subplots(figsize=(3.4, 3.0), dpi=90)
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, label="calibrated")
    for key, name in (("reference_calibration", "reference"), ("current_calibration", "current")):
        if key in m:
            bins = [b for b in m[key]["bins"] if b["n"]]
            ece = f"{'D-' if detector else ''}ECE {m[key]['ece']:.3f}"
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                    ms=3, label=f"{name} ({ece})")  # fmt: skip
    ax.set_xlabel("score" if detector else "confidence", fontsize=8)
    ax.set_ylabel("precision (IoU 0.5)" if detector else "accuracy", fontsize=8)
    ax.set_title("reliability", fontsize=9)
    return _png(fig, ax)


def _md_table_html(lines: list[str]) -> str:
    """The model section's markdown as HTML (headings, paragraphs, pipe tables)."""
    esc, out, table = html.escape, [], []

    def flush() -> None:
        if table:
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in table]
            head = "".join(f"<th>{esc(c)}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in cells[2:]
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{esc(line[3:])}</h2>")
        elif line:
            out.append(f"<p>{esc(line)}</p>")
    flush()
    return "".join(out)


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
    model = ""
    if report.model:
        model = _md_table_html(_model_lines(report.model))
        if "reference_calibration" in report.model or "current_calibration" in report.model:
            png = _reliability_png(report.model)
            model += f'<img alt="reliability" src="data:image/png;base64,{png}">'
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
        f"<table><tr>{head}</tr>{body}</table>{model}<h2>Features</h2>{plots}</body></html>"
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
