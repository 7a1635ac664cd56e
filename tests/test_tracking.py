"""MLflow tracking: what a run records, the switch-off, env hygiene, offline operation."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from synthcv.tracking import NullRun, dataset_hash, default_tracking_uri, tracked_run


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SYNTHCV_TRACKING", raising=False)
    monkeypatch.delenv("SYNTHCV_EXPERIMENT", raising=False)


def _client(root: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_tracked_run_records_params_metrics_inputs_and_artifacts(tmp_path: Path) -> None:
    digest = "ab" * 32
    with tracked_run(
        "generate",
        {"count": 10, "renderer": {"backend": "tiny"}},
        {"digits": digest},
        run_name="r1",
        root=tmp_path,
    ) as run:
        for step in range(3):
            run.log_metrics({"loss": 1.0 / (step + 1), "nan": float("nan")}, step=step)
        run.log_table([{"factor": "a", "acc": 0.5}, {"factor": "b", "acc": 1.0}], "slices")
        run.log_dict({"x": 1}, "cfg.json")
        run.set_tags({"note": "hi"})
    import os

    assert "MLFLOW_TRACKING_URI" not in os.environ  # the run did not leak its store
    c = _client(tmp_path)
    r = c.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.info.run_name == "r1"
    assert r.data.params["count"] == "10" and r.data.params["renderer.backend"] == "tiny"
    assert r.data.params["input.digits"] == digest
    assert r.data.tags["synthcv.kind"] == "generate"
    assert r.data.tags["synthcv.input.digits"] == digest and r.data.tags["note"] == "hi"
    hist = c.get_metric_history(run.run_id, "loss")
    assert [(m.step, round(m.value, 4)) for m in hist] == [(0, 1.0), (1, 0.5), (2, 0.3333)]
    assert "nan" not in r.data.metrics  # non-finite values are dropped, not crashing MLflow
    [inp] = r.inputs.dataset_inputs
    assert inp.dataset.name == "digits" and digest.startswith(inp.dataset.digest)
    arts = {a.path for a in c.list_artifacts(run.run_id)}
    assert {"slices.json", "cfg.json"} <= arts
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts live beside the db, under root


def test_failed_block_marks_run_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), tracked_run("x", root=tmp_path) as run:
        raise RuntimeError("boom")
    assert _client(tmp_path).get_run(run.run_id).info.status == "FAILED"


def test_disabled_by_env_or_flag_is_a_noop(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SYNTHCV_TRACKING", "0")
    with tracked_run("x", {"a": 1}, {"d": "h"}, root=tmp_path) as run:
        assert isinstance(run, NullRun) and run.run_id is None
        run.log_metrics({"m": 1}, step=0)
        run.log_artifact("nope")
        run.log_table([], "t")
        run.log_dict({}, "d.json")
        run.set_tags({})
        run.log_model(None)
    monkeypatch.delenv("SYNTHCV_TRACKING")
    with tracked_run("x", root=tmp_path, enabled=False) as run:
        assert not run.enabled
    assert not (tmp_path / "mlflow.db").exists()


def test_env_uri_overrides_default(tmp_path: Path, monkeypatch) -> None:
    assert default_tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert default_tracking_uri(tmp_path) == uri
    with tracked_run("x", root=tmp_path) as run:
        pass
    import os

    import mlflow

    assert os.environ["MLFLOW_TRACKING_URI"] == uri
    assert mlflow.MlflowClient(tracking_uri=uri).get_run(run.run_id).info.status == "FINISHED"
    assert not (tmp_path / "mlflow.db").exists()


def test_dataset_hash(tmp_path: Path) -> None:
    f = tmp_path / "s.npz"
    f.write_bytes(b"abc")
    assert dataset_hash(f) == hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        dataset_hash(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text("{}")
    assert dataset_hash(tmp_path / "d") == hashlib.sha256(b"{}").hexdigest()


def test_experiment_run_record_holds_params_metrics_inputs_and_model_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest_dataset_fixture import write_fixture_dataset
    from synthcv.tasks.experiment import run_experiment

    rng = np.random.default_rng(0)
    npz = tmp_path / "samples.npz"
    np.savez(
        npz, images=rng.integers(0, 255, (32, 28, 28), dtype=np.uint8), labels=np.arange(32) % 2
    )
    ds = write_fixture_dataset(tmp_path / "ds", count=3, shard_size=2)

    real_connect = socket.socket.connect

    def no_network(self, address):  # everything must work with the network unreachable
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access attempted: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(tmp_path)  # the default store is under the working directory
    cfg = {
        "name": "tiny",
        "seeds": [0, 1],
        "data": {
            "gen": {"kind": "samples", "path": str(npz)},
            "gen_val": {"kind": "samples", "path": str(npz), "part": "val"},
            "synth": {"kind": "dataset", "path": str(ds)},
        },
        "train": {"sources": {"gen": 1.0}, "epochs": 2, "batch_size": 8},
        "eval": ["gen", "gen_val"],
        "slices": {"source": "synth", "factors": ["camera.elevation", "ground.texture"]},
        "model": {"width": 4},
    }
    res = run_experiment(cfg, out=tmp_path / "out", progress=False)
    c = _client(tmp_path)
    r = c.get_run(res["run_id"])
    assert r.data.params["train.epochs"] == "2" and r.data.params["recipe"] == "train"
    assert r.data.tags["synthcv.kind"] == "experiment"
    assert r.data.params["input.gen"] == dataset_hash(npz)
    assert r.data.params["input.synth"] == dataset_hash(ds)
    # a part of a file is recorded by the digest of exactly that part, not the whole file's
    from synthcv.realdata import validation_part
    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.experiment import split_digest

    with np.load(npz) as arrays:
        val = validation_part(32, "val", 0.1)
        part = ArraySet(arrays["images"][val], arrays["labels"][val])
    assert r.data.params["input.gen_val"] == split_digest(part) != dataset_hash(npz)
    # MLflow datasets: the real local source, the schema, the digest, the context
    inputs = {i.dataset.name: i for i in r.inputs.dataset_inputs}
    assert set(inputs) == {"gen", "gen_val", "synth"}
    gen = inputs["gen"].dataset
    assert gen.source_type == "local" and json.loads(gen.source) == {"uri": str(npz.resolve())}
    assert dataset_hash(npz).startswith(gen.digest) and len(gen.digest) == 36
    tensors = {c["name"]: c["tensor-spec"] for c in json.loads(gen.schema)["mlflow_colspec"]}
    assert tensors["images"] == {"dtype": "uint8", "shape": [-1, 28, 28]}
    assert json.loads(inputs["gen_val"].dataset.profile)["rows"] == len(val)
    assert json.loads(inputs["synth"].dataset.source) == {"uri": str(ds.resolve())}
    assert {t.key: t.value for t in inputs["gen"].tags} == {"mlflow.data.context": "input"}
    # the experiment opens on its training runs in the MLflow UI, not the GenAI overview
    exp = c.get_experiment(r.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # Per-epoch history for each seed (epoch 0 = before training) and the summary.
    assert [m.step for m in c.get_metric_history(r.info.run_id, "s1/gen.acc")] == [0, 1, 2]
    assert "gen.mean" in r.data.metrics and "gen.lo" in r.data.metrics
    arts = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"confusion.png", "results.json", "summary.md", "slices.png", "slices.json"} <= arts
    assert len(res["slices"]) == 3 + 2  # 3 elevations, 2 textures
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{r.info.run_id}/model")
        out = np.asarray(model.predict(np.zeros((3, 1, 28, 28), np.float32)))
    finally:
        mlflow.set_tracking_uri(None)
    assert out.shape == (3, 2)
    # the classifier itself comes back (embed, in_channels): monitor --model and loop use it
    import torch

    from synthcv.tasks.classifier_io import load_classifier

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    clf, describe = load_classifier(f"runs:/{r.info.run_id}/model")
    assert clf.in_channels == 1 and hasattr(clf, "embed") and "MLflow" in describe
    from_dir, _ = load_classifier(str(tmp_path / "out"))  # the output directory's model.pt
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(from_dir(x), clf(x))


def test_command_recipes_record_params_lineage_metrics_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `genmodel train`, `augment` and `generate` record, with stand-in work functions."""
    import json

    from synthcv.tracking import track_augment, track_generate, track_genmodel_train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    src = tmp_path / "src"
    src.mkdir()
    (src / "manifest.json").write_text('{"n": 1}')
    run_dir = tmp_path / "run"

    def fake_train() -> dict:
        run_dir.mkdir()
        (run_dir / "run.json").write_text("{}")
        rows = [{"epoch": 1, "train_bpd": 2.0}, {"epoch": 2, "train_bpd": 1.5, "test_bpd": 1.6}]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"epoch": 2}

    config = {"model": "nade", "data": str(src), "limit": None, "hparams": {"hidden": 8}}
    assert track_genmodel_train(fake_train, config=config, out=run_dir) == {"epoch": 2}

    def fake_augment() -> str:
        (tmp_path / "child").mkdir()
        (tmp_path / "child" / "manifest.json").write_text('{"n": 2}')
        return "done"

    ops = [{"op": "noise"}]
    assert track_augment(fake_augment, src=src, out=tmp_path / "child", ops=ops, seed=3) == "done"

    def fake_generate() -> dict:
        (tmp_path / "ds").mkdir()
        (tmp_path / "ds" / "manifest.json").write_text('{"n": 3}')
        return {"count": 3, "spec_hash": "s" * 64}

    manifest = track_generate(
        fake_generate,
        spec_path="spec.yaml",
        out=tmp_path / "ds",
        count=3,
        workers=1,
        backend="tiny",
        spec_hash="s" * 64,
        contact_sheet=lambda png: png.write_bytes(b"png"),
    )
    assert manifest["count"] == 3
    c = _client(tmp_path)
    runs = {
        r.data.tags["synthcv.kind"]: r
        for r in c.search_runs([e.experiment_id for e in c.search_experiments()])
    }
    train = runs["genmodel-train"]
    assert train.data.params["model"] == "nade" and train.data.params["hparams.hidden"] == "8"
    assert "limit" not in train.data.params and train.data.params["out"] == str(run_dir)
    assert train.data.tags["synthcv.input.src"] == dataset_hash(src)
    history = c.get_metric_history(train.info.run_id, "train_bpd")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.5)]
    arts = {a.path for a in c.list_artifacts(train.info.run_id)}
    assert {"run.json", "metrics.jsonl"} <= arts
    aug = runs["augment"]
    assert aug.data.params["seed"] == "3" and aug.data.tags["synthcv.input.src"] == dataset_hash(
        src
    )
    assert aug.data.tags["synthcv.output_hash"] == dataset_hash(tmp_path / "child")
    [aug_out] = [i.dataset for i in aug.inputs.dataset_inputs if i.dataset.name == "child"]
    assert json.loads(aug_out.source) == {"uri": str((tmp_path / "child").resolve())}
    gen = runs["generate"]
    assert gen.data.tags["synthcv.output.dataset"] == dataset_hash(tmp_path / "ds")
    [out] = gen.inputs.dataset_inputs  # the dataset it wrote, as an output
    assert {t.key: t.value for t in out.tags} == {"mlflow.data.context": "output"}
    assert json.loads(out.dataset.source) == {"uri": str((tmp_path / "ds").resolve())}
    assert gen.info.status == "FINISHED" and gen.info.end_time >= gen.info.start_time
    assert gen.data.params["backend"] == "tiny" and gen.data.metrics["samples"] == 3
    arts = {a.path for a in c.list_artifacts(gen.info.run_id)}
    assert {"manifest.json", "contact_sheet.png"} <= arts


