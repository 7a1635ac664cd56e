"""Interrupted experiments resume: every stage saves its state, and a resumed run redoes no
step, skips none, and ends with exactly the results of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthcv.tasks import experiment, loop
from synthcv.tasks.experiment import run_experiment
from test_detector import SWEEP_SPEC
from test_tasks_recipes import _cfg


class _Interrupt(Exception):
    pass


def _weights(run: Path, stage: str) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / f"{stage}.pt", weights_only=True)["model"]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _count_saves(monkeypatch, stop_after: int | None = None) -> list[int]:
    """Count stage-checkpoint writes (one per step with a zero interval); raise after the
    ``stop_after``-th one, as a kill right after a save would leave the run."""
    saves: list[int] = []
    real = loop._save

    def counted(*args, **kwargs):
        real(*args, **kwargs)
        saves.append(1)
        if stop_after is not None and len(saves) == stop_after:
            raise _Interrupt

    monkeypatch.setattr(loop, "_save", counted)
    monkeypatch.setattr(experiment, "CHECKPOINT_INTERVAL_S", 0.0)
    return saves


def _classification(tmp_path: Path) -> dict:
    """Pre-train → fine-tune with replay, two seeds, jitter on: every stage kind, and the
    jitter generator's state matters to the result."""
    cfg = _cfg(tmp_path, seeds=[0, 1])
    cfg["train"]["jitter"] = True
    cfg["finetune"]["jitter"] = True
    cfg["train"]["steps_per_epoch"] = 4
    cfg["finetune"]["steps_per_epoch"] = 4
    return cfg


def test_an_interrupted_finetune_experiment_resumes_to_the_uninterrupted_result(
    tmp_path: Path, monkeypatch
) -> None:
    cfg = _classification(tmp_path)
    saves = _count_saves(monkeypatch)
    whole = run_experiment(cfg, out=tmp_path / "whole", tracking=False, progress=False)
    total = len(saves)
    # per seed: pre-train 2×4 steps, fine-tune and fine-tune+replay 3×4 each
    assert total == 2 * (8 + 12 + 12)
    assert whole["resumed"] == []

    # seed 0's pre-train and plain fine-tune done, fine-tune+replay cut after 5 of its 12 steps
    cut = 8 + 12 + 5
    saves = _count_saves(monkeypatch, stop_after=cut)
    with pytest.raises(_Interrupt):
        run_experiment(cfg, out=tmp_path / "cut", tracking=False, progress=False)
    saves = _count_saves(monkeypatch)
    resumed = run_experiment(cfg, out=tmp_path / "cut", tracking=False, progress=False, resume=True)
    assert len(saves) == total - cut  # no step redone, none skipped
    assert resumed["resumed"] == ["s0/pretrain/", "s0/finetune/", "s0/finetune_replay/"]
    assert resumed["per_seed"] == whole["per_seed"]  # bit for bit, jitter draws included
    assert resumed["forgetting_curves"] == whole["forgetting_curves"]
    for stage in ("s0-finetune_replay", "s1-finetune_replay"):
        assert _same_weights(_weights(tmp_path / "cut", stage), _weights(tmp_path / "whole", stage))


