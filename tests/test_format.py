"""The dataset format package: reading older versions, paths that must stay inside a dataset,
the one shard writer (published whole or not at all), atomic writes, and resumable augment."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import synthcv
from conftest_dataset_fixture import write_fixture_dataset, write_manifest_with_digest
from synthcv.fileio import atomic_path, publish_dir
from synthcv.format import content_digest, layout, open_dataset
from synthcv.format.writer import OutputError, ShardWriter, claim_output

V1 = Path(__file__).parent / "data" / "dataset_v1"


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != layout.RUN_FILE
    }


# ------------------------------------------------------------------ reading version 1


def test_version_1_dataset_opens_with_factors_under_their_spec_paths():
    """A dataset written by synthcv before format 2 (tests/data/dataset_v1) still opens."""
    ds = open_dataset(V1)
    assert ds.manifest["format_version"] == 1 and len(ds) == 3
    assert ds.verify() == []
    raw = pq.read_table(V1 / "samples.parquet")
    cols = ds.samples.column_names
    for old, new in layout.V1_FACTOR_RENAMES.items():
        assert old in raw.column_names and old not in cols and new in cols
        assert raw.column(old).to_pylist() == ds.samples.column(new).to_pylist()
    item = ds[1]
    assert item["rgb"].shape == (32, 40, 3) and item["instance"].dtype == np.uint16
    assert item["factors"]["lights.sun.elevation"] == 50.0
    assert {o["class_name"] for o in item["objects"]} <= {"duck", "cube", "distractor"}


def test_version_1_dataset_exports_to_coco(tmp_path):
    from pycocotools.coco import COCO

    from synthcv.tools.coco import export_coco

    coco = COCO(str(export_coco(V1, tmp_path / "ann.json", progress=False)))
    assert len(coco.getImgIds()) == 3 and coco.getCatIds() == [1, 2]


def test_unknown_format_version_names_the_versions_read(tmp_path):
    root = write_fixture_dataset(tmp_path / "d")
    m = json.loads((root / "manifest.json").read_text())
    m["format_version"] = 4
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(
        ValueError, match=r"format_version 4 is not supported.*reads format_version 1, 2, 3"
    ):
        open_dataset(root)


# ------------------------------------------------------------------ paths stay inside


def test_paths_that_leave_the_dataset_are_refused(tmp_path):
    root = write_fixture_dataset(tmp_path / "d")
    (tmp_path / "secret.txt").write_text("not yours")
    m = json.loads((root / "manifest.json").read_text())
    m["files"]["../secret.txt"] = "0" * 64
    m["files"]["/etc/hostname"] = "0" * 64
    write_manifest_with_digest(root, m)  # a consistent manifest that still points outside
    problems = open_dataset(root).verify()
    assert sum("outside the dataset" in p for p in problems) == 2, problems
    with pytest.raises(ValueError, match="leaves the dataset"):
        layout.inside(root, "shards/../../secret.txt")
    assert layout.inside(root, "shards/shard-000000/000000.rgb.png").is_file()


# ------------------------------------------------------------------ the shard writer


def test_shard_is_published_whole_or_not_at_all(tmp_path):
    claim_output(tmp_path / "out", {"run": 1}).release()
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), ShardWriter(out, 0) as w:
        w.write("000000.rgb.png", "rgb", np.zeros((4, 4, 3), np.uint8))
        raise RuntimeError("interrupted mid-shard")
    assert not (out / "shards" / "shard-000000").exists()
    assert list((out / "shards").iterdir()) == []  # no temporary directory left either

    with ShardWriter(out, 0) as w:
        rel = w.write("000000.rgb.png", "rgb", np.full((4, 4, 3), 7, np.uint8))
        assert w.finish([{"sample_index": 0, "rgb": rel}], [], {"shard": 0}) is True
    meta = json.loads((out / "shards/shard-000000/shard.json").read_text())
    assert set(meta["files"]) == {
        "000000.rgb.png",
        "shard-samples.parquet",
        "shard-objects.parquet",
    }
    # another process finishing the same shard later keeps the first one
    with ShardWriter(out, 0) as w:
        w.write("000000.rgb.png", "rgb", np.zeros((4, 4, 3), np.uint8))
        assert w.finish([{"sample_index": 0}], [], {"shard": 0}) is False
    rgb = synthcv.format.codecs.read_png(out / "shards/shard-000000/000000.rgb.png")
    assert int(rgb.max()) == 7 and not list((out / "shards").glob(".tmp-*"))


def test_claim_output_refuses_other_runs_and_foreign_directories(tmp_path):
    with claim_output(tmp_path / "a", {"spec_hash": "x", "count": 1}) as claim:
        assert not claim.complete
    with claim_output(tmp_path / "a", {"spec_hash": "x", "count": 1}) as claim:  # resume
        assert not claim.complete
    with pytest.raises(OutputError, match="another run"):
        claim_output(tmp_path / "a", {"spec_hash": "y", "count": 1})
    (tmp_path / "f").write_text("a file")
    with pytest.raises(OutputError, match="not a directory"):
        claim_output(tmp_path / "f", {"spec_hash": "x"})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a synthcv output directory"):
        claim_output(tmp_path / "b", {"spec_hash": "x"})
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError("boom")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) == "0o644"


def test_publish_dir_keeps_the_first_complete_directory(tmp_path):
    (tmp_path / "t1").mkdir()
    (tmp_path / "t1" / "f").write_text("1")
    (tmp_path / "t2").mkdir()
    (tmp_path / "t2" / "f").write_text("2")
    assert publish_dir(tmp_path / "t1", tmp_path / "final") is True
    assert publish_dir(tmp_path / "t2", tmp_path / "final") is False
    assert (tmp_path / "final" / "f").read_text() == "1" and not (tmp_path / "t2").exists()


def test_content_digest_of_dataset_is_its_manifest_hash(tmp_path):
    import hashlib

    root = write_fixture_dataset(tmp_path / "d")
    assert content_digest(root) == hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        content_digest(tmp_path / "nope")


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    """Two runs into one directory: the second is told who holds it, and touches nothing."""
    import os

    out = tmp_path / "out"
    with claim_output(out, {"spec_hash": "x"}):
        (out / "shards" / ".tmp-shard-000000-999").mkdir()  # the holder's work in progress
        script = (
            "import sys; from pathlib import Path\n"
            "from synthcv.format.writer import OutputError, claim_output\n"
            "try:\n"
            f"    claim_output(Path({str(out)!r}), {{'spec_hash': 'x'}})\n"
            "except OutputError as e:\n"
            "    print(e)\n"
        )
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert f"being written by another synthcv process (pid {os.getpid()}" in r.stdout, r
        assert (out / "shards" / ".tmp-shard-000000-999").is_dir()  # not deleted under us
    # released: the lock file stays, empty, and the next run may claim the directory
    assert (out / layout.LOCK_FILE).read_bytes() == b""
    with claim_output(out, {"spec_hash": "x"}) as claim:
        assert not claim.complete and not list((out / "shards").iterdir())


def test_overwrite_empties_the_directory_only_after_taking_the_lock(tmp_path):
    out = tmp_path / "out"
    with claim_output(out, {"spec_hash": "x"}):
        (out / "keep.txt").write_text("in progress")
        with pytest.raises(OutputError, match="being written"):
            claim_output(out, {"spec_hash": "y"}, overwrite=True)
        assert (out / "keep.txt").exists()
    with claim_output(out, {"spec_hash": "y"}, overwrite=True):
        assert not (out / "keep.txt").exists()


# ------------------------------------------------------------------ augment resumes


def test_interrupted_augment_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    from synthcv.augment import dataset as aug

    parent = write_fixture_dataset(tmp_path / "parent", count=5, shard_size=2)
    ops = [{"op": "noise", "sigma": [1, 3]}, {"op": "blur", "sigma": [0.2, 1.0]}]
    whole = aug.augment_dataset(parent, tmp_path / "whole", ops, seed=3, progress=False)

    real = aug._augment_sample
    calls = {"n": 0}

    def dies_on_the_fourth(*args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(aug, "_augment_sample", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        aug.augment_dataset(parent, tmp_path / "cut", ops, seed=3, progress=False)
    cut = tmp_path / "cut"
    assert not (cut / "manifest.json").exists()
    assert sorted(p.name for p in (cut / "shards").iterdir()) == ["shard-000000"]
    monkeypatch.setattr(aug, "_augment_sample", real)
    with pytest.raises(OutputError, match="another run"):  # other ops into the partial run
        aug.augment_dataset(parent, cut, ops[:1], seed=3, progress=False)
    aug.augment_dataset(parent, cut, ops, seed=3, progress=False)
    assert _files(cut) == _files(whole)
    assert open_dataset(cut).verify() == []


def test_v1_dataset_augments_into_a_current_dataset(tmp_path):
    from synthcv.augment.dataset import augment_dataset

    child = open_dataset(augment_dataset(V1, tmp_path / "c", [{"op": "noise"}], progress=False))
    assert child.manifest["format_version"] == layout.FORMAT_VERSION
    assert child.verify() == [] and len(child) == 3
    shard_table = pq.read_table(tmp_path / "c/shards/shard-000000/shard-samples.parquet")
    for table in (child.samples, shard_table):
        assert "lights.sun.elevation" in table.column_names
        assert "light.elevation" not in table.column_names
    # the parent's old-named shard tables are read, not copied: one table per name per shard
    names = {p.name for p in (tmp_path / "c/shards/shard-000000").iterdir()}
    assert {"shard-samples.parquet", "shard-objects.parquet"} <= names
    assert not {"samples.parquet", "objects.parquet"} & names
    shutil.rmtree(tmp_path / "c")


def test_a_recursive_glob_finds_each_table_once(tmp_path):
    """DuckDB users query `DIR/**/objects.parquet`: from format 3 a shard's own tables have
    other names, so the glob (like Python's) finds the root table alone, every object once."""
    import glob

    from synthcv.pipeline import generate
    from synthcv.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "examples" / "tabletop.yaml")
    out = tmp_path / "ds"
    generate(spec.with_count(4).model_copy(update={"outputs": spec.outputs.model_copy(
        update={"shard_size": 2})}), out, progress=False, on_empty="allow")  # fmt: skip
    for table in ("objects", "samples"):
        found = glob.glob(str(out / "**" / f"{table}.parquet"), recursive=True)
        assert found == [str(out / f"{table}.parquet")]
        shard_rows = sum(
            pq.read_metadata(p).num_rows
            for p in glob.glob(str(out / "shards" / "*" / f"shard-{table}.parquet"))
        )
        assert shard_rows == pq.read_metadata(out / f"{table}.parquet").num_rows
    assert open_dataset(out).manifest["format_version"] == 3