def test_background_runs_close_killed_failed_or_finished(tmp_path: Path) -> None:
    """A command's Ctrl-C closes its run KILLED, an error FAILED; a command that dies without
    a word (no end message) leaves its run KILLED, not RUNNING forever."""
    from synthcv.tracking import BackgroundRun, background_run

    with (
        pytest.raises(KeyboardInterrupt),
        background_run("x", {}, {}, "ctrl-c", root=tmp_path) as r1,
    ):
        raise KeyboardInterrupt
    with pytest.raises(RuntimeError), background_run("x", {}, {}, "error", root=tmp_path) as r2:
        raise RuntimeError("boom")
    with background_run("x", {"a": None, "b": [1, 2]}, {"d": "h" * 64}, "ok", root=tmp_path) as r3:
        r3.log_metrics({"m": 2.0, "nan": float("nan")})
    dead = BackgroundRun("x", {}, {}, "dead", root=tmp_path)
    dead._proc.stdin.close()  # what the pipe sees when the command is killed
    assert dead._proc.wait(timeout=120) == 0
    c = _client(tmp_path)
    runs = {
        r.info.run_name: r
        for r in c.search_runs([c.get_experiment_by_name("synthcv").experiment_id])
    }
    assert {n: r.info.status for n, r in runs.items()} == {
        "ctrl-c": "KILLED",
        "error": "FAILED",
        "ok": "FINISHED",
        "dead": "KILLED",
    }
    ok = runs["ok"]
    assert ok.info.run_id == r3.run_id and r1.run_id and r2.run_id
    assert ok.data.params == {"b": "[1, 2]", "input.d": "h" * 64}
    assert ok.data.metrics == {"m": 2.0} and ok.data.tags["synthcv.input.d"] == "h" * 64


