"""`generate --executor ray`: one Ray task per shard on a real local Ray (started here, on
loopback), byte-identical to a local run, resumable, and refusing a worker of another version."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from synthcv.pipeline import generate
from synthcv.pipeline.ray_executor import VersionMismatch, _ray_shard
from synthcv.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def _spec():
    spec = load_spec(REPO / "examples" / "tabletop.yaml").with_count(6)
    return spec.model_copy(update={"outputs": spec.outputs.model_copy(update={"shard_size": 2})})


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".synthcv")
    }


def test_a_worker_of_another_synthcv_refuses_to_render(tmp_path):
    with pytest.raises(VersionMismatch, match="install the same synthcv on every node"):
        _ray_shard("0.0.0-other", lambda *a: tmp_path.joinpath("x").write_text("x"), 1)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private cluster on loopback
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        logging_level="warning",
        configure_logging=False,
    )
    yield ray
    ray.shutdown()


def test_ray_output_is_the_local_output_and_resumes(local_ray, tmp_path):
    spec = _spec()
    generate(spec, tmp_path / "local", progress=False, on_empty="allow")
    generate(spec, tmp_path / "ray", progress=False, on_empty="allow", executor="ray")
    local = _files(tmp_path / "local")
    assert _files(tmp_path / "ray") == local and len(local) > 20
    assert local_ray.is_initialized()  # an existing cluster is joined, not shut down
    # a driver killed after one of three shards: the re-run renders the rest, same bytes
    (tmp_path / "ray" / "manifest.json").unlink()
    for k in (1, 2):
        shutil.rmtree(tmp_path / "ray" / "shards" / f"shard-00000{k}")
    generate(spec, tmp_path / "ray", progress=False, on_empty="allow", executor="ray")
    assert _files(tmp_path / "ray") == local


def test_a_failing_shard_raises_its_own_error(local_ray, tmp_path):
    from synthcv.pipeline import GenerationError

    spec = _spec()
    with pytest.raises(GenerationError, match="no labelled object"):
        # a camera looking 50 m away from the table: every sample is empty, "fail" stops the run
        data = spec.resolved()
        data["camera"]["look_at"] = [50.0, 50.0, 0.0]
        data["camera"]["look_at_jitter"] = 0.0
        data.pop("written_paths", None)
        away = load_spec(data)
        generate(away, tmp_path / "away", progress=False, on_empty="fail", executor="ray")
    assert not (tmp_path / "away" / "manifest.json").exists()


def test_ray_data_reads_every_sample_decoded_on_the_workers(local_ray, tmp_path):
    import numpy as np

    from conftest_dataset_fixture import write_fixture_dataset
    from synthcv.format import open_dataset
    from synthcv.ray_data import read_dataset

    local_ray.data.DataContext.get_current().enable_progress_bars = False
    root = write_fixture_dataset(tmp_path / "fixture", count=3)
    rows = sorted(
        read_dataset(root, modalities=["rgb", "instance", "depth"]).take_all(),
        key=lambda r: r["sample_index"],
    )
    ds = open_dataset(root)
    assert [r["sample_index"] for r in rows] == [0, 1, 2]
    for row in rows:
        item = ds[row["sample_index"]]
        np.testing.assert_array_equal(row["rgb"], item["rgb"])
        np.testing.assert_array_equal(row["instance"], item["instance"])
        np.testing.assert_array_equal(row["depth"], item["depth"])
        objs = [o for o in item["objects"] if not o["is_distractor"] and o["bbox"] is not None]
        assert row["labels"].tolist() == [o["class_id"] for o in objs]
        x, y, w, h = objs[0]["bbox"]
        assert row["boxes"][0].tolist() == [x, y, x + w, y + h]
        assert row["camera.elevation"] == item["factors"]["camera.elevation"]
    with pytest.raises(ValueError, match="unknown"):
        read_dataset(root, modalities=["albedo"])


def test_a_worker_that_dies_mid_shard_is_retried_and_the_bytes_are_the_same(local_ray, tmp_path):
    """The first attempt at shard 1 kills its worker process halfway (after one sample, before
    the shard is published); Ray retries the task on a fresh worker and the dataset equals a
    local run."""
    from synthcv.format.writer import claim_output, write_manifest
    from synthcv.pipeline.ray_executor import run_on_ray
    from synthcv.pipeline.runner import _worker_shard, manifest_fields

    marker = tmp_path / "died-once"

    def dies_once(spec_json, spec_hash, label, shard, out, threads, on_empty):
        import os

        from synthcv.pipeline import shard as shard_module

        if shard == 1 and not marker.exists():
            real = shard_module.render_sample

            calls = []

            def render_then_die(*args, **kwargs):
                calls.append(1)
                if len(calls) == 2:  # the first sample is written: die halfway
                    marker.write_text("x")
                    os._exit(1)  # the worker process dies mid-shard
                return real(*args, **kwargs)

            shard_module.render_sample = render_then_die
        return _worker_shard(spec_json, spec_hash, label, shard, out, threads, on_empty)

    spec = _spec()
    generate(spec, tmp_path / "local", progress=False, on_empty="allow")
    out = tmp_path / "ray"
    run = {"spec_hash": spec.spec_hash, "count": spec.count, "shard_size": 2}
    with claim_output(out, run, False):
        run_on_ray(dies_once, spec, spec.spec_hash, "spec", [0, 1, 2], out, lambda n: None, "allow")
        write_manifest(out, manifest_fields(spec, spec.spec_hash), 3)
    assert marker.exists()  # the worker did die once
    assert _files(out) == _files(tmp_path / "local")
    from synthcv.format import open_dataset

    assert open_dataset(out).verify() == []  # no leftover of the dead attempt


def test_a_killed_driver_resumes_to_the_same_bytes(local_ray, tmp_path):
    """A real driver process joins the cluster and is SIGKILLed once its first shard is
    published; the same command again finishes the dataset, identical to a local run, and it
    verifies clean (no shard left half-written by the dead job's tasks)."""
    import signal
    import subprocess
    import sys
    import time

    spec = load_spec(REPO / "examples" / "tabletop.yaml").with_count(24)
    spec = spec.model_copy(update={"outputs": spec.outputs.model_copy(update={"shard_size": 2})})
    generate(spec, tmp_path / "local", progress=False, on_empty="allow")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    out = tmp_path / "ray"
    address = local_ray.get_runtime_context().gcs_address
    code = (
        "from synthcv.pipeline import generate; from synthcv.spec import load_spec; "
        f"generate(load_spec({str(spec_file)!r}), {str(out)!r}, progress=False, "
        f"on_empty='allow', executor='ray', ray_address={address!r})"
    )
    env = {**os.environ, "SYNTHCV_TRACKING": "0", "RAY_AUTH_MODE": "disabled"}
    log = tmp_path / "driver.log"  # a file, not a pipe: a full pipe would stall the driver
    with open(log, "wb") as err:
        driver = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=err)
    shards = out / "shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if shards.is_dir() and any(p.name.startswith("shard-") for p in shards.iterdir()):
            break
        time.sleep(0.05)
    assert driver.poll() is None, log.read_text()[-2000:]
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    assert not (out / "manifest.json").exists()  # it died before finishing
    generate(spec, out, progress=False, on_empty="allow", executor="ray")
    from synthcv.format import open_dataset

    assert _files(out) == _files(tmp_path / "local")
    assert open_dataset(out).verify() == []
