"""``synthcv report``: one self-contained offline HTML page for a dataset or an experiment run.

The pure-Python tests read the page as text (sections, one box per visible labelled object,
one circle per labelled keypoint, a chart per factor column, no URL, escaping, the sweep strip,
the experiment page, the CLI's exit codes). The browser tests open it from ``file://`` in
Debian's Chromium through Playwright (skipped without either): no console errors or warnings,
no request but file:/data:, every toggle changes what is drawn and back, and a moved copy
still renders its images.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest_dataset_fixture import write_fixture_dataset, write_manifest_with_digest
from synthcv.format import open_dataset
from synthcv.tools import report
from synthcv.tools.inspect import OBJECT_NON_FACTORS, SAMPLE_NON_FACTORS
from synthcv.tools.report import write_report

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("samples", "classes", "status", "visibility", "factors", "spec")


def _generate(spec_name: str, out: Path, count: int) -> Path:
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec

    spec = load_spec(REPO / "examples" / spec_name).with_count(count)
    generate(spec, out, progress=False, on_empty="allow")
    return out


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    """The analytic dataset: hidden and outside objects, a distractor, keypoints, 32×24."""
    return write_fixture_dataset(tmp_path_factory.mktemp("rep") / "fixture", count=3)


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory) -> Path:
    return _generate("people.yaml", tmp_path_factory.mktemp("rep") / "people", 3)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    return _generate("sweep_elevation.yaml", tmp_path_factory.mktemp("rep") / "sweep", 2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A fake experiment run directory, as tasks/experiment.py writes one."""
    root = tmp_path_factory.mktemp("rep") / "run"
    root.mkdir()
    results = {
        "name": "digits_tstr",
        "tasks": ["classification"],
        "recipe": "train_on_synthetic",
        "seeds": [0, 1],
        "per_seed": {"real_test/accuracy": [0.9125, 0.9375]},
        "summary": {
            "real_test/accuracy": {
                "mean": 0.925,
                "lo": 0.766,
                "hi": 1.083,
                "half": 0.158,
                "n": 2,
                "std": 0.0177,
            }
        },
        "slices": [
            {"factor": "camera.elevation", "slice": "[10, 45)", "n": 40, "acc": 0.875},
            {"factor": "camera.elevation", "slice": "[45, 80]", "n": 40, "acc": 0.95},
        ],
    }
    (root / "results.json").write_text(json.dumps(results, indent=2))
    (root / "summary.md").write_text("| metric | mean ± 95% (%) | seeds |\n|---|---|---|\n")
    Image.new("RGB", (40, 30), (200, 60, 60)).save(root / "learning_curve.png")
    Image.new("RGB", (30, 30), (60, 60, 200)).save(root / "slices.png")
    return root


def _page(path: Path, **kw: Any) -> str:
    return write_report(path, **kw).read_text(encoding="utf-8")


def _data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def _tiles(page: str) -> dict[int, str]:
    """Each grid tile's HTML by its sample index."""
    out = {}
    for chunk in page.split('<figure class="tile"')[1:]:
        m = re.match(r' data-index="(\d+)"', chunk)
        assert m is not None
        out[int(m.group(1))] = chunk.split("</figure>")[0]
    return out


def _objects_by_sample(root: Path) -> dict[int, list[dict[str, Any]]]:
    by: dict[int, list[dict[str, Any]]] = {}
    for o in open_dataset(root).objects.to_pylist():
        by.setdefault(o["sample_index"], []).append(o)
    return by


def _labelled(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if not o["is_distractor"]]


# --------------------------------------------------------------------------- dataset page


def test_dataset_page_has_every_section_and_control(people_dir):
    page = _page(people_dir, n=24)
    assert page.startswith("<!DOCTYPE html>")
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert '<section id="sweep">' not in page  # not a sweep
    for cid in (
        "view-rgb",
        "view-depth",
        "view-normals",
        "view-parts",
        "toggle-boxes",
        "toggle-instances",
        "toggle-semantic",
        "toggle-keypoints",
    ):
        assert f'id="{cid}"' in page, cid
    ds = open_dataset(people_dir)
    header = page.split('<table class="kv" id="header">')[1].split("</table>")[0]
    for text in (
        str(people_dir),
        f"{len(ds)} (manifest count",
        f"<td>{len(ds.objects)}</td>",
        ds.manifest["spec_hash"],
        ds.manifest["backend"]["version"],
        "256x256",
        "parts",
    ):
        assert text in header, text
    assert (people_dir / "report.html").is_file()  # the default out
    # the resolved spec and the manifest without its files map
    assert "resolved spec (YAML)" in page and "people:" in page
    assert f"lists {len(ds.manifest['files'])} files" in page
    assert "&quot;manifest_digest&quot;" in page and "&quot;files&quot;" not in page


