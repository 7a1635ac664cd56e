"""synthcv loop: the feature → spec mapping, the probes' inversion, the gate, the registry alias
and idempotency."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from real_digits import needs_mnist
from synthcv.loop import load_mapping
from synthcv.loop.config import LoopConfig
from synthcv.loop.cycle import gate, plan_targeted
from synthcv.loop.mapping import estimate_region, excess_interval, invert_curve, nested
from synthcv.monitor.drift import detect_drift
from synthcv.monitor.sources import MonitorSet
from synthcv.realdata import load_mnist8000
from synthcv.validation import ConfigError

SPEC = str(Path(__file__).resolve().parents[1] / "examples" / "digits_mnist.yaml")


class Oracle(nn.Module):
    """Knows the label of every image it was shown and answers 0 for any other: a model whose
    accuracy on a set is exactly chosen by the test."""

    in_channels = 1

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        super().__init__()
        self.table = {_key(i): int(y) for i, y in zip(images, labels, strict=True)}
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = (x[:, 0] * 255).round().to(torch.uint8).numpy()
        labels = torch.tensor([self.table.get(_key(i), 0) for i in images])
        return nn.functional.one_hot(labels, 10).float() * 10


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def _cfg(tmp_path: Path, **kw) -> LoopConfig:
    raw = {
        "name": "test-loop",
        "out": str(tmp_path / "loop"),
        "champion": {"registry_name": "digits", "spec": SPEC, "bootstrap": None},
        "reference": "mnist:train-part",
        "monitor": {"n": 150, "permutations": 19},
        "targeted": {"count": 12, "probe_count": 8},
        "gate": {"broad": str(tmp_path / "broad.npz")},
        **kw,
    }
    return LoopConfig.model_validate(raw)


def test_the_default_mapping_loads_and_bad_ones_are_named(tmp_path):
    rules = load_mapping()
    assert rules["foreground_level"].paths == ["lights.ambient", "lights.sun.intensity"]
    assert rules["sharpness"].augment == "blur" and rules["class_mix"].classes
    bad = tmp_path / "m.yaml"
    bad.write_text(
        "sharpness: {augment: smear, param: sigma, probe: [0, 1, 2]}\n"
        "tint: {path: lights.ambient, probe: [0, 1, 2]}\n"
        "noise: {path: x, augment: noise, param: sigma, probe: [0, 1, 2]}\n"
        "contrast: {path: lights.ambient, probe: [1]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_mapping(bad)
    text = str(info.value)
    assert "sharpness.augment" in text and "tint: not a monitored feature" in text
    assert "noise: expected exactly one of" in text and "contrast.probe" in text
    detection = load_mapping(kind="detector")
    assert next(iter(detection)) == "object_size"  # probed first: size moves sharpness too
    assert detection["object_size"].paths == ["objects.defaults.scale"]
    assert "foreground_extent" not in detection and detection["class_mix"].classes


def test_the_example_loop_configs_validate_and_metrics_fit_the_kind(tmp_path):
    from synthcv.loop.config import load_loop_config
    from synthcv.loop.model_kinds import (
        Classification,
        distill_weight,
        epochs_for,
        freeze_bn_for,
        kind_of,
    )
    from synthcv.tasks.detector import DenseDetector

    root = Path(__file__).resolve().parents[1] / "examples" / "loop"
    assert load_loop_config(root / "digits.yaml").gate.metric is None
    scenes = load_loop_config(root / "digit_scenes.yaml")
    assert scenes.gate.metric == "AP50"
    det = DenseDetector(2, width=4, categories=["a", "b"], input_size=32)
    assert kind_of(det, scenes).metric == "AP50"
    with pytest.raises(ValueError, match="gated on accuracy"):
        kind_of(nn.Linear(2, 2), scenes)
    ap = scenes.model_copy(update={"gate": scenes.gate.model_copy(update={"metric": "AP"})})
    assert kind_of(det, ap).metric == "AP"
    acc = scenes.model_copy(update={"gate": scenes.gate.model_copy(update={"metric": "accuracy"})})
    with pytest.raises(ValueError, match="AP50 or AP"):
        kind_of(det, acc)
    # unset, distillation is the kind's default: on for a classifier, off for a detector
    assert distill_weight(scenes, kind_of(det, scenes)) == 0.0
    assert distill_weight(scenes, Classification()) == 1.0
    off = scenes.finetune.model_copy(update={"distill": 0.0})
    assert distill_weight(scenes.model_copy(update={"finetune": off}), Classification()) == 0.0
    # and so is the number of epochs: 4 for a classifier, 2 for a detector, unless set
    digits = load_loop_config(root / "digits.yaml")
    assert digits.finetune.epochs is None and epochs_for(digits, Classification()) == 4
    unset = scenes.model_copy(
        update={"finetune": scenes.finetune.model_copy(update={"epochs": None})}
    )
    assert epochs_for(unset, kind_of(det, unset)) == 2 and epochs_for(scenes, Classification()) == 2
    # and whether BatchNorm stays frozen: yes for a classifier, no for a detector, unless set
    assert digits.finetune.freeze_bn is None and freeze_bn_for(digits, Classification())
    assert not freeze_bn_for(scenes, kind_of(det, scenes))
    thawed = digits.finetune.model_copy(update={"freeze_bn": False})
    assert not freeze_bn_for(digits.model_copy(update={"finetune": thawed}), Classification())
    # what a detector cannot do is refused as soon as the champion is loaded
    for field, value, says in (
        ("recalibrate_bn", 20, "recalibrate_bn: for classifiers only"),
        ("distill", 1.0, "distillation is for classifiers"),
        ("replay_focus", 0.5, "replay_focus: for classifiers only"),
    ):
        tune = scenes.finetune.model_copy(update={field: value})
        with pytest.raises(ValueError, match=says):
            kind_of(det, scenes.model_copy(update={"finetune": tune}))
        assert (
            kind_of(
                nn.Linear(2, 2), scenes.model_copy(update={"finetune": tune, "gate": acc.gate})
            ).name
            == "classifier"
        )


def test_probe_curves_are_inverted_at_the_current_quantiles():
    up = invert_curve("f", "p", [0, 1, 2, 3], [0.0, 10.0, 20.0, 30.0], (5.0, 25.0))
    assert up.range == pytest.approx((0.5, 2.5)) and not up.note
    down = invert_curve("f", "p", [0, 1, 2, 3], [30.0, 20.0, 10.0, 0.0], (5.0, 25.0))
    assert down.range == pytest.approx((0.5, 2.5))
    clipped = invert_curve("f", "p", [0, 1, 2], [0.0, 1.0, 2.0], (1.0, 9.0))
    assert clipped.range == pytest.approx((1.0, 2.0)) and "beyond the probed" in clipped.note
    flat = invert_curve("f", "p", [0, 1, 2, 3], [1.0, 3.0, 0.0, 2.0], (1.0, 2.0))
    assert flat.range is None and "rule skipped" in flat.note
    assert nested(["a.b", "a.c"], 1) == {"a": {"b": 1, "c": 1}}


def test_the_spread_one_probe_value_shows_is_not_asked_of_the_factor():
    # a batch as spread as the renders at one factor value is that value, not a range
    (lo, hi), spread = excess_interval((15.0, 25.0), 20.0, [0, 10, 20, 30], [5] * 4, [5] * 4)
    assert (lo, hi) == pytest.approx((20.0, 20.0)) and spread == pytest.approx((5.0, 5.0))
    # renders with no spread of their own leave the batch's interval as it is
    assert excess_interval((12.0, 31.0), 20.0, [0, 10, 20], [0] * 3, [0] * 3)[0] == (12.0, 31.0)
    # each side separately: 10 = sqrt(8^2 + 6^2) below, 5 above as wide as the renders'
    (lo, hi), _ = excess_interval((10.0, 25.0), 20.0, [0, 40], [6, 6], [5, 5])
    assert (lo, hi) == pytest.approx((12.0, 20.0))


def test_regions_are_uniform_ranges_over_the_excess_spread():
    probe, medians = [0, 1, 2, 3, 4], [0.0, 10.0, 20.0, 30.0, 40.0]
    r = estimate_region("f", "p", probe, medians, [5] * 5, [5] * 5, (10.0, 30.0), 20.0, 0.05)
    # excess half-width sqrt(10^2 - 5^2) on each side -> factor 2 -+ 0.866, whose uniform
    # range puts 5 % of its draws beyond each end
    width = 2 * np.sqrt(75) / 10 / 0.9
    assert r.range == pytest.approx((2 - width / 2, 2 + width / 2))
    assert r.method == "excess" and r.to_dict()["excess_interval"] == pytest.approx(
        [20 - np.sqrt(75), 20 + np.sqrt(75)]
    )
    # no excess: one probe spacing around the batch's factor value, never a bare point
    point = estimate_region("f", "p", probe, medians, [5] * 5, [5] * 5, (15.0, 25.0), 20.0, 0.05)
    assert point.range == pytest.approx((1.5, 2.5))
    # a batch beyond every probe stays at the last probe, and says so
    beyond = estimate_region("f", "p", probe, medians, [5] * 5, [5] * 5, (50.0, 70.0), 60.0, 0.05)
    assert beyond.range == (4.0, 4.0) and "beyond the probed" in beyond.note
    # the whole spread ("span") asks for more of the factor
    span = invert_curve("f", "p", probe, medians, (10.0, 30.0))
    assert span.range[1] - span.range[0] > r.range[1] - r.range[0]


@needs_mnist
@pytest.mark.parametrize("spread", ["span", "excess"])
def test_a_darker_batch_changes_only_light_factors(tmp_path, spread):
    x, y = load_mnist8000("train")
    ref = MonitorSet("ref", x[:300], y[:300])
    cur = MonitorSet("cur", (x[300:600] * 0.5).astype(np.uint8), y[300:600])
    report = detect_drift(
        ref.images, cur.images, reference_labels=ref.labels, current_labels=cur.labels
    )
    assert "foreground_level" in {f.feature for f in report.drifted_features}
    overlay, augment, regions = plan_targeted(
        report,
        _cfg(tmp_path, targeted={"count": 12, "probe_count": 8, "spread": spread}),
        cur,
        None,
        tmp_path / "work",
        lambda s: None,
        seed=3,
    )
    changed = {k for k in overlay if k not in ("extends", "seed")}
    assert changed == {"lights"} and augment == []
    assert set(overlay["lights"]) == {"ambient", "sun"} and set(overlay["lights"]["sun"]) == {
        "intensity"
    }
    lo, hi = overlay["lights"]["ambient"]["uniform"]
    assert 0.05 <= lo <= hi < 0.6  # darker than the champion's spec (ambient 0.8-1.0)
    light = next(r for r in regions if r["feature"] == "foreground_level")
    assert light["range"] == pytest.approx([lo, hi]) and light["method"] == spread


def test_the_gate_weighs_the_drifted_gain_against_the_broad_loss(tmp_path):
    rng = np.random.default_rng(0)
    broad_x = rng.integers(0, 255, (40, 8, 8)).astype(np.uint8)
    broad_y = rng.integers(1, 10, 40)
    batch_x = rng.integers(0, 255, (30, 8, 8)).astype(np.uint8)
    batch_y = rng.integers(1, 10, 30)
    broad, batch = MonitorSet("b", broad_x, broad_y), MonitorSet("c", batch_x, batch_y)
    cfg = _cfg(tmp_path)
    champion = Oracle(broad_x, broad_y)
    better = Oracle(np.concatenate([broad_x, batch_x]), np.concatenate([broad_y, batch_y]))
    v = gate(cfg, champion, better, batch, broad)
    assert v["passed"] and v["drifted_accuracy"]["candidate"] == 1.0
    forgets = Oracle(
        np.concatenate([broad_x[:20], batch_x]), np.concatenate([broad_y[:20], batch_y])
    )
    v = gate(cfg, champion, forgets, batch, broad)
    assert not v["passed"] and "broad set" in v["reasons"][0]
    v = gate(cfg, champion, champion, batch, broad)
    assert not v["passed"] and "no gain" in v["reasons"][0]
    # no labels on the batch: the estimate decides, and says so
    v = gate(cfg, champion, better, MonitorSet("c", batch_x), broad)
    assert "estimated" in v["drifted_accuracy"]["how"]


@needs_mnist
def test_the_loop_gates_promotes_and_never_redoes_a_batch(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from synthcv.loop import run_loop
    from synthcv.loop.model_kinds import Classification
    from synthcv.tasks.classifier_io import save_classifier
    from synthcv.tasks.model import SmallCNN

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SYNTHCV_TRACKING", "1")
    vx, vy = load_mnist8000("train")
    vx, vy = vx[-60:], vy[-60:]
    np.savez(tmp_path / "broad.npz", images=vx, labels=vy)
    tx, ty = load_mnist8000("test")
    dark1, dark2 = (tx[:60] * 0.45).astype(np.uint8), (tx[60:120] * 0.45).astype(np.uint8)
    np.savez(tmp_path / "b1.npz", images=dark1, labels=ty[:60])
    np.savez(tmp_path / "b2.npz", images=dark2, labels=ty[60:120])
    torch.manual_seed(0)
    save_classifier(SmallCNN(10, 1, width=4), tmp_path / "boot.pt")
    cfg = _cfg(
        tmp_path,
        champion={"registry_name": "digits", "spec": SPEC, "bootstrap": str(tmp_path / "boot.pt")},
    )
    champion = Oracle(vx, vy)
    # the bootstrap file is only read when the registry is empty: register the oracle first
    monkeypatch.setattr(
        "synthcv.tasks.classifier_io.load_classifier", lambda ref: (champion, "oracle")
    )
    forgets = Oracle(dark1, ty[:60])  # right on the batch, wrong on the broad set
    monkeypatch.setattr(
        Classification, "finetune", lambda self, cfg, champ, targeted, checkpoint=None: forgets
    )
    lines: list[str] = []
    first = run_loop(cfg.model_copy(update={"current": str(tmp_path / "b1.npz")}), lines.append)
    assert first["outcome"] == "refused" and "broad set" in first["summary"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # no global URI left behind

    def runs() -> int:
        return len(client.search_runs([e.experiment_id for e in client.search_experiments()]))

    assert str(client.get_model_version_by_alias("digits", "champion").version) == "1"
    # the candidate's run records the fine-tune as it ran: a classifier distils by default
    (cand_run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.mlflow.runName LIKE 'candidate %'",
    )
    params = cand_run.data.params
    assert cfg.finetune.distill is None and params["finetune.distill"] == "1.0"
    assert cfg.finetune.epochs is None and params["finetune.epochs"] == "4"
    assert cfg.finetune.freeze_bn is None and params["finetune.freeze_bn"] == "True"
    v2 = client.get_model_version("digits", "2")
    assert v2.tags["synthcv.gate"] == "refused" and v2.tags["synthcv.parent_version"] == "1"
    work = Path(cfg.out) / "batches" / first["key"]
    overlay = yaml.safe_load((work / "overlay.yaml").read_text())
    assert overlay["extends"] == SPEC and "lights" in overlay
    runs_before = runs()
    assert runs_before >= 4  # loop, monitor, targeted, candidate
    again = run_loop(cfg.model_copy(update={"current": str(tmp_path / "b1.npz")}), lines.append)
    assert again["already_done"] and again["key"] == first["key"]
    assert runs() == runs_before
    assert len(client.search_model_versions("name = 'digits'")) == 2
    assert "already processed" in lines[-1]
    # a candidate that gains on the batch and keeps the broad set is promoted
    better = Oracle(np.concatenate([vx, dark2]), np.concatenate([vy, ty[60:120]]))
    monkeypatch.setattr(
        Classification, "finetune", lambda self, cfg, champ, targeted, checkpoint=None: better
    )
    second = run_loop(cfg.model_copy(update={"current": str(tmp_path / "b2.npz")}), lines.append)
    assert second["outcome"] == "promoted" and second["candidate_version"] == "3"
    assert str(client.get_model_version_by_alias("digits", "champion").version) == "3"
    decision = json.loads((Path(cfg.out) / "batches" / second["key"] / "decision.json").read_text())
    assert decision["gate"]["broad_accuracy"]["candidate"] == 1.0
    # interrupted after the promotion, before decision.json: the re-run sees it, adds nothing
    (Path(cfg.out) / "batches" / second["key"] / "decision.json").unlink()
    resumed = run_loop(cfg.model_copy(update={"current": str(tmp_path / "b2.npz")}), lines.append)
    assert resumed["outcome"] == "promoted" and resumed["candidate_version"] == "3"
    assert len(client.search_model_versions("name = 'digits'")) == 3


def test_cli_rejects_bad_configs_and_untracked_runs(tmp_path):
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    run = CliRunner(env={"COLUMNS": "300", "SYNTHCV_TRACKING": "0"}).invoke
    bad = tmp_path / "loop.yaml"
    bad.write_text(
        f"out: o\nchampion: {{registry_name: d, spec: {SPEC}}}\nreference: x.npz\n"
        "gate: {broad: b.npz, tolerance: -1}\nfinetune: {lr: 0.1, epoch: 3}\n"
    )
    res = run(app, ["loop", str(bad)])
    assert res.exit_code == 2
    assert "gate.tolerance" in res.output and "finetune.epoch" in res.output
    good = tmp_path / "ok.yaml"
    good.write_text(
        f"out: o\nchampion: {{registry_name: d, spec: {SPEC}}}\nreference: x.npz\n"
        "gate: {broad: b.npz}\n"
    )
    res = run(app, ["loop", str(good), "--current", "c.npz"])
    assert res.exit_code == 2 and "tracking must be on" in res.output
    twice = tmp_path / "twice.yaml"
    twice.write_text(good.read_text() + "out: p\n")
    res = run(app, ["loop", str(twice)])
    assert res.exit_code == 2 and "out: got this key twice in one mapping (lines 1 and 5)" in (
        res.output
    )
    res = run(app, ["loop", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2 and "none.yaml" in res.output


DIGIT_SCENES = Path(__file__).resolve().parents[1] / "examples" / "digit_scenes.yaml"


def test_a_detector_champion_goes_round_the_loop(tmp_path, monkeypatch):
    """A detector trained on small digits meets a batch of larger ones: the loop names
    object_size, maps it to objects.defaults.scale above the champion's range, renders, fine-
    tunes with replay, gates on box AP50, registers the candidate, and never redoes the batch."""
    from mlflow import MlflowClient

    from synthcv.loop import run_loop
    from synthcv.loop.model_kinds import Detection
    from synthcv.pipeline.runner import generate
    from synthcv.tasks.coco_data import load_synthcv
    from synthcv.tasks.detector import DenseDetector
    from synthcv.tasks.detector_io import save_checkpoint
    from synthcv.tasks.detector_train import DetFitConfig, fit

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SYNTHCV_TRACKING", "1")
    spec = tmp_path / "small.yaml"
    spec.write_text(
        f"extends: {DIGIT_SCENES}\n"
        "image: {width: 64, height: 64, channels: 1, supersample: 1}\n"
        "objects: {count: {randint: [1, 3]}}\n"
    )
    base = yaml.safe_load(spec.read_text())
    for name, count, seed, over in (
        ("ref", 48, 1, {}),
        ("broad", 24, 2, {}),
        ("big", 24, 3, {"objects": {"defaults": {"scale": {"uniform": [1.7, 2.0]}}}}),
    ):
        data = {**base, "seed": seed}
        if over:
            data["objects"] = {**data["objects"], **over["objects"]}
        generate(data, tmp_path / name, count=count, progress=False)
    ref = load_synthcv(tmp_path / "ref")
    torch.manual_seed(0)
    det = DenseDetector(10, width=8, in_channels=1, categories=[str(i) for i in range(10)],
                        input_size=64)  # fmt: skip
    fit(det, [ref], None, DetFitConfig(epochs=1, batch_size=8, steps_per_epoch=6), seed=0)
    save_checkpoint(det.eval(), tmp_path / "boot.pt")
    cfg = LoopConfig.model_validate(
        {
            "name": "det-loop",
            "out": str(tmp_path / "loop"),
            "champion": {"registry_name": "scenes", "spec": str(spec), "bootstrap": "boot.pt"},
            "reference": "ref",
            "monitor": {"n": None, "permutations": 19},
            "targeted": {"count": 16, "probe_count": 8},
            "finetune": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4},
            "gate": {"broad": "broad", "tolerance": 100},  # the loop, not the 8-step model
            "current": "big",
        }
    )
    lines: list[str] = []
    # cut the first pass after the fine-tune's first step: the re-run resumes there
    from synthcv.loop import cycle
    from synthcv.tasks import loop as train_loop

    class Cut(Exception):
        pass

    saves: list[int] = []
    real_save = train_loop._save

    def save_then_cut(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(1)
        if len(saves) <= 2:
            raise Cut

    monkeypatch.setattr(train_loop, "_save", save_then_cut)
    monkeypatch.setattr(cycle, "FINETUNE_CHECKPOINT_INTERVAL_S", 0.0)
    with pytest.raises(Cut):
        run_loop(cfg, lines.append)
    (work,) = (Path(cfg.out) / "batches").iterdir()
    state = work / cycle.FINETUNE_CHECKPOINT
    assert state.is_file() and not (work / "candidate.pt").exists()
    state.write_bytes(b"damaged")  # not this pass's: the fine-tune starts over, cut again
    with pytest.raises(Cut):
        run_loop(cfg, lines.append)
    assert "does not match this pass; fine-tuning from the start" in lines[-1]
    first = run_loop(cfg, lines.append)
    assert len(saves) == 3  # resumed: only the second step ran, saved at the epoch end
    assert (work / "candidate.pt").is_file() and not state.exists()
    assert "object_size" in first["drifted_features"]
    size = next(r for r in first["regions"] if r["feature"] == "object_size")
    assert size["target"] == "objects.defaults.scale" and size["range"][0] > 1.35  # above
    overlay = yaml.safe_load(
        (Path(cfg.out) / "batches" / first["key"] / "overlay.yaml").read_text()
    )
    lo, hi = overlay["objects"]["defaults"]["scale"]["uniform"]
    assert (lo, hi) == pytest.approx(size["range"], abs=1e-6)
    verdict = first["gate"]
    assert verdict["metric"] == "AP50" and "labelled objects" in verdict["drifted_accuracy"]["how"]
    for part in ("drifted_accuracy", "broad_accuracy"):
        assert 0.0 <= verdict[part]["champion"] <= 1.0 and 0.0 <= verdict[part]["candidate"] <= 1
    assert first["outcome"] in ("promoted", "refused") and first["candidate_version"] == "2"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    v2 = client.get_model_version("scenes", "2")
    assert v2.tags["synthcv.parent_version"] == "1"
    alias = str(client.get_model_version_by_alias("scenes", "champion").version)
    assert alias == ("2" if first["outcome"] == "promoted" else "1")
    again = run_loop(cfg, lines.append)
    assert again["already_done"] and len(client.search_model_versions("name = 'scenes'")) == 2
    # a candidate that is the champion gains nothing: refused, whatever its AP
    from synthcv.loop.cycle import gate
    from synthcv.monitor.sources import load_monitor_source

    same = gate(cfg, det, det, load_monitor_source("big"), load_monitor_source("broad"))
    assert not same["passed"] and "no gain" in same["reasons"][0]
    bare = MonitorSet("bare.npz", np.zeros((2, 8, 8), np.uint8))
    assert "no labelled objects" in Detection().cannot_gate(bare)


def test_a_detector_batch_heavy_in_one_class_reweights_the_spec_classes(tmp_path):
    """The labelled objects' class mix drifts (mostly 3s): the overlay's class weights follow
    the batch's shares by class name, add-one smoothed, and nothing is probed."""
    from synthcv.loop.model_kinds import Detection

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (60, 16, 16), dtype=np.uint8)
    ref_cls = np.array([str(i % 10) for i in range(300)])
    cur_cls = np.array(["3"] * 240 + [str(i % 10) for i in range(60)])
    report = detect_drift(
        images,
        images,
        reference_object_classes=ref_cls,
        current_object_classes=cur_cls,
    )
    assert {f.feature for f in report.drifted_features} == {"object_class_mix"}
    cfg = _cfg(tmp_path, champion={"registry_name": "s", "spec": str(DIGIT_SCENES)})
    current = MonitorSet("cur", images, object_classes=cur_cls)
    overlay, augment, regions = plan_targeted(
        report, cfg, current, None, tmp_path / "w", lambda s: None, seed=1, kind=Detection()
    )
    weights = {k: v["weight"] for k, v in overlay["objects"]["classes"].items()}
    assert weights["3"] == pytest.approx((246 + 1) / (300 + 10), abs=1e-6)
    assert weights["0"] == pytest.approx((6 + 1) / 310, abs=1e-6) and augment == []
    assert regions[0]["note"] == "from the current batch's labelled objects"
    assert not (tmp_path / "w" / "probes").exists()