def test_mlflow_is_handled_in_tracking_only() -> None:
    """Layering: only synthcv.tracking imports mlflow, and it imports no synthcv module but
    synthcv._version and (lazily) synthcv.format (digests) and synthcv.realdata, never the
    command line (tests/test_architecture.py checks the layers as a whole)."""
    import ast

    src = Path(__file__).resolve().parents[1] / "src" / "synthcv"
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        if path.name == "tracking.py":
            ours = {n for n in names if n.split(".")[0] == "synthcv"}
            assert ours <= {"synthcv._version", "synthcv.format", "synthcv.realdata"}, ours
        else:
            assert not {n for n in names if n.split(".")[0] == "mlflow"}, path


def test_dataset_record_schema_of_a_dataset_and_of_an_npz_with_text(tmp_path: Path) -> None:
    """Schemas come from samples.parquet or the .npz arrays; text arrays (a JSON meta string,
    as `genmodel sample` writes) are typed "str", which MLflow accepts."""
    from conftest_dataset_fixture import write_fixture_dataset
    from synthcv.tracking import _mlflow_schema, dataset_record

    npz = tmp_path / "s.npz"
    np.savez(npz, images=np.zeros((5, 8, 8), np.uint8), labels=np.arange(5), meta=np.array("{}"))
    rec = dataset_record(npz)
    assert rec.source == str(npz.resolve()) and rec.digest == dataset_hash(npz)
    assert rec.schema["tensors"]["images"] == {"dtype": "uint8", "shape": [-1, 8, 8]}
    specs = {c["name"]: c for c in json.loads(_mlflow_schema(rec.schema))["mlflow_colspec"]}
    assert specs["meta"]["tensor-spec"]["dtype"] == "str" and rec.profile == {"rows": 5}
    ds = dataset_record(write_fixture_dataset(tmp_path / "ds", count=2, shard_size=2), "synth")
    assert ds.name == "synth" and ds.schema["columns"]["camera.elevation"] == "double"
    assert ds.schema["columns"]["rgb"] == "string" and ds.profile["samples"] == 2
