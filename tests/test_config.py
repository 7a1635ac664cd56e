"""One config style: the shared error formatter, TrainConfig's constraints and round trip, the
`genmodel train` options derived from TrainConfig, and the experiment config's errors and
command-line overrides. Nothing here needs torch."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from typer.testing import CliRunner

from synthcv.genmodels.config import PRECISIONS, SCHEDULES, TrainConfig, load_run_config
from synthcv.validation import ConfigError, FieldProblem, format_validation_error


def _words(text: str) -> str:
    return " ".join(text.replace("│", " ").split())  # rich wraps (and boxes) the error


# ---- the shared formatter ---------------------------------------------------------------------


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(1, ge=1)


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: _Inner = _Inner()
    items: list[_Inner] = []
    names: list[str] = []

    @model_validator(mode="after")
    def _check(self) -> _Outer:
        if "bad" in self.names:
            raise FieldProblem("names", "'bad' is not allowed")
        return self


def test_formatter_names_paths_and_hints_from_any_root():
    with pytest.raises(ValidationError) as err:
        _Outer.model_validate({"inner": {"widht": 2}, "items": [{"width": 0}], "extra": 1})
    lines = format_validation_error(err.value, _Outer)
    assert "inner.widht: unknown key 'widht', expected one of width; did you mean 'width'?" in lines
    assert "items[0].width: got 0, expected greater than or equal to 1" in lines
    assert any(
        line.startswith("extra: unknown key 'extra', expected one of inner") for line in lines
    )
    with pytest.raises(ValidationError) as err:
        _Outer.model_validate({"names": ["bad"]})
    assert format_validation_error(err.value, _Outer) == ["names: 'bad' is not allowed"]


def test_config_error_message_and_pickling():
    import pickle

    from synthcv.spec import SpecError

    exc = ConfigError(["a: got 1, expected 2"], "x.yaml")
    assert str(exc) == "x.yaml: 1 problem(s)\n  - a: got 1, expected 2"
    assert isinstance(exc, ValueError)
    spec_exc = SpecError(["count: got 0, expected 1"])
    assert isinstance(spec_exc, ConfigError) and spec_exc.source == "spec"
    back = pickle.loads(pickle.dumps(spec_exc))
    assert type(back) is SpecError and back.problems == spec_exc.problems


# ---- TrainConfig ------------------------------------------------------------------------------

BAD_VALUES = [
    ("epochs", 0, "greater than or equal to 1"),
    ("batch_size", 0, "greater than or equal to 1"),
    ("micro_batch", 0, "greater than or equal to 1"),
    ("lr", 0.0, "greater than 0"),
    ("lr", -1e-3, "greater than 0"),
    ("lr_decay", 1.5, "less than or equal to 1"),
    ("lr_decay", -0.1, "greater than or equal to 0"),
    ("lr_schedule", "step", "'exp' or 'cosine'"),
    ("warmup_steps", -1, "greater than or equal to 0"),
    ("ema", 1.0, "less than 1"),
    ("ema", -0.5, "greater than or equal to 0"),
    ("augment_shift", -1, "greater than or equal to 0"),
    ("seed", -1, "greater than or equal to 0"),
    ("crop", 0, "greater than or equal to 1"),
    ("limit", 0, "greater than or equal to 1"),
    ("test_limit", 0, "greater than or equal to 1"),
    ("minutes", 0, "greater than 0"),
    ("minutes", float("inf"), "a finite number"),
    ("eval_every", 0, "greater than or equal to 1"),
    ("precision", "fp8", "'fp32', 'bf16' or 'auto'"),
    ("epochs", "ten", "a valid integer"),
]


@pytest.mark.parametrize(("field", "value", "expected"), BAD_VALUES)
def test_train_config_rejects_a_bad_value_naming_the_field(field, value, expected):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    assert len(err.value.problems) == 1
    line = err.value.problems[0]
    assert line.startswith(f"{field}: got ") and f"expected {expected}" in line, line


def test_train_config_rejects_unknown_keys_with_a_hint_and_is_immutable():
    with pytest.raises(ConfigError, match=r"epochz: unknown key 'epochz'.*did you mean 'epochs'"):
        TrainConfig(epochz=3)
    cfg = TrainConfig()
    with pytest.raises(ValidationError):
        cfg.epochs = 3  # type: ignore[misc]
    assert cfg.replace(epochs=3).epochs == 3 and cfg.epochs == 10
    with pytest.raises(ConfigError, match="epochs: got 0"):
        cfg.replace(epochs=0)
    assert tuple(TrainConfig.model_fields["lr_schedule"].annotation.__args__) == SCHEDULES
    assert tuple(TrainConfig.model_fields["precision"].annotation.__args__) == PRECISIONS


def test_train_config_round_trips_through_run_json(tmp_path: Path):
    cfg = TrainConfig(
        model="made",
        data="x.npz",
        micro_batch=8,
        lr=3e-4,
        lr_schedule="cosine",
        ema=0.999,
        minutes=1.5,
        limit=64,
        precision="bf16",
        compile=True,
        hparams={"hidden": [16, 8], "dilations": [1, 2], "head": "logistic"},
        mnist_path="d/m.npz",
    )
    run = tmp_path / "run"
    run.mkdir()
    # what train() writes: run.json holds the config as JSON values
    (run / "run.json").write_text(json.dumps({"config": cfg.to_json(), "levels": 256}))
    assert load_run_config(run) == cfg
    assert TrainConfig.from_json(json.loads(json.dumps(TrainConfig().to_json()))) == TrainConfig()
    bad = cfg.to_json() | {"limit": 0}
    (run / "run.json").write_text(json.dumps({"config": bad}))
    with pytest.raises(ConfigError) as err:
        load_run_config(run)
    assert err.value.source == str(run / "run.json")
    assert err.value.problems == ["limit: got 0, expected greater than or equal to 1"]


# ---- genmodel train: options derived from TrainConfig ----------------------------------------


def _train_command():
    from synthcv.cli import genmodel

    return typer.main.get_command(genmodel.app).commands["train"]


def test_genmodel_train_has_one_flag_per_train_config_field_with_its_default():
    from synthcv.cli import genmodel
    from synthcv.cli.genmodel import train_flag

    options = {p.name: p for p in _train_command().params}
    cli_only = {"out", "param", "resume", "threads", "track"}
    assert set(options) == (set(TrainConfig.model_fields) - {"hparams"}) | cli_only
    assert train_flag("hparams") == "--param" and options["param"].multiple
    for name, info in TrainConfig.model_fields.items():
        if name == "hparams":
            continue
        opt = options[name]
        assert train_flag(name) in opt.opts, (name, opt.opts)
        default = opt.default.value if isinstance(opt.default, enum.Enum) else opt.default
        assert default == info.default, name
        assert info.description and info.description in opt.help, name
        if isinstance(info.default, bool):
            assert f"--no-{name.replace('_', '-')}" in opt.secondary_opts
    # choices are the Literal's values
    assert isinstance(options["lr_schedule"].default, genmodel.LrSchedule)
    assert tuple(e.value for e in genmodel.LrSchedule) == SCHEDULES
    assert tuple(e.value for e in genmodel.Precision) == PRECISIONS


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--limit", "0", "got 0, expected greater than or equal to 1"),
        ("--lr", "0", "got 0.0, expected greater than 0"),
        ("--ema", "1", "got 1.0, expected less than 1"),
        ("--minutes", "-5", "got -5.0, expected greater than 0"),
        ("--micro-batch", "0", "got 0, expected greater than or equal to 1"),
    ],
)
def test_genmodel_train_rejects_a_bad_value_as_a_usage_error(tmp_path, flag, value, expected):
    from synthcv.cli.genmodel import app

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--out", str(out), flag, value])
    words = _words(res.output)
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{flag}': {expected}" in words
    assert "Traceback" not in res.output
    assert not out.exists()


def test_genmodel_train_reports_every_bad_value_at_once(tmp_path):
    from synthcv.cli.genmodel import app

    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "r"), "--limit", "0",
                                   "--eval-every", "0"])  # fmt: skip
    words = _words(res.output)
    assert res.exit_code == 2
    assert "Invalid value for '--limit' / '--eval-every'" in words
    assert "--eval-every: got 0" in words and "--limit: got 0" in words


def test_train_config_model_names_are_the_registry():
    from synthcv.genmodels.config import MODEL_NAMES
    from synthcv.genmodels.registry import MODELS

    assert tuple(MODELS) == MODEL_NAMES  # --model is a choice of exactly the buildable models
    with pytest.raises(ConfigError, match="model: got 'pixelrnn'"):
        TrainConfig(model="pixelrnn")


def test_genmodel_train_help_needs_no_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from synthcv.cli import _register, app\n"
        "_register()\n"
        "res = CliRunner().invoke(app, ['genmodel', 'train', '--help'])\n"
        "words = ' '.join(res.output.replace('│', ' ').split())\n"
        "print(res.exit_code, 'torch' in sys.modules, 'training images. [>=1]' in words)\n"
    )
    env = {**os.environ, "COLUMNS": "200"}  # one line per option: the range stays in one piece
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["0", "False", "True"], out.stdout + out.stderr


# ---- experiment config ------------------------------------------------------------------------


def _experiment(tmp_path: Path) -> dict:
    return {
        "name": "quick",
        "seeds": [0],
        "data": {"a": {"kind": "samples", "path": str(tmp_path / "a.npz")}},
        "train": {"sources": {"a": 1.0}, "epochs": 1},
        "eval": ["a"],
    }


def test_experiment_config_errors_use_the_shared_style(tmp_path: Path):
    from synthcv.tasks.experiment import load_config

    cfg = _experiment(tmp_path)
    cfg["trian"] = cfg.pop("train")
    cfg["model"] = {"width": 0}
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    problems = err.value.problems
    assert "train: missing, expected a value" in problems
    assert any("trian: unknown key 'trian'" in p and "did you mean 'train'" in p for p in problems)
    assert "model.width: got 0, expected greater than or equal to 1" in problems
    cfg = _experiment(tmp_path) | {"reference": "b"}
    with pytest.raises(ConfigError, match=r"reference: got 'b', expected one of eval \['a'\]"):
        load_config(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(path)
    assert err.value.source == str(path)


def test_experiment_overrides_are_validated(tmp_path: Path):
    from synthcv.tasks.experiment import load_config, with_overrides

    cfg = load_config(_experiment(tmp_path) | {"finetune": {"sources": {"a": 1}, "epochs": 4}})
    quick = with_overrides(cfg, seeds=[3, 4], epochs=0)
    assert quick.seeds == [3, 4] and quick.train.epochs == 0 and quick.finetune.epochs == 0
    assert cfg.train.epochs == 1  # the original is untouched
    with pytest.raises(ConfigError, match=r"train\.epochs: got -1, expected greater than or equal"):
        with_overrides(cfg, epochs=-1)
    with pytest.raises(ConfigError, match="seeds: got"):
        with_overrides(cfg, seeds=[])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--epochs", "-1"], "Invalid value for '--epochs': train.epochs: got -1, expected"),
        (["--seeds", "0,x"], "Invalid value for '--seeds': got '0,x', expected integers"),
    ],
)
def test_experiment_run_rejects_bad_overrides_before_running(tmp_path, monkeypatch, args, expected):
    import yaml

    from synthcv.cli import experiment

    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(_experiment(tmp_path)))  # a.npz need not exist: nothing loads
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o"
    app = typer.Typer()
    app.add_typer(experiment.app, name="experiment")
    res = CliRunner().invoke(app, ["experiment", "run", str(p), "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    assert expected in _words(res.output)
    assert not out.exists() and not (tmp_path / "mlflow.db").exists()