@pytest.mark.parametrize("which", ["people", "fixture"])
def test_one_box_per_visible_labelled_object(which, people_dir, fixture_dir):
    root = people_dir if which == "people" else fixture_dir
    page = _page(root, n=2)
    shown = _data(page)["shown"]
    assert shown == [0, len(open_dataset(root)) - 1]  # picked evenly: first and last
    tiles = _tiles(page)
    assert sorted(tiles) == shown
    objects = _objects_by_sample(root)
    for idx in shown:
        want = sorted(
            o["instance_id"]
            for o in _labelled(objects.get(idx, []))
            if o["status"] == "visible" and o["bbox"] is not None
        )
        got = sorted(int(i) for i in re.findall(r'<rect data-instance="(\d+)"', tiles[idx]))
        assert got == want and want, idx
        hidden = sorted(
            o["instance_id"]
            for o in _labelled(objects.get(idx, []))
            if o["status"] != "visible" and (o["bbox"] or o["bbox_amodal"]) is not None
        )
        got_hidden = re.findall(r'<rect data-hidden-instance="(\d+)"', tiles[idx])
        assert sorted(int(i) for i in got_hidden) == hidden
    if which == "fixture":  # instance 4 is hidden behind 2 (dashed), 3 a distractor (no box)
        assert '<rect data-hidden-instance="4"' in tiles[0]
        assert 'data-instance="3"' not in tiles[0]
        assert 'id="toggle-hidden"' in page


def test_keypoints_and_skeleton_lines_match_the_labels(people_dir):
    page = _page(people_dir, n=24)
    tiles = _tiles(page)
    objects = _objects_by_sample(people_dir)
    skeleton = open_dataset(people_dir).manifest["skeletons"]["person"]
    filled = hollow = lines = 0
    for idx in tiles:
        for o in _labelled(objects.get(idx, [])):
            v = o["keypoints"][2::3]
            filled += sum(1 for x in v if x == 2)
            hollow += sum(1 for x in v if x == 1)
            if o["class_name"] == "person":
                lines += sum(1 for a, b in skeleton if v[a - 1] > 0 and v[b - 1] > 0)
    grid = "".join(tiles.values())
    assert grid.count("<circle ") == filled + hollow
    assert filled > 0 and hollow > 0  # people occlude each other and the furniture
    assert len(re.findall(r'<circle data-v="1"[^>]*fill="none"', grid)) == hollow
    assert len(re.findall(r'<circle data-v="2"', grid)) == filled
    assert grid.count("<line ") == lines > 0


def test_a_chart_for_every_factor_column(people_dir):
    page = _page(people_dir, n=1)
    ds = open_dataset(people_dir)
    for table, skip, source in (
        (ds.samples, SAMPLE_NON_FACTORS, "samples"),
        (ds.objects, OBJECT_NON_FACTORS, "objects"),
    ):
        charted = set(re.findall(rf'data-factor="([^"]+)" data-table="{source}"', page))
        scalar = {
            f.name
            for f in table.schema
            if f.name not in skip
            and (
                pa.types.is_integer(f.type)
                or pa.types.is_floating(f.type)
                or pa.types.is_boolean(f.type)
                or pa.types.is_string(f.type)
            )
        }
        assert charted == scalar, source
        assert not any(pa.types.is_list(table.schema.field(c).type) for c in charted)
    fig = page.split('data-factor="camera.distance" data-table="samples"')[1].split("</figure>")[0]
    assert "<svg" in fig and "<rect" in fig  # a histogram
    assert "constant = 50" in page  # camera.fov: 50 in every sample
    pose = page.split('data-factor="people.pose" data-table="objects"')[1].split("</figure>")[0]
    assert "<svg" in pose  # categorical: bars