@needs_mnist
def test_batchnorm_recalibration_sets_the_statistics_of_the_mix_and_nothing_else(tmp_path):
    """After blending, every BatchNorm layer's running mean is re-measured on the fine-tune's
    own mix: for the first layer, exactly the mean of the first convolution's output over the
    drawn images; weights are untouched; the digest keeps old keys at the default 0."""
    from synthcv.loop.model_kinds import Classification
    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.model import SmallCNN
    from synthcv.tasks.train import recalibrate_batchnorm, to_tensor

    torch.manual_seed(0)
    model = SmallCNN(10, 1, width=4).eval()
    tx, ty = load_mnist8000("test")
    a, b = ArraySet(tx[:40], ty[:40], name="a"), ArraySet(tx[40:70], ty[40:70], name="b")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_batchnorm(model, [a, b], [0.75, 0.25], batch_size=8, batches=5, seed=3)
    rng = np.random.default_rng([3, 0xB4])
    drawn = []
    for _ in range(5):
        drawn += [a.images[rng.integers(0, len(a), size=6)], b.images[rng.integers(0, 30, size=2)]]
    with torch.no_grad():
        conv = model.features[0][0](to_tensor(np.concatenate(drawn), 1) - 0.5)
    bn = model.features[0][1]
    assert torch.allclose(bn.running_mean, conv.mean((0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1 and not bn.training  # restored
    after = model.state_dict()
    for k, v in before.items():
        if "running_" in k:
            assert not torch.equal(v, after[k]), k
        elif "num_batches" not in k:
            assert torch.equal(v, after[k]), k  # weights untouched
    cfg = _cfg(tmp_path, finetune={"recalibrate_bn": 20})
    assert cfg.digest() != _cfg(tmp_path).digest()
    # wired into the fine-tune: the blended candidate's statistics are re-measured
    tune = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "interpolate": 0.5}
    plain = Classification().finetune(_cfg(tmp_path, finetune=tune), model, a)
    fixed = Classification().finetune(
        _cfg(tmp_path, finetune={**tune, "recalibrate_bn": 3}), model, a
    )
    assert not fixed.training
    p, f = plain.state_dict(), fixed.state_dict()
    assert not torch.equal(p["features.0.1.running_mean"], f["features.0.1.running_mean"])
    assert torch.equal(p["features.0.0.weight"], f["features.0.0.weight"])


def test_wise_ft_moves_the_candidate_between_champion_and_fine_tune(tmp_path):
    from synthcv.loop.model_kinds import Classification, interpolate_weights
    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.model import SmallCNN

    torch.manual_seed(0)
    champion = SmallCNN(10, 1, width=4).eval()
    tx, ty = load_mnist8000("test")
    targeted = ArraySet(tx[:32], ty[:32], name="targeted")

    def tuned(share: float):
        cfg = _cfg(
            tmp_path,
            finetune={
                "epochs": 1,
                "steps_per_epoch": 3,
                "batch_size": 8,
                "interpolate": share,
                "freeze_bn": False,  # statistics that move, to be blended
            },
        )
        return Classification().finetune(cfg, champion, targeted)

    full, half = tuned(1.0), tuned(0.5)
    c, f, h = champion.state_dict(), full.state_dict(), half.state_dict()
    moved = [k for k in c if c[k].is_floating_point() and not torch.equal(c[k], f[k])]
    assert any("running_mean" in k for k in moved) and len(moved) > len(c) // 2
    for k in c:  # the same fine-tune (same seed), then halfway back to the champion
        if c[k].is_floating_point():
            assert torch.allclose(h[k], (c[k] + f[k]) / 2, atol=1e-6), k
        else:  # BatchNorm's step counters are the fine-tune's
            assert torch.equal(h[k], f[k]), k
    assert interpolate_weights(champion, full, 1.0) is full  # 1: untouched
    # the default keeps batch keys computed before the field existed; another share is new work
    # (BatchNorm frozen, a later default, keeps them when set off: what the code did then)
    default = _cfg(tmp_path, finetune={"freeze_bn": False})
    wise = _cfg(tmp_path, finetune={"interpolate": 0.5, "freeze_bn": False})
    dump = default.model_dump(exclude={"current", "out"})
    for key in ("interpolate", "recalibrate_bn", "freeze_bn", "replay_focus", "focus_quantile"):
        del dump["finetune"][key]
    old_digest = hashlib.sha256(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()
    assert default.digest() == old_digest and wise.digest() != old_digest


def test_frozen_batchnorm_keeps_the_champions_statistics_while_the_weights_learn(tmp_path):
    """finetune.freeze_bn: every BatchNorm layer normalises with, and keeps, the champion's
    running statistics (run_epochs puts BatchNorm back in inference mode each epoch, after
    model.train()); convolutions and BatchNorm's scale/shift still move. A new batch
    key; unset, a classifier freezes."""
    from synthcv.loop.model_kinds import Classification
    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.model import SmallCNN

    torch.manual_seed(0)
    champion = SmallCNN(10, 1, width=4).eval()
    tx, ty = load_mnist8000("test")
    targeted = ArraySet(1.0 - tx[:32], ty[:32], name="targeted")  # inverted: new statistics
    tune = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 8}

    def tuned(freeze: bool):
        cfg = _cfg(tmp_path, finetune={**tune, "freeze_bn": freeze})
        return Classification().finetune(cfg, champion, targeted).state_dict()

    c, frozen, free = champion.state_dict(), tuned(True), tuned(False)
    stats = [k for k in c if "running_" in k]
    assert stats
    for k in stats:
        assert torch.equal(frozen[k], c[k]), k
        assert not torch.equal(free[k], c[k]), k
    for k in ("features.0.0.weight", "features.0.1.weight", "features.0.1.bias"):
        assert not torch.equal(frozen[k], c[k]), k
    off = _cfg(tmp_path, finetune={"freeze_bn": False}).digest()
    assert _cfg(tmp_path, finetune={"freeze_bn": True}).digest() != off
    assert _cfg(tmp_path).digest() != off  # the new default is new work
    # unset, a classifier's fine-tune freezes: the same candidate as an explicit true
    unset = Classification().finetune(_cfg(tmp_path, finetune=tune), champion, targeted)
    assert all(torch.equal(unset.state_dict()[k], frozen[k]) for k in frozen)


class Margins(nn.Module):
    """Answers each known image with logits of a chosen margin over the runner-up: a model
    whose least certain images the test fixes."""

    in_channels = 1

    def __init__(self, images: np.ndarray, labels: np.ndarray, margins: np.ndarray) -> None:
        super().__init__()
        self.table = {}
        for i, y, m in zip(images, labels, margins, strict=True):
            logits = torch.zeros(10)
            logits[int(y)], logits[(int(y) + 1) % 10] = float(m), 0.5  # m < 0.5: wrong
            self.table[_key(i)] = logits
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = (x[:, 0] * 255).round().to(torch.uint8).numpy()
        return torch.stack([self.table[_key(i)] for i in images])


def test_a_focused_replay_draws_from_the_training_images_the_champion_is_least_sure_of(
    tmp_path, monkeypatch
):
    """finetune.replay_focus: that share of the replay comes from the ``focus_quantile`` of
    the champion's training images with the smallest margin p(true) − max p(other), and the
    champion distils on both replay sources, never on the targeted one."""
    import synthcv.tasks.train as train_module
    from synthcv.loop.model_kinds import Classification, Detection, least_certain
    from synthcv.tasks.data import ArraySet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 40)
    logit_gaps = rng.uniform(-2, 6, 40)
    model = Margins(images, labels, logit_gaps)
    data = ArraySet(images, labels, name="reference")
    picked = least_certain(model, data, 0.1)
    assert len(picked) == 4
    # brute force: the margin is monotone in the logit gap the model was given
    assert np.array_equal(picked.images, images[np.sort(np.argsort(logit_gaps)[:4])])

    seen = {}

    def spy(model, sources, ratios, cfg, seed, **kw):
        seen.update(names=[s.name for s in sources], ratios=ratios, cfg=cfg)
        seen["sizes"] = [len(s) for s in sources]
        return []

    monkeypatch.setattr(train_module, "fit", spy)
    monkeypatch.setattr(
        "synthcv.tasks.compare.load_compare_source", lambda *a, **k: data, raising=True
    )
    targeted = ArraySet(images[:16], labels[:16], name="targeted")
    focused = _cfg(tmp_path, finetune={"replay_focus": 0.5, "focus_quantile": 0.25})
    Classification().finetune(focused, model, targeted)
    assert seen["names"] == ["reference", "reference", "targeted"]
    assert seen["sizes"] == [40, 10, 16]
    assert np.allclose(seen["ratios"], [0.4, 0.4, 0.2])
    assert seen["cfg"].distill_sources == (0, 1)
    plain_steps = seen["cfg"].steps_per_epoch
    Classification().finetune(_cfg(tmp_path), model, targeted)
    assert seen["names"] == ["reference", "targeted"] and seen["cfg"].distill_sources == (0,)
    assert seen["cfg"].steps_per_epoch == plain_steps  # an epoch still shows each target once

    # the batch key: unset keeps the old one (quantile ignored), a focus is new work
    plain = _cfg(tmp_path).digest()
    assert _cfg(tmp_path, finetune={"focus_quantile": 0.3}).digest() == plain
    assert focused.digest() != plain
    with pytest.raises(ValueError, match="replay_focus"):
        _cfg(tmp_path, finetune={"replay": 0, "replay_focus": 0.5}, targeted={"count": 100})
    with pytest.raises(ValueError, match="replay_focus: for classifiers only"):
        Detection().finetune(focused, model, targeted)