def test_without_resume_or_with_another_config_the_run_starts_over(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    cfg = _cfg(tmp_path, recipe="train", finetune=None, reference=None)
    out = tmp_path / "run"
    saves = _count_saves(monkeypatch)
    run_experiment(cfg, out=out, tracking=False, progress=False)
    steps = len(saves)
    assert (out / "checkpoints" / "s0.pt").is_file()

    saves.clear()
    (out / "checkpoints" / ".s0.pt.abc123.tmp").write_bytes(b"a save cut by a kill")
    again = run_experiment(cfg, out=out, tracking=False, progress=False, resume=True)
    assert not list((out / "checkpoints").glob(".*.tmp"))
    assert again["resumed"] == ["s0/"] and saves == []  # finished: restored, not retrained

    saves.clear()
    fresh = run_experiment(cfg, out=out, tracking=False, progress=False)
    assert fresh["resumed"] == [] and len(saves) == steps
    assert fresh["per_seed"] == again["per_seed"]

    saves.clear()
    changed = {**cfg, "train": {**cfg["train"], "lr": 0.004}}
    other = run_experiment(changed, out=out, tracking=False, progress=False, resume=True)
    assert other["resumed"] == [] and len(saves) == steps
    assert "another config or other data; starting over" in capsys.readouterr().err

    # a seed added to the list trains alone; the seed already done is restored
    saves.clear()
    more = {**changed, "seeds": [0, 1]}
    both = run_experiment(more, out=out, tracking=False, progress=False, resume=True)
    assert both["resumed"] == ["s0/"] and len(saves) == steps
    assert both["per_seed"]["broad_test"][0] == other["per_seed"]["broad_test"][0]


def test_a_checkpoint_of_another_stage_or_a_damaged_file_is_refused(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    ckpt = loop.Checkpoint(tmp_path / "s0.pt", "a" * 64)
    sched = loop.Schedule(epochs=1, steps=2, batch_size=2, lr=0.01, weight_decay=0.0)

    def step(batch):
        x = torch.ones(len(batch), 2)
        return model(x).pow(2).mean(), {"loss": 0.0}, len(batch)

    loop.run_epochs(model, [4], [1.0], sched, 0, step, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"s0\.pt: written by another configuration"):
        loop.run_epochs(
            model, [4], [1.0], sched, 0, step, checkpoint=loop.Checkpoint(ckpt.path, "b" * 64)
        )
    ckpt.path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"s0\.pt: not a readable stage checkpoint"):
        loop.run_epochs(model, [4], [1.0], sched, 0, step, checkpoint=ckpt)


def test_an_interrupted_detection_experiment_resumes_to_the_uninterrupted_result(
    tmp_path: Path, monkeypatch
) -> None:
    from synthcv.pipeline import generate

    generate(SWEEP_SPEC, tmp_path / "sweep", progress=False)
    cfg = {
        "name": "toy_detection",
        "tasks": ["detection", "instance_segmentation"],
        "seeds": [0],
        "data": {
            "synth": {"kind": "dataset", "path": str(tmp_path / "sweep"), "part": "train"},
            "val": {"kind": "dataset", "path": str(tmp_path / "sweep"), "part": "val"},
        },
        "train": {
            "sources": {"synth": 1.0},
            "epochs": 2,
            "steps_per_epoch": 3,
            "batch_size": 4,
            "jitter": {"rotate": 10, "elastic": 1.0},  # draws from the step's generator
        },
        "eval": ["val"],
        "model": {"width": 8, "input_size": 64},
        "log_model": False,
        "threads": 1,
    }
    _count_saves(monkeypatch)
    whole = run_experiment(cfg, out=tmp_path / "whole", tracking=False, progress=False)
    _count_saves(monkeypatch, stop_after=4)  # mid-way through the second epoch
    with pytest.raises(_Interrupt):
        run_experiment(cfg, out=tmp_path / "cut", tracking=False, progress=False)
    saves = _count_saves(monkeypatch)
    resumed = run_experiment(cfg, out=tmp_path / "cut", tracking=False, progress=False, resume=True)
    assert len(saves) == 2 and resumed["resumed"] == ["s0/"]
    assert resumed["per_seed"] == whole["per_seed"]
    assert _same_weights(_weights(tmp_path / "cut", "s0"), _weights(tmp_path / "whole", "s0"))


def test_a_resumed_tracked_run_is_tagged_and_holds_every_epoch(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = _cfg(tmp_path, recipe="train", finetune=None, reference=None)
    cfg["train"]["steps_per_epoch"] = 3
    _count_saves(monkeypatch, stop_after=4)  # in the second of two epochs
    with pytest.raises(_Interrupt):
        run_experiment(cfg, out=tmp_path / "run", tracking_root=tmp_path, progress=False)
    _count_saves(monkeypatch)
    res = run_experiment(
        cfg, out=tmp_path / "run", tracking_root=tmp_path, progress=False, resume=True
    )
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(res["run_id"])
    assert run.data.tags["synthcv.resumed"] == "true"
    history = client.get_metric_history(res["run_id"], "s0/broad_test.acc")
    assert sorted(m.step for m in history) == [0, 1, 2]  # restored epochs logged again


def test_the_cli_resumes_by_default_and_starts_over_with_no_resume(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    cfg = _cfg(tmp_path, recipe="train", finetune=None, reference=None, seeds=[0, 1])
    cfg["train"]["epochs"] = 1
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(cfg))
    argv = ["experiment", "run", str(p), "--out", str(tmp_path / "o"), "--no-track"]
    env = {"SYNTHCV_TRACKING": "0", "COLUMNS": "300"}
    first = CliRunner().invoke(app, argv, env=env)
    assert first.exit_code == 0, first.output
    assert "resumed" not in first.output
    again = CliRunner().invoke(app, argv, env=env)
    assert again.exit_code == 0, again.output
    assert "resumed from checkpoints: s0, s1" in again.output
    table = first.output.split("| metric")[1]
    assert again.output.split("| metric")[1] == table  # the same figures, no training
    fresh = CliRunner().invoke(app, [*argv, "--no-resume"], env=env)
    assert fresh.exit_code == 0 and "resumed" not in fresh.output
    (tmp_path / "o" / "checkpoints" / "s1.pt").write_bytes(b"truncated")
    broken = CliRunner().invoke(app, argv, env=env)
    assert broken.exit_code == 2 and "Traceback" not in broken.output
    assert "s1.pt: not a readable stage checkpoint" in broken.output


def test_a_checkpoints_folder_that_is_not_ours_is_refused_and_left_alone(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, recipe="train", finetune=None, reference=None)
    theirs = tmp_path / "run" / "checkpoints" / "epoch_10.pt"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone else's")
    with pytest.raises(ValueError, match=r"checkpoints: exists but holds no synthcv experiment"):
        run_experiment(cfg, out=tmp_path / "run", tracking=False, progress=False)
    assert theirs.read_bytes() == b"someone else's"


def test_a_finished_stage_restores_its_weights_and_history_numpy_figures_included(
    tmp_path: Path,
) -> None:
    import numpy as np

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    ckpt = loop.Checkpoint(tmp_path / "s0.pt", "f" * 64)
    sched = loop.Schedule(epochs=2, steps=3, batch_size=2, lr=0.05, weight_decay=0.0)

    def step(batch):
        x = torch.tensor([[float(i), 1.0] for _, i in batch])
        return (model(x) - 1).pow(2).mean(), {"loss": 0.0}, len(batch)

    def evaluate():
        return {"fit": np.float64(model.weight.detach().sum())}  # as COCOeval hands them over

    first = loop.run_epochs(model, [5], [1.0], sched, 0, step, evaluate, checkpoint=ckpt)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = torch.nn.Linear(2, 1)
    seen = []
    again = loop.run_epochs(
        fresh, [5], [1.0], sched, 0, step, evaluate, lambda e, m: seen.append(e), checkpoint=ckpt
    )
    assert again == first and seen == [0, 1, 2]
    assert _same_weights(fresh.state_dict(), trained)
