"""Recipes end to end on tiny constructed data: forgetting with and without replay, learning
curves, config errors. Tracking is off here (tests/test_tracking.py covers the MLflow record)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthcv.tasks.experiment import load_config, run_experiment


def quadrant_digits(path: Path, n: int, seed: int) -> Path:
    """4 classes = a bright 8×8 square in one of the 4 quadrants of a 28×28 noisy image."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    imgs = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r0 = 3 + 14 * (c // 2) + rng.integers(0, 3)
        c0 = 3 + 14 * (c % 2) + rng.integers(0, 3)
        imgs[i, r0 : r0 + 8, c0 : c0 + 8] = 220
    np.savez(path, images=imgs, labels=labels.astype(np.int64))
    return path


def _cfg(tmp_path: Path, **over) -> dict:
    train = quadrant_digits(tmp_path / "train.npz", 400, 0)
    test = quadrant_digits(tmp_path / "test.npz", 200, 1)
    cfg = {
        "name": "forget",
        "recipe": "finetune",
        "seeds": [0],
        "data": {
            "broad": {"kind": "samples", "path": str(train)},
            "narrow": {"kind": "samples", "path": str(train), "classes": [0, 1]},
            "broad_test": {"kind": "samples", "path": str(test)},
        },
        "train": {"sources": {"broad": 1.0}, "epochs": 2, "batch_size": 32, "jitter": False},
        "finetune": {
            "sources": {"narrow": 1.0},
            "epochs": 3,
            "batch_size": 32,
            "lr": 0.005,
            "jitter": False,
            "replay": {"source": "broad", "share": 0.8},
        },
        "eval": ["broad_test"],
        "reference": "broad_test",
        "model": {"width": 8},
        "log_model": False,
        "threads": 1,  # the test machine is shared: one thread avoids oversubscription
    }
    cfg.update(over)
    return cfg


def _fingerprint_before_stage_options(cfg) -> str:
    """The resume fingerprint ``cfg`` had before the stage options added later existed
    (``freeze_bn``, ``label_smoothing``, ``adapt_bn``, ``jitter.thickness``): what an older
    run's checkpoints carry, so leaving the options unset must reproduce it."""
    import hashlib
    import json

    dump = cfg.model_dump(mode="json", exclude={"name", "seeds", "slices", "log_model", "threads"})
    for stage in ("train", "finetune"):
        for key in ("freeze_bn", "label_smoothing", "adapt_bn"):
            del dump[stage][key]
        if isinstance(dump[stage]["jitter"], dict):
            del dump[stage]["jitter"]["thickness"]
    return hashlib.sha256(
        json.dumps({"config": dump, "inputs": {}}, sort_keys=True).encode()
    ).hexdigest()