# ------------------------------------------------------------------ manifest tampering


def _edit_manifest(root: Path, change) -> None:
    m = json.loads((root / "manifest.json").read_text())
    change(m)
    (root / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True))


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("rename a class", lambda m: m["classes"][0].update(name="dog")),
        ("remove the classes", lambda m: m.pop("classes")),
        ("set the count", lambda m: m.update(count=2)),
        ("point a file outside", lambda m: m["files"].update({"../../etc/hostname": "0" * 64})),
        ("drop the digest", lambda m: m.pop("manifest_digest")),
    ],
)
def test_an_edited_manifest_is_refused(tmp_path, what, change):
    """Before, these opened fine, passed `inspect`, and the COCO export was silently wrong."""
    from typer.testing import CliRunner

    from synthcv.cli import _register, app

    root = write_fixture_dataset(tmp_path / "d")
    open_dataset(root)  # intact
    _edit_manifest(root, change)
    with pytest.raises(ValueError, match=r"manifest\.json"):
        open_dataset(root)
    _register()
    for args in (["inspect", str(root)], ["export", str(root), "--format", "coco"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code != 0, (what, args, res.output)
    assert not (root / "coco").exists()


def test_generated_manifest_carries_its_digest(tmp_path):
    from synthcv.format import manifest as integrity

    m = json.loads((V1.parent / "dataset_v1" / "manifest.json").read_text())
    assert "manifest_digest" not in m  # version 1 had none, and still opens (above)
    from synthcv.pipeline import generate

    spec = {"count": 2, "image": {"width": 16, "height": 16}}
    spec["objects"] = {"classes": {"a": {"asset": {"primitive": "cube", "size": 0.1}}}}
    written = generate(spec, tmp_path / "g", progress=False)
    on_disk = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert on_disk == written and on_disk["manifest_digest"] == integrity.digest(on_disk)


def _documented_types(section: str) -> dict[str, str]:
    """Column -> type from a FORMAT.md table (rows whose type cell names one type per column,
    or one type for all of them)."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        kinds = [k.strip() for k in cells[1].split(",")] if cells[1] else []
        if len(kinds) == 1:
            kinds = kinds * len(names)
        if len(kinds) == len(names):
            out.update(zip(names, kinds, strict=True))
    return out


def _arrow_name(t) -> str:
    import pyarrow as pa

    if pa.types.is_list(t):
        return f"list<{_arrow_name(t.value_type)}>"
    return {"double": "float64", "large_string": "string"}.get(str(t), str(t))


def test_format_md_column_types_match_the_files(tmp_path):
    """Every column FORMAT.md types (samples and objects tables) has that type on disk, for a
    sweep spec and a people spec (so sweep and person columns are covered)."""
    import pyarrow.parquet as pq

    from synthcv.pipeline import generate
    from synthcv.spec import load_spec

    examples = Path(__file__).resolve().parents[1] / "examples"
    checked = set()
    for name in ("sweep_elevation.yaml", "people.yaml"):
        out = tmp_path / name
        generate(load_spec(examples / name).with_count(1), out, progress=False, on_empty="allow")
        for section, table in (("samples.parquet", "samples"), ("objects.parquet", "objects")):
            schema = pq.read_schema(out / f"{table}.parquet")
            for col, doc in _documented_types(section).items():
                if col not in schema.names or str(schema.field(col).type) == "null":
                    continue  # a column this spec does not write (or no sample filled)
                got = _arrow_name(schema.field(col).type)
                allowed = {k.split("[")[0].replace(" or null", "") for k in doc.split(" or ")}
                assert got in allowed, f"{table}.{col}: FORMAT.md says {doc}, file has {got}"
                checked.add(f"{table}.{col}")
    assert {"samples.width", "samples.sweep.step", "objects.instance_id", "objects.bbox"} <= checked


def test_a_reordered_spec_does_not_resume_another_orders_dataset(tmp_path):
    """The spec hash sorts keys, but class order gives the class ids: the same classes in
    another order are another dataset, refused in the directory of the first; a resume
    record from before the class list was recorded still resumes."""
    from synthcv.format.layout import RUN_FILE
    from synthcv.pipeline import generate
    from synthcv.pipeline.runner import GenerationError

    small = {
        "count": 2,
        "image": {"width": 32, "height": 24},
        "objects": {
            "count": 2,
            "classes": {
                "duck": {"asset": {"pybullet": "duck"}},
                "cube": {"asset": {"primitive": "cube", "size": 0.06}},
            },
        },
    }
    classes = small["objects"]["classes"]
    swapped = {**small, "objects": {**small["objects"], "classes": dict(reversed(classes.items()))}}
    generate(small, tmp_path / "a", workers=1, progress=False)
    with pytest.raises(GenerationError, match=r"another run \(classes \['duck', 'cube'\]\)"):
        generate(swapped, tmp_path / "a", workers=1, progress=False)
    record = json.loads((tmp_path / "a" / RUN_FILE).read_text())
    del record["classes"]  # as an older synthcv wrote it
    (tmp_path / "a" / RUN_FILE).write_text(json.dumps(record))
    generate(small, tmp_path / "a", workers=1, progress=False)  # complete: accepted


def test_every_images_npz_reader_names_the_same_problems(tmp_path):
    """One reader behind generated samples, production batches, training data and the real
    digits: a bad file is a ValueError naming the file and what is wrong, never a traceback
    from numpy, and a pickled array is never loaded."""
    from synthcv.fileio import read_images_npz
    from synthcv.genmodels.data import load_images
    from synthcv.monitor.sources import load_npz
    from synthcv.tasks.data import load_samples_npz

    images = np.zeros((3, 4, 4), np.uint8)
    good = tmp_path / "good.npz"
    np.savez(good, images=images, labels=np.array([0.0, 1.0, 2.0]))  # whole floats are fine
    got, labels = read_images_npz(good, labels_required=True)
    assert got.shape == (3, 4, 4) and labels.dtype == np.int64 and labels.tolist() == [0, 1, 2]
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, images=images)
    assert read_images_npz(unlabelled, labels_required=False)[1] is None
    cases = {
        "junk.npz": (None, "not a readable .npz"),
        "array.npz": (None, "a single array"),
        "pickled.npz": (None, "not a readable .npz"),
        "half.npz": (None, "labels of float64 (3,), expected whole numbers"),
        "short.npz": (None, "3 images but labels of int64 (2,)"),
        "floaty.npz": (None, "images must be uint8"),
    }
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    with open(tmp_path / "array.npz", "wb") as f:
        np.save(f, images)
    np.savez(tmp_path / "pickled.npz", images=np.array([{"x": 1}], dtype=object), labels=[0])
    np.savez(tmp_path / "half.npz", images=images, labels=np.array([0.5, 1, 2]))
    np.savez(tmp_path / "short.npz", images=images, labels=np.array([0, 1]))
    np.savez(tmp_path / "floaty.npz", images=images.astype(np.float32), labels=np.arange(3))
    for name, (_, needle) in cases.items():
        path = tmp_path / name
        for load in (
            lambda p: read_images_npz(p, labels_required=False),
            load_samples_npz,
            lambda p: load_npz(p),
            lambda p: load_images(p),
        ):
            with pytest.raises(ValueError, match=re.escape(needle)) as info:
                load(path)
            assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="no 'labels' array"):
        load_samples_npz(unlabelled)
