"""Factor conformance: realized factors tested against the distributions the spec asked for."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthcv.conformance import (
    ConformanceReport,
    ConformanceRow,
    _holm,
    _test_row,
    check_conformance,
)
from synthcv.distributions import parse_distribution
from synthcv.pipeline import generate
from synthcv.spec import load_spec

OUTPUTS = {
    "rgb": True,
    "depth": False,
    "instance": False,
    "semantic": False,
    "normals": False,
    "shard_size": 100,
}

SPEC = {
    "count": 240,
    "seed": 7,
    "image": {"width": 32, "height": 32},
    "camera": {
        "distance": {"loguniform": [1.0, 2.0]},
        "elevation": {"uniform": [20, 70]},
        "azimuth": {"normal": [0, 30], "clip": [-40, 40]},
    },
    "lights": {
        "ambient": {"choice": {0.3: 0.5, 0.5: 0.3, 0.7: 0.2}},
        "sun": {"elevation": {"randint": [30, 60]}},
    },
    "objects": {
        "count": {"uniform": [0.6, 3.4]},  # recorded rounded: 1, 2 or 3
        "defaults": {
            "color": {
                "h": {"uniform": [0.5, 1.5]},
                "s": {"normal": [0.6, 0.2], "clip": [0.3, 0.9]},
            },
            "material": {"roughness": {"uniform": [0.2, 0.8]}},
        },
        "classes": {
            "cube": {
                "asset": {"primitive": "cube", "size": 0.1},
                "scale": {"loguniform": [0.5, 2]},
            },
            "ball": {
                "weight": 2,
                "asset": {"primitive": "sphere", "radius": 0.05},
                "scale": {"uniform": [0.8, 1.2]},
            },
        },
    },
    "physics": {"enabled": False},
    "outputs": OUTPUTS,
}


def _generate(spec: dict, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(load_spec(spec), out, progress=False, on_empty="allow")
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _generate(SPEC, tmp_path_factory.mktemp("conf") / "ds")


def test_a_generated_dataset_conforms(dataset):
    report = check_conformance(dataset)
    assert isinstance(report, ConformanceReport)
    assert report.flagged == [], report.to_markdown()
    tests = {r.factor: r.test for r in report.tested}
    assert tests["camera.elevation"] == "KS (uniform)"
    assert tests["camera.distance"] == "KS (loguniform)"
    assert tests["camera.azimuth"] == "KS + bound masses (Fisher)"  # clipped normal
    assert tests["lights.ambient"].startswith("chi-square")  # weighted choice
    assert tests["lights.sun.elevation"].startswith("chi-square")  # randint
    assert tests["objects.count"].startswith("chi-square")  # rounded uniform
    assert tests["class_name"].startswith("chi-square")  # class weights 1 : 2
    assert tests["scale[cube]"] == "KS (loguniform)"  # classes differ: tested per class
    assert tests["scale[ball]"] == "KS (uniform)"
    assert tests["color_h"] == "KS (uniform modulo 1)"  # identical: pooled, wrapped hue
    assert tests["color_s"] == "KS + bound masses (Fisher)"
    assert tests["roughness"] == "KS (uniform)"
    row = report.row("color_h")
    assert row.spec_path == "objects.classes.{cube,ball}.color.h"
    assert row.n == sum(r.n for r in report.rows if r.factor.startswith("scale["))
    assert all(0 <= r.p_value <= r.p_adjusted <= 1 for r in report.tested)
    assert report.row("camera.fov").note == "constant"
    assert "derived" in report.row("ground.color.r").note
    assert "physics" in report.row("physics.steps").note
    json.dumps(report.to_dict())  # JSON-ready


def _rewrite(path: Path, column: str, fn, where=None) -> None:
    table = pq.read_table(path)
    values = np.array(table.column(column).to_pylist(), dtype=np.float64)
    mask = np.ones(len(values), bool) if where is None else where(table)
    values[mask] = fn(values[mask])
    i = table.column_names.index(column)
    pq.write_table(table.set_column(i, column, pa.array(values)), path)


def test_values_that_do_not_follow_the_spec_are_flagged(dataset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    # elevation squeezed into the lower half of its range; ball scales shifted up 5%;
    # hues bunched towards 0 (all still inside their ranges)
    _rewrite(bad / "samples.parquet", "camera.elevation", lambda v: 20 + (v - 20) / 2)
    balls = lambda t: np.array(t.column("class_name").to_pylist()) == "ball"  # noqa: E731
    _rewrite(bad / "objects.parquet", "scale", lambda v: v * 1.05, balls)
    _rewrite(bad / "objects.parquet", "color_h", lambda v: v**2)
    report = check_conformance(bad)
    flagged = {r.factor for r in report.flagged}
    assert flagged == {"camera.elevation", "scale[ball]", "color_h"}, report.to_markdown()
    assert report.row("scale[ball]").test == "support"  # beyond 1.2: impossible, p = 0
    assert "outside" in report.row("scale[ball]").note
    assert report.row("camera.elevation").p_adjusted < 1e-6


def test_a_manifest_that_does_not_describe_its_samples_is_flagged(dataset, tmp_path):
    """The same samples checked against another spec: a weighted choice and a clip moved."""
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    spec = manifest["spec"]
    spec["lights"]["ambient"] = {"choice": {"0.3": 0.2, "0.5": 0.3, "0.7": 0.5}}
    spec["camera"]["azimuth"] = {"normal": [0.0, 30.0], "clip": [-50.0, 50.0]}
    from synthcv.format.manifest import with_digest

    manifest = with_digest({k: v for k, v in manifest.items() if k != "manifest_digest"})
    (bad / "manifest.json").write_text(json.dumps(manifest))
    report = check_conformance(bad)
    assert {r.factor for r in report.flagged} == {"lights.ambient", "camera.azimuth"}


def test_swept_and_constant_fields_are_not_tested(tmp_path):
    spec = {
        "count": 40,
        "image": {"width": 32, "height": 32},
        "camera": {"elevation": 30, "azimuth": {"uniform": [0, 90]}},
        "objects": {"classes": {"c": {"asset": {"primitive": "cube", "size": 0.1}}}},
        "physics": {"enabled": False},
        "outputs": OUTPUTS,
        "sweep": {"field": "camera.elevation", "values": [20, 40, 60]},
    }
    report = check_conformance(_generate(spec, tmp_path / "sweep"))
    assert report.flagged == []
    assert "swept field" in report.row("camera.elevation").note
    assert not report.row("camera.elevation").tested
    assert "sweep" in report.row("sweep.value").note
    for constant in ("camera.fov", "objects.count", "lights.ambient", "scale"):
        assert report.row(constant).note == "constant"
        assert report.row(constant).p_value is None
    # the steps repeat the same base scenes: only the first step's 40 are independent
    assert report.row("camera.azimuth").n == 40 and report.row("camera.azimuth").tested
    md = report.to_markdown()
    assert "swept field" in md and "| not tested |" in md


def test_markdown_lists_flagged_rows_first():
    rows = [
        ConformanceRow("a", "a", "", 50, note="constant"),
        ConformanceRow("b", "b", "", 50, "KS (uniform)", 0.1, 0.5),
        ConformanceRow("c", "c", "", 50, "KS (uniform)", 0.4, 1e-5),
        ConformanceRow("d", "d", "", 50, "chi-square (3 bins)", 9.0, 0.002),
        ConformanceRow("e", "e", "", 50, "KS (uniform)", 0.2, 0.03),
    ]
    report = ConformanceReport(_holm(rows, 0.01), 0.01)
    assert [r.factor for r in report.flagged] == ["c", "d"]  # Holm: 4e-5, 0.006
    body = [line for line in report.to_markdown().splitlines() if line.startswith("| ")][1:]
    order = [line.split(" | ")[0].removeprefix("| ") for line in body]
    assert order == ["c", "d", "e", "b", "a"]
    assert body[0].count("**yes**") == 1 and "**yes**" not in body[2]


def test_holm_adjusts_step_down_and_monotone():
    ps = [0.01, 0.04, 0.03, 0.005]
    rows = [ConformanceRow(str(i), "", "", 30, "t", 0.0, p) for i, p in enumerate(ps)]
    adj = [r.p_adjusted for r in _holm(rows, 0.05)]
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r.flagged for r in _holm(rows, 0.05)] == [True, False, False, True]


def _row(dist, values, transform="number"):
    return _test_row("f", "f", parse_distribution(dist), transform, list(values), {})


def test_clipped_normal_tests_the_bound_masses_and_the_inside():
    rng = np.random.default_rng(1)
    dist = {"normal": [0.0, 1.0], "clip": [-1.0, 1.5]}
    good = np.clip(rng.normal(0, 1, 2000), -1, 1.5)
    assert _row(dist, good).p_value > 0.01
    # right inside values, wrong atom masses: nothing piles up at the bounds
    no_atoms = rng.normal(0, 1, 6000)
    no_atoms = no_atoms[(no_atoms > -1) & (no_atoms < 1.5)][:2000]
    assert _row(dist, no_atoms).p_value < 1e-6
    # right atom masses, wrong inside: uniform between the bounds
    inside = (good > -1) & (good < 1.5)
    wrong = good.copy()
    wrong[inside] = rng.uniform(-1, 1.5, inside.sum())
    assert _row(dist, wrong).p_value < 1e-6
    assert _row(dist, np.append(good, 2.0)).test == "support"


def test_transforms_of_the_sampler_are_applied():
    rng = np.random.default_rng(2)
    # counts: max(0, round(x)) of a continuous draw
    counts = np.maximum(0, np.round(rng.uniform(0.2, 4.6, 500)))
    assert _row({"uniform": [0.2, 4.6]}, counts, "round").p_value > 0.01
    assert _row({"randint": [0, 5]}, counts).p_value < 1e-6
    # hues: x % 1, also for a clipped normal whose bound lands on 0
    hues = rng.uniform(0.7, 1.3, 500) % 1.0
    assert _row({"uniform": [0.7, 1.3]}, hues, "mod1").p_value > 0.01
    assert _row({"uniform": [0, 1]}, hues, "mod1").p_value < 1e-6
    # a rare category: bins are pooled, or a Monte Carlo multinomial test when one dominates
    rare = rng.choice(["a", "b", "c"], p=[0.97, 0.02, 0.01], size=60)
    r = _row({"choice": {"a": 0.97, "b": 0.02, "c": 0.01}}, rare, "category")
    assert r.test.startswith("multinomial") and r.p_value > 0.01
    r = _row({"choice": {"a": 0.97, "b": 0.02, "c": 0.01}}, ["b"] * 10 + ["a"] * 50, "category")
    assert r.p_value < 1e-3
    assert _row({"choice": ["a", "b"]}, ["a"] * 30 + ["z"], "category").test == "support"
    # a randint too wide to list is binned
    wide = rng.integers(0, 2**32, 400)
    assert _row({"randint": [0, 2**32 - 1]}, wide).p_value > 0.01
    assert _row({"uniform": [0, 1]}, [0.5] * 10).note == "fewer than 20 values"


def test_import_synthcv_does_not_load_conformance():
    code = (
        "import sys, synthcv; print('synthcv.conformance' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_inspect_conformance_reports_the_flagged_factor(dataset, tmp_path):
    import json
    import subprocess
    import sys

    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    _rewrite(bad / "samples.parquet", "camera.elevation", lambda v: 20 + (v - 20) / 2)
    run = [sys.executable, "-m", "synthcv", "inspect"]
    r = subprocess.run(
        [*run, str(bad), "--no-verify", "--conformance", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["conformance"]["flagged"] == ["camera.elevation"]
    r = subprocess.run(
        [*run, str(dataset), "--conformance"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "0 flagged" in r.stdout, r.stderr
