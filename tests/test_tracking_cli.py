"""`synthcv generate` and `synthcv genmodel train` leave an MLflow record with lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("torch")


def _run(args: list[str], tmp_path, **env: str | None) -> subprocess.CompletedProcess:
    """``python -m synthcv ARGS`` in ``tmp_path``; ``env`` overrides (None: unset)."""
    merged = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "SYNTHCV_TRACKING": "1",
        **env,
    }
    full_env = {k: v for k, v in merged.items() if v is not None}
    res = subprocess.run(
        [sys.executable, "-m", "synthcv", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return res


def test_generate_and_genmodel_train_are_tracked(tmp_path, monkeypatch):
    from synthcv.tracking import dataset_hash

    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "count": 3,
                "image": {"width": 28, "height": 28, "channels": 1},
                "objects": {
                    "classes": {"7": {"asset": {"glyph": "7"}}, "1": {"asset": {"glyph": "1"}}}
                },
                "physics": {"enabled": False},
                "camera": {"distance": 0.3, "elevation": 89, "azimuth": -90},
            }
        )
    )
    _run(["generate", str(spec), "--out", "ds"], tmp_path)
    _run(
        [
            "genmodel",
            "train",
            "--model",
            "fvsbn",
            "--data",
            "ds",
            "--epochs",
            "2",
            "--batch-size",
            "2",
            "--out",
            "run",
        ],
        tmp_path,
    )
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # no global URI left behind
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_out = {r.data.params.get("out"): r for r in runs}
    gen, train = by_out["ds"], by_out["run"]
    ds_hash = dataset_hash(tmp_path / "ds")
    assert gen.data.tags["synthcv.output.dataset"] == ds_hash
    assert gen.data.params["count"] == "3" and gen.data.metrics["samples"] == 3
    # the dataset it wrote is the run's output dataset: path, schema (samples.parquet), digest
    [out] = gen.inputs.dataset_inputs
    assert json.loads(out.dataset.source) == {"uri": str((tmp_path / "ds").resolve())}
    columns = {c["name"]: c["type"] for c in json.loads(out.dataset.schema)["mlflow_colspec"]}
    assert columns["rgb"] == "string" and columns["camera.elevation"] == "double"
    assert ds_hash.startswith(out.dataset.digest)
    assert json.loads(out.dataset.profile)["samples"] == 3
    monkeypatch.chdir(tmp_path)  # the default artifact store lives beside mlflow.db
    artifacts = {a.path for a in client.list_artifacts(gen.info.run_id)}
    assert {"manifest.json", "contact_sheet.png"} <= artifacts
    # the model's training data is the generated dataset: same hash = lineage
    assert ds_hash in json.dumps(train.data.tags) + json.dumps(train.data.params)
    assert train.data.params["model"] == "fvsbn"
    # runs are named by what they did, and unset settings are not logged as "None"
    spec_hash = json.loads((tmp_path / "ds" / "manifest.json").read_text())["spec_hash"]
    assert gen.info.run_name == f"generate spec 3 @ {spec_hash[:8]}"
    assert train.info.run_name == "genmodel fvsbn ds -> run"
    assert "None" not in gen.data.params.values() and "None" not in train.data.params.values()
    history = client.get_metric_history(train.info.run_id, "test_bpd")
    assert len(history) == 2 and all(m.value > 0 for m in history)


def test_denoise_train_is_tracked_with_its_pairs_dataset(tmp_path, monkeypatch):
    from synthcv.tracking import dataset_hash

    spec = {
        "count": 6,
        "image": {"width": 32, "height": 32, "channels": 1},
        "objects": {"classes": {"7": {"asset": {"glyph": "7"}}}},
        "physics": {"enabled": False},
        "camera": {"distance": 0.3, "elevation": 89, "azimuth": -90},
        "sensor": {"exposure_ev": -5, "noise": {"full_well": 3000}},
        "outputs": {"pairs": True},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    _run(["generate", "spec.json", "--out", "pairs", "--no-track"], tmp_path)
    args = ["denoise", "train", "pairs", "--out", "dn", "--steps", "20", "--patch", "16"]
    _run([*args, "--batch-size", "4", "--depth", "3", "--width", "8"], tmp_path)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.run_name == "denoise pairs -> dn"
    assert run.data.params["steps"] == "20" and "None" not in run.data.params.values()
    [inp] = run.inputs.dataset_inputs
    assert dataset_hash(tmp_path / "pairs").startswith(inp.dataset.digest)
    results = json.loads((tmp_path / "dn" / "results.json").read_text())
    noisy_floor = results["val"][0]
    assert run.data.metrics["val.noisy_input.psnr"] == pytest.approx(noisy_floor["psnr"])
    history = client.get_metric_history(run.info.run_id, "val_psnr")
    assert [m.step for m in history] == [h["step"] for h in results["history"]]
    monkeypatch.chdir(tmp_path)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "results.json", "results.md"} <= artifacts


def test_the_environment_switches_tracking_off_and_the_flag_on(tmp_path):
    """SYNTHCV_TRACKING=0 leaves no MLflow store behind; an explicit --track still tracks."""
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "count": 2,
                "image": {"width": 16, "height": 16, "channels": 1},
                "objects": {"classes": {"7": {"asset": {"glyph": "7"}}}},
                "physics": {"enabled": False},
                "camera": {"distance": 0.3, "elevation": 89, "azimuth": -90},
            }
        )
    )

    def generate(*extra: str) -> None:
        _run(
            ["generate", str(spec), "--out", *extra],
            tmp_path,
            MLFLOW_TRACKING_URI=None,
            SYNTHCV_TRACKING="0",
        )

    generate("off")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
    generate("on", "--track")
    assert (tmp_path / "mlflow.db").exists()


def test_every_tracked_command_leaves_the_default_to_the_environment():
    import typer.main

    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    root = typer.main.get_command(app)
    for path in (
        ["generate"],
        ["augment"],
        ["monitor"],
        ["experiment", "run"],
        ["genmodel", "train"],
        ["denoise", "train"],
    ):
        cmd = root
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        track = next(p for p in cmd.params if p.name == "track")
        assert track.default is None, path


def test_ui_serves_this_folders_runs_on_loopback_and_names_the_runs_table(tmp_path):
    """`synthcv ui` serves the store runs log to here and prints the runs table's address
    (MLflow 3's UI would open the GenAI overview); without a store it says so, exit 2."""
    import signal
    import socket
    import time
    import urllib.request

    from synthcv.tracking import tracked_run

    env = {**os.environ, "SYNTHCV_TRACKING": "1", "COLUMNS": "300"}
    env.pop("MLFLOW_TRACKING_URI", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run(
        [sys.executable, "-m", "synthcv", "ui"], cwd=empty, env=env, capture_output=True, text=True
    )
    assert res.returncode == 2 and "no MLflow store here" in res.stderr, res.stderr
    with tracked_run("generate", {"a": 1}, run_name="r", root=tmp_path) as run:
        pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthcv", "ui", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]
        exp_id = run.run.info.experiment_id
        url = f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
        assert lines[1].strip() == f"open {url}", lines
        api = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/runs/get?run_id={run.run_id}"
        deadline, body = time.monotonic() + 120, None
        while body is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                body = json.loads(urllib.request.urlopen(api, timeout=5).read())
            except OSError:
                time.sleep(1)
        assert body is not None and body["run"]["info"]["run_name"] == "r"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