def test_finetune_with_replay_forgets_less_than_without(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = run_experiment(
        _cfg(tmp_path), out=tmp_path / "out", tracking=True, progress=False, tracking_root=tmp_path
    )
    s = res["summary"]
    assert s["pretrain/broad_test"]["mean"] > 0.95  # the broad task was learnt
    no_replay = s["finetune/forgetting.max_drop"]["mean"]
    replay = s["finetune_replay/forgetting.max_drop"]["mean"]
    # Fine-tuning on two classes only erases the other two (~50 points); replay keeps them.
    assert no_replay > 0.3
    assert replay < 0.1
    assert s["finetune_replay/broad_test"]["mean"] > s["finetune/broad_test"]["mean"] + 0.3
    curves = res["forgetting_curves"]
    assert len(curves["finetune"]) == 4  # epoch 0 (before) + 3 epochs
    assert (tmp_path / "out" / "forgetting_curve.png").stat().st_size > 0
    assert (tmp_path / "out" / "results.json").is_file()
    # Both curves are in the MLflow record, per fine-tune epoch.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for variant in ("finetune", "finetune_replay"):
        hist = client.get_metric_history(res["run_id"], f"s0/{variant}/broad_test.acc")
        assert [m.step for m in hist] == [0, 1, 2, 3]


def test_learning_curve_improves_with_size_and_repeats_over_seeds(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        recipe="learning_curve",
        finetune=None,
        reference=None,
        seeds=[0, 1],
        learning_curve={"source": "broad", "sizes": [8, 200]},
    )
    cfg["train"]["epochs"] = 3
    res = run_experiment(cfg, out=tmp_path / "lc", tracking=False, progress=False)
    s = res["summary"]
    assert s["n200/broad_test"]["n"] == 2
    assert s["n200/broad_test"]["mean"] > s["n8/broad_test"]["mean"]
    assert (tmp_path / "lc" / "learning_curve.png").is_file()


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg["eval"] = ["nope"]
    with pytest.raises(ValueError, match="eval: unknown source 'nope'"):
        load_config(cfg)
    cfg = _cfg(tmp_path)
    cfg["train"]["epochs"] = -1
    with pytest.raises(ValueError, match=r"train\.epochs"):
        load_config(cfg)
    cfg = _cfg(tmp_path)
    del cfg["reference"]
    with pytest.raises(ValueError, match="needs 'reference'"):
        load_config(cfg)


def test_experiment_cli_runs_a_yaml_config(tmp_path: Path, monkeypatch) -> None:
    import typer
    import yaml
    from typer.testing import CliRunner

    from synthcv.cli.experiment import app as experiment_app

    app = typer.Typer()  # registered the way the lead's _register() adds it
    app.add_typer(experiment_app, name="experiment")

    cfg = _cfg(tmp_path, recipe="train", finetune=None, reference=None)
    cfg["train"]["epochs"] = 5
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "experiment",
            "run",
            str(p),
            "--epochs",
            "1",
            "--seeds",
            "0,1",
            "--out",
            str(tmp_path / "o"),
            "--no-track",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| broad_test |" in res.output
    import json

    out = json.loads((tmp_path / "o" / "results.json").read_text())
    assert out["seeds"] == [0, 1] and len(out["per_seed"]["broad_test"]) == 2
    assert not (tmp_path / "mlflow.db").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {}\ntrain: {sources: {a: 1}}\neval: [a]\n")
    res = CliRunner().invoke(app, ["experiment", "run", str(bad), "--no-track"])
    assert res.exit_code == 2  # an invalid config is an input error, reported without traceback
    assert "train.sources: unknown source 'a'" in res.output and "Traceback" not in res.output


def test_adapt_bn_recovers_a_model_from_a_domain_shift_without_labels(
    tmp_path: Path, monkeypatch
) -> None:
    """A model trained on one camera meets another (a quarter of the contrast, the black level
    raised to 60): ``adapt_bn`` re-measures BatchNorm on the new camera's images alone (their
    labels are scrambled, so they cannot help) and wins back what the unadapted model lost;
    the field's source is checked."""
    from synthcv.validation import ConfigError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def new_camera(src: Path, dst: Path, scramble: bool) -> Path:
        d = np.load(src)
        images = (d["images"].astype(np.float32) * 0.25 + 60).astype(np.uint8)
        labels = np.random.default_rng(5).permutation(d["labels"]) if scramble else d["labels"]
        np.savez(dst, images=images, labels=labels)
        return dst

    train = quadrant_digits(tmp_path / "train.npz", 400, 0)
    test = new_camera(quadrant_digits(tmp_path / "t.npz", 200, 1), tmp_path / "test.npz", False)
    unlabelled = new_camera(train, tmp_path / "unlabelled.npz", True)

    def accuracy(adapt: dict | None) -> float:
        stage = {"sources": {"train": 1.0}, "epochs": 1, "steps_per_epoch": 40, "jitter": False}
        if adapt:
            stage["adapt_bn"] = adapt
        cfg = {
            "name": "adabn",
            "seeds": [0],
            "data": {
                "train": {"kind": "samples", "path": str(train)},
                "unlabelled": {"kind": "samples", "path": str(unlabelled)},
                "test": {"kind": "samples", "path": str(test)},
            },
            "train": {**stage, "batch_size": 32},
            "eval": ["test"],
            "model": {"width": 8},
            "log_model": False,
            "threads": 1,
        }
        res = run_experiment(load_config(cfg), out=tmp_path / f"r{bool(adapt)}", progress=False)
        return res["summary"]["test"]["mean"]

    plain, adapted = accuracy(None), accuracy({"source": "unlabelled", "batches": 10})
    assert plain < 0.8 and adapted > 0.95, (plain, adapted)
    with pytest.raises(ConfigError, match=r"train\.adapt_bn\.source.*unknown source 'nope'"):
        load_config(
            _cfg(tmp_path, train={"sources": {"broad": 1.0}, "adapt_bn": {"source": "nope"}})
        )


def test_label_smoothing_caps_the_confidence_a_model_learns(tmp_path: Path) -> None:
    """``label_smoothing`` on a classification stage trains toward softened targets: a model
    that fits its data stays below the smoothed target's confidence, one without it does not;
    instance tasks refuse it with the field named; off, older runs' fingerprints hold."""

    import torch

    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.experiment import StageSpec, run_fingerprint
    from synthcv.tasks.model import SmallCNN
    from synthcv.tasks.task_kinds import Classification
    from synthcv.validation import ConfigError

    data = np.load(quadrant_digits(tmp_path / "q.npz", 64, 0))
    srcs = [ArraySet(data["images"], data["labels"], name="q")]

    def confidence(smoothing: float) -> float:
        torch.manual_seed(0)
        model = SmallCNN(4, 1, width=8, dropout=0.0)
        stage = StageSpec(
            sources={"q": 1.0},
            epochs=1,
            steps_per_epoch=150,
            batch_size=32,
            lr=5e-3,
            jitter=False,
            label_smoothing=smoothing,
        )
        Classification(load_config(_cfg(tmp_path)), 4).fit(
            model, srcs, None, stage, 0, {}, None, False
        )
        model.eval()
        with torch.no_grad():
            x = torch.from_numpy(data["images"]).float().div(255).unsqueeze(1)
            p = model(x).softmax(1)
        assert (p.argmax(1).numpy() == data["labels"]).mean() == 1.0  # both fit the data
        return float(p.max(1).values.mean())

    # smoothing 0.4 over 4 classes: the optimum puts 1 - 0.4 + 0.1 = 0.7 on the true class
    assert confidence(0.0) > 0.97
    assert confidence(0.4) < 0.8

    detection = {
        "name": "det",
        "tasks": ["detection"],
        "data": {"s": {"kind": "dataset", "path": str(tmp_path)}},
        "train": {"sources": {"s": 1.0}, "label_smoothing": 0.1},
        "eval": ["s"],
    }
    with pytest.raises(ConfigError, match=r"train\.label_smoothing.*classification"):
        load_config(detection)
    detection["train"] = {"sources": {"s": 1.0}, "jitter": {"thickness": 0.5}}
    with pytest.raises(ConfigError, match=r"train\.jitter\.thickness.*classification"):
        load_config(detection)
    detection["train"] = {"sources": {"s": 1.0}, "adapt_bn": {"source": "s"}}
    with pytest.raises(ConfigError, match=r"train\.adapt_bn.*classification"):
        load_config(detection)

    cfg = load_config(_cfg(tmp_path, train={"sources": {"broad": 1.0}, "jitter": {"shear": 5}}))
    old = _fingerprint_before_stage_options(cfg)
    assert run_fingerprint(cfg, {}) == old
    on = cfg.model_copy(update={"train": cfg.train.model_copy(update={"label_smoothing": 0.1})})
    assert run_fingerprint(on, {}) != old


def test_a_stage_with_frozen_batchnorm_keeps_the_statistics_it_started_with(
    tmp_path: Path,
) -> None:
    """``freeze_bn`` on a stage: BatchNorm normalises with, and keeps, the statistics the model
    came with while the weights learn (for both task kinds); off, the run's fingerprint is the
    one it had before the field existed, so older runs still resume."""

    import torch

    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.experiment import StageSpec, run_fingerprint
    from synthcv.tasks.model import SmallCNN
    from synthcv.tasks.task_kinds import Classification, InstanceTasks

    data = np.load(quadrant_digits(tmp_path / "q.npz", 64, 0))
    srcs = [ArraySet(255 - data["images"], data["labels"], name="inverted")]  # new statistics

    def tuned(freeze: bool) -> dict:
        torch.manual_seed(0)
        model = SmallCNN(4, 1, width=4)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        stage = StageSpec(
            sources={"inverted": 1.0},
            epochs=1,
            steps_per_epoch=3,
            batch_size=16,
            jitter=False,
            freeze_bn=freeze,
        )
        kind = Classification(load_config(_cfg(tmp_path)), 4)
        kind.fit(model, srcs, None, stage, 0, {}, None, False)
        return {"start": start, "end": model.state_dict()}

    frozen, free = tuned(True), tuned(False)
    stats = [k for k in frozen["start"] if "running_" in k]
    assert stats
    for k in stats:
        assert torch.equal(frozen["end"][k], frozen["start"][k]), k
        assert not torch.equal(free["end"][k], free["start"][k]), k
    assert not torch.equal(
        frozen["end"]["features.0.0.weight"], frozen["start"]["features.0.0.weight"]
    )
    assert InstanceTasks.fit_config(StageSpec(sources={"a": 1.0}, freeze_bn=True)).freeze_batchnorm

    cfg = load_config(_cfg(tmp_path))
    old = _fingerprint_before_stage_options(cfg)
    assert run_fingerprint(cfg, {}) == old
    on = cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update={"freeze_bn": True})})
    assert run_fingerprint(on, {}) != old


def test_every_shipped_experiment_config_validates() -> None:
    """The experiment configs the README and docs tell users to run (examples/experiments and
    benchmarks/experiments) stay valid as the config schema grows."""
    repo = Path(__file__).resolve().parents[1]
    configs = sorted(
        [
            *(repo / "examples" / "experiments").glob("*.yaml"),
            *(repo / "benchmarks" / "experiments").glob("*.yaml"),
        ]
    )
    assert len(configs) >= 11
    for path in configs:
        assert load_config(path).name, path.name