def test_no_url_and_every_image_embedded(people_dir, sweep_dir, fixture_dir, run_dir):
    for root in (people_dir, sweep_dir, fixture_dir, run_dir):
        page = _page(root, n=4)
        assert "http://" not in page and "https://" not in page, root
        srcs = re.findall(r'\ssrc="([^"]*)"', page)
        assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs), root
        assert "<link" not in page.replace('<link rel="icon" href="data:,">', "")


def test_same_dataset_same_bytes(fixture_dir, tmp_path):
    a = write_report(fixture_dir, tmp_path / "a.html", n=3).read_bytes()
    b = write_report(fixture_dir, tmp_path / "b.html", n=3).read_bytes()
    assert a == b


def test_class_names_are_escaped_and_literal(tmp_path):
    root = write_fixture_dataset(tmp_path / "ds", count=2)
    names = {"cube": '<cube a="1">&</script>', "sphere": "pybullet_data:duck"}
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["classes"] = [{"id": c["id"], "name": names[c["name"]]} for c in manifest["classes"]]
    manifest["keypoints"] = {names[k]: v for k, v in manifest["keypoints"].items()}
    write_manifest_with_digest(root, manifest)
    objects = pq.read_table(root / "objects.parquet")
    renamed = [names.get(n, n) for n in objects.column("class_name").to_pylist()]
    i = objects.column_names.index("class_name")
    pq.write_table(objects.set_column(i, "class_name", pa.array(renamed)), root / "objects.parquet")

    page = _page(root)
    assert "<cube" not in page
    assert "&lt;cube a=&quot;1&quot;&gt;&amp;&lt;/script&gt;" in page
    assert "pybullet_data:duck" in page  # no markup, no emoji shortcode: literally
    assert page.count("</script>") == 2  # the data island and the JS: nothing broke out
    assert names["cube"] in _data(page)["classes"]


def test_sweep_strip_has_a_column_per_step(sweep_dir):
    page = _page(sweep_dir, n=4)
    assert '<section id="sweep">' in page
    ds = open_dataset(sweep_dir)
    spec = ds.manifest["spec"]
    steps = spec["sweep"]["linspace"][2]
    heads = re.findall(r'<th class="sweep-step" data-step="(\d+)">([^<]*)</th>', page)
    assert [int(s) for s, _ in heads] == list(range(steps))
    assert [float(v) for _, v in heads] == [10.0 + 10.0 * k for k in range(steps)]
    # scene k at step s is the k-th sample of that step (by index) in samples.parquet
    t = ds.samples.select(["sample_index", "sweep.step"]).to_pylist()
    scenes = spec["count"]
    strip = page.split('<section id="sweep">')[1].split("</table>")[0]
    rows = strip.split('<th class="scene">')[1:]
    assert len(rows) == min(scenes, 4)
    for k, row in enumerate(rows):
        got = [int(i) for i in re.findall(r'title="sample #(\d+) ', row)]
        want = [[r["sample_index"] for r in t if r["sweep.step"] == s][k] for s in range(steps)]
        assert got == want
    assert "mean visible objects per step" in page and "<polyline" in page
    assert "camera.elevation = 80" in page  # tile captions name the swept value


def test_large_images_are_downscaled_with_overlays_in_original_pixels():
    uri = report._png(np.zeros((600, 1200, 3), np.uint8))
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert im.size == (report.MAX_SIDE, 256)
    item = {
        "index": 0,
        "rgb": np.zeros((600, 1200, 3), np.uint8),
        "objects": [
            {
                "instance_id": 1,
                "class_name": "cube",
                "is_distractor": False,
                "status": "visible",
                "visibility": 1.0,
                "bbox": [1000.0, 500.0, 100.0, 50.0],
                "keypoints": [],
            }
        ],
    }
    tile, _, _ = report._tile(item, {}, "")
    assert 'viewBox="0 0 1200 600"' in tile and 'x="1000" y="500"' in tile


# ------------------------------------------------------------------------ experiment page


def test_experiment_page(run_dir):
    page = _page(run_dir)
    for sid in ("summary", "per-seed", "slices", "plots", "summary-md", "results"):
        assert f'<section id="{sid}">' in page, sid
    assert "digits_tstr" in page and "train_on_synthetic" in page
    assert "<td>real_test/accuracy</td><td>0.925</td><td>0.766</td><td>1.083</td>" in page
    assert "<th>seed 0</th><th>seed 1</th>" in page and "<td>0.9125</td>" in page
    assert "<td>[10, 45)</td>" in page and "<th>factor</th>" in page
    assert page.count('<figure class="plot">') == 2
    assert "learning_curve.png" in page and "slices.png" in page
    assert "mean ± 95% (%)" in page
    assert _data(page)["kind"] == "experiment"


def test_not_a_dataset_nor_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such dataset directory"):
        write_report(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"manifest\.json.*results\.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        write_report(tmp_path)


# --------------------------------------------------------------------------------- CLI


def _invoke(args: list[str]):
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    return CliRunner().invoke(app, args, env={"SYNTHCV_TRACKING": "0", "COLUMNS": "300"})


def test_cli_report(fixture_dir, run_dir, tmp_path):
    out = tmp_path / "r.html"
    res = _invoke(["report", str(fixture_dir), "--out", str(out), "--n", "2"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and f"wrote {out}" in res.output and "kB)" in res.output
    assert len(_tiles(out.read_text())) == 2
    res = _invoke(["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").is_file()


def test_cli_report_wrong_dir(tmp_path, fixture_dir):
    missing = tmp_path / "nope"
    res = _invoke(["report", str(missing)])
    assert res.exit_code == 2
    assert str(missing) in res.output and "Traceback" not in res.output
    res = _invoke(["report", str(fixture_dir / "shards")])
    assert res.exit_code == 2 and f"pass the dataset directory {fixture_dir}" in res.output
    res = _invoke(["report", str(fixture_dir), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "is a directory" in res.output


# ----------------------------------------------------------------------------- browser

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (Debian's; Playwright never downloads one here)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "chromium not installed: apt-get install chromium (Debian) to run the report's "
            "browser tests"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install playwright to run the browser tests")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        yield b
        b.close()


class _Watched:
    """A page that records console messages, page errors and requests."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: Path) -> Any:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self.page

    def clean(self) -> None:
        bad = [(t, m) for t, m in self.console if t in ("error", "warning")]
        assert not bad and not self.errors
        assert all(u.split(":", 1)[0] in ("file", "data") for u in self.requests), self.requests

    def close(self) -> None:
        self.page.close()


def _images_rendered(page: Any) -> tuple[int, int]:
    return page.evaluate(
        "() => { const im = Array.from(document.images);"
        " return [im.length, im.filter(i => i.complete && i.naturalWidth > 0).length]; }"
    )


@pytest.mark.parametrize("which", ["fixture", "people", "sweep", "run"])
def test_browser_loads_clean(browser, which, fixture_dir, people_dir, sweep_dir, run_dir):
    root = {"fixture": fixture_dir, "people": people_dir, "sweep": sweep_dir, "run": run_dir}
    w = _Watched(browser)
    try:
        page = w.open(write_report(root[which], n=6))
        total, ok = _images_rendered(page)
        assert total > 0 and ok == total
        w.clean()
    finally:
        w.close()


def test_browser_every_toggle_changes_the_drawing(browser, fixture_dir):
    w = _Watched(browser)
    try:
        page = w.open(write_report(fixture_dir, n=3))
        grid = page.locator("#grid")

        def shot() -> bytes:
            return grid.screenshot(animations="disabled")

        original = shot()
        for toggle in (
            "toggle-boxes",
            "toggle-instances",
            "toggle-semantic",
            "toggle-keypoints",
            "toggle-hidden",
        ):
            page.click(f"#{toggle}")
            assert shot() != original, toggle
            page.click(f"#{toggle}")
            assert shot() == original, toggle
        seen = {original}
        for view in ("view-depth", "view-normals"):
            page.click(f"#{view}")
            now = shot()
            assert now not in seen, view
            seen.add(now)
        page.click("#view-rgb")
        assert shot() == original
        w.clean()
    finally:
        w.close()


def test_browser_moved_copy_still_renders(browser, tmp_path):
    src = write_fixture_dataset(tmp_path / "orig", count=2)
    write_report(src)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(src, moved)
    shutil.rmtree(src)
    w = _Watched(browser)
    try:
        page = w.open(moved / "report.html")
        total, ok = _images_rendered(page)
        assert total > 0 and ok == total
        w.clean()
    finally:
        w.close()
