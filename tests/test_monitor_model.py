"""synthcv monitor with a model and with other inputs: prediction drift, calibration (ECE),
the label-free estimate, slices, folders of images, COCO sets, classifier files, MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from synthcv.monitor import detect_drift
from synthcv.monitor.model_checks import (
    Outputs,
    calibration,
    estimated_accuracy,
    fit_confidence_calibration,
    model_section,
    run_classifier,
)
from synthcv.monitor.run import monitor_sets
from synthcv.monitor.sources import load_monitor_source
from synthcv.tasks.classifier_io import load_classifier, save_classifier
from synthcv.tasks.model import SmallCNN


class BrightnessClassifier(nn.Module):
    """Class 1 when the image is bright, else 0: its predictions drift with exposure."""

    in_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.35 - m, m - 0.35], dim=1) * 40


def test_ece_of_a_constructed_over_confident_model():
    rng = np.random.default_rng(0)
    conf = np.full(2000, 0.99)
    correct = rng.random(2000) < 0.5  # says 99 %, right half the time
    cal = calibration(conf, correct)
    assert cal["ece"] == pytest.approx(0.99 - correct.mean(), abs=1e-12)
    assert sum(b["n"] for b in cal["bins"]) == 2000 and cal["bins"][-1]["n"] == 2000
    # a calibrated model: confidence c is right with probability c, so the ECE is small
    c = rng.uniform(0.1, 1.0, 20000)
    ok = rng.random(20000) < c
    assert calibration(c, ok)["ece"] < 0.02


def test_cbpe_estimate_tracks_accuracy_without_labels():
    rng = np.random.default_rng(1)
    ref_c = rng.uniform(0.3, 1.0, 5000)
    ref_ok = rng.random(5000) < ref_c**2  # over-confident: P(right | c) = c²
    cur_c = rng.uniform(0.3, 0.6, 3000)  # a harder batch: low confidence
    cur_ok = rng.random(3000) < cur_c**2
    est = estimated_accuracy(ref_c, ref_ok, cur_c)
    assert est == pytest.approx(cur_ok.mean(), abs=0.03)
    assert abs(est - cur_c.mean()) > 0.1  # raw confidence would overstate it


def test_tied_confidences_map_to_their_pooled_accuracy():
    """A saturated softmax ties many samples at one confidence: that confidence's estimate is
    their accuracy (3 right of 8 at 1.0), whatever order the ties came in."""
    conf = np.array([0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5])
    for ok in ([0, 1, 1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]):
        calibrated = fit_confidence_calibration(conf, np.array(ok, bool))
        assert calibrated(np.array([1.0]))[0] == pytest.approx(3 / 8)
        assert estimated_accuracy(conf, np.array(ok, bool), np.ones(5)) == pytest.approx(3 / 8)


def test_prediction_drift_and_model_section():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 120, (200, 12, 12)).astype(np.uint8)
    cur = np.clip(ref.astype(int) + 60, 0, 255).astype(np.uint8)
    model = BrightnessClassifier()
    r_out, c_out = run_classifier(model, ref), run_classifier(model, cur)
    assert r_out.probs.shape == (200, 2) and np.allclose(r_out.probs.sum(1), 1)
    report = detect_drift(ref, cur, reference_outputs=r_out, current_outputs=c_out)
    drifted = {f.feature for f in report.drifted_features}
    assert "predicted_class_mix" in drifted
    labels_ref = r_out.predicted.copy()  # the model is right on the reference...
    labels_cur = np.zeros(200, np.int64)  # ...and wrong on every brightened image
    section = model_section(r_out, c_out, labels_ref, labels_cur, {}, "bright")
    assert section["reference"]["acc"] == 1.0 and section["current"]["acc"] == pytest.approx(
        (c_out.predicted == 0).mean()
    )
    assert section["current_calibration"]["ece"] > 0.5
    assert 0 <= section["estimated_current_accuracy"] <= 1


def test_slices_name_the_worst_region():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (300, 8, 8)).astype(np.uint8)
    probs = np.tile([[0.9, 0.1]], (300, 1))
    labels = np.zeros(300, np.int64)
    light = np.arange(300) % 3
    labels[light == 2] = 1  # the model is wrong exactly when light == 2
    out = Outputs(probs)
    section = model_section(out, out, labels, labels, {"light": light}, "m")
    worst = section["slices"][0]
    assert worst["factor"] == "light" and worst["slice"] == "2" and worst["acc"] == 0
    del images


def test_classifier_files_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(10, 1, width=8).eval()
    x = torch.rand(4, 1, 28, 28)
    path = save_classifier(model, tmp_path / "clf.pt")
    loaded, describe = load_classifier(str(path))
    assert "checkpoint" in describe
    assert torch.allclose(loaded(x), model(x))
    torch.save(model.state_dict(), tmp_path / "state.pt")
    assert torch.allclose(load_classifier(str(tmp_path / "state.pt"))[0](x), model(x))
    (tmp_path / "run").mkdir()
    save_classifier(model, tmp_path / "run" / "model.pt")
    assert torch.allclose(load_classifier(str(tmp_path / "run"))[0](x), model(x))
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_classifier(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        load_classifier(str(tmp_path / "junk.pt"))
    torch.save({"kind": "synthcv-detector", "state": {}}, tmp_path / "det.pt")
    with pytest.raises(ValueError, match="expected a classifier"):
        load_classifier(str(tmp_path / "det.pt"))


def test_folder_of_images_with_class_folders_and_sizes(tmp_path):
    rng = np.random.default_rng(4)
    for cls in ("3", "7"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(4):
            size = (20, 24) if i % 2 else (16, 16)
            Image.fromarray(rng.integers(0, 255, size).astype(np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png"
            )
    Image.fromarray(rng.integers(0, 255, (10, 10, 3)).astype(np.uint8)).save(
        tmp_path / "imgs" / "loose.jpg"
    )
    s = load_monitor_source(str(tmp_path / "imgs"))
    assert len(s) == 9 and not s.same_size
    assert sorted(s.labels.tolist()) == [-1, 3, 3, 3, 3, 7, 7, 7, 7]
    report = detect_drift(s.images, s.images)
    assert report.n_current == 9 and not report.drifted
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_monitor_source(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"x\.png"):
        load_monitor_source(str(tmp_path / "bad"))


def _coco_set(n: int, size: float, seed: int):
    from synthcv.tasks.instances import Instances, InstanceSet

    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(n):
        img = np.zeros((64, 64, 3), np.uint8)
        boxes = []
        for _ in range(rng.integers(1, 4)):
            w = size * rng.uniform(0.8, 1.2)
            x, y = rng.uniform(0, 64 - w, 2)
            img[int(y) : int(y + w), int(x) : int(x + w)] = 200
            boxes.append([x, y, w, w])
        images.append(img)
        targets.append(Instances(np.array(boxes), rng.integers(0, 2, len(boxes))))
    return InstanceSet(images, targets, ["cat", "dog"], name="coco")


def test_coco_sets_give_object_features(tmp_path):
    from synthcv.tasks.coco_data import to_coco_files

    to_coco_files(_coco_set(60, 10, 0), tmp_path / "ref")
    to_coco_files(_coco_set(60, 10, 1), tmp_path / "same")
    to_coco_files(_coco_set(60, 22, 2), tmp_path / "big")
    ref = load_monitor_source(str(tmp_path / "ref"))
    assert ref.same_size and len(ref) == 60
    assert len(ref.objects["object_size"]) == len(ref.object_classes)
    assert set(ref.object_classes) <= {"cat", "dog"}
    same = load_monitor_source(str(tmp_path / "same" / "annotations.json"))
    big = load_monitor_source(str(tmp_path / "big"))
    assert "object_size" not in {f.feature for f in monitor_sets(ref, same).drifted_features}
    drifted = {f.feature for f in monitor_sets(ref, big).drifted_features}
    assert "object_size" in drifted
    report = monitor_sets(ref, big)
    assert any(f.feature == "object_class_mix" for f in report.features)


def test_npz_without_labels(tmp_path):
    np.savez(tmp_path / "batch.npz", images=np.zeros((5, 8, 8), np.uint8))
    s = load_monitor_source(str(tmp_path / "batch.npz"))
    assert s.labels is None and len(s) == 5
    np.savez(tmp_path / "bad.npz", pictures=np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="no 'images' array"):
        load_monitor_source(str(tmp_path / "bad.npz"))


def test_cli_with_a_model_writes_the_model_section_and_tracks(tmp_path, monkeypatch):
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 120, (150, 12, 12)).astype(np.uint8)
    np.savez(tmp_path / "ref.npz", images=ref, labels=np.zeros(150, np.int64))
    bright = np.clip(ref.astype(int) + 70, 0, 255).astype(np.uint8)
    np.savez(tmp_path / "cur.npz", images=bright, labels=np.zeros(150, np.int64))
    torch.manual_seed(0)
    save_classifier(SmallCNN(2, 1, width=4), tmp_path / "clf.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = CliRunner(env={"COLUMNS": "300", "SYNTHCV_TRACKING": "1"}).invoke
    args = ["monitor", "ref.npz", "cur.npz", "--model", "clf.pt", "--permutations", "19"]
    res = run(app, [*args, "-o", "rep"])
    assert res.exit_code == 3, res.output
    data = json.loads((tmp_path / "rep" / "drift.json").read_text())
    assert data["model"]["reference"]["n"] == 150 and "current_calibration" in data["model"]
    assert "embedding" in data["drifted_features"] or data["embedding"] is not None
    page = (tmp_path / "rep" / "drift.html").read_text()
    assert 'alt="reliability"' in page and "Model:" in page
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # no global URI left behind
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps)
    assert len(runs) == 1 and runs[0].data.tags["synthcv.kind"] == "monitor"
    assert runs[0].data.tags["synthcv.drifted"] == "true"
    assert runs[0].data.metrics["brightness.statistic"] > 0.5
    res = run(app, [*args[:3], "--model", "nothing.pt", "--no-track"])
    assert res.exit_code == 2 and "nothing.pt" in res.output


BLOB_DETECTOR = '''
import numpy as np
from scipy import ndimage


def predict(images):
    """Every bright blob is a "cat": a detector simple enough to reason about."""
    out = []
    for im in images:
        g = np.asarray(im)
        g = g[..., 0] if g.ndim == 3 else g
        lab, _ = ndimage.label(g > 100)
        out.append([
            {"bbox": [s[1].start, s[0].start, s[1].stop - s[1].start, s[0].stop - s[0].start],
             "score": 0.9, "category": "cat"}
            for s in ndimage.find_objects(lab)
        ])
    return out
'''


def test_a_detector_adds_prediction_drift_and_coco_ap(tmp_path, monkeypatch):
    from synthcv.cli import _register, app
    from synthcv.monitor.run import load_monitor_model
    from synthcv.tasks.coco_data import to_coco_files

    to_coco_files(_coco_set(60, 10, 0), tmp_path / "ref")
    to_coco_files(_coco_set(60, 22, 2), tmp_path / "big")
    (tmp_path / "blobs_monitor.py").write_text(BLOB_DETECTOR)
    monkeypatch.chdir(tmp_path)
    detector, describe = load_monitor_model("blobs_monitor:predict")
    assert "function" in describe
    ref, big = load_monitor_source("ref"), load_monitor_source("big")
    report = monitor_sets(ref, big, model=detector)
    drifted = {f.feature for f in report.drifted_features}
    assert "predicted_size" in drifted
    assert {f.feature for f in report.features} >= {"predicted_count", "predicted_score"}
    section = report.model
    assert section["kind"] == "detector" and 0 < section["reference"]["AP50"] <= 1
    assert section["reference"]["objects"] == sum(len(t) for t in ref.instances().targets)
    # every blob is a "cat" at 0.9, but half the objects are dogs: precision well below the
    # claimed 0.9, one score bin, so D-ECE is the gap and the estimate the reference's precision
    ref_precision = section["reference"]["precision"]["precision"]
    assert 0.2 < ref_precision < 0.8
    for key in ("reference", "current"):
        got = section[key]["precision"]["precision"]
        assert section[f"{key}_calibration"]["ece"] == pytest.approx(0.9 - got)
    assert section["estimated_current_precision"] == pytest.approx(ref_precision)
    if not app.registered_commands:
        _register()
    run = CliRunner(env={"COLUMNS": "300", "SYNTHCV_TRACKING": "0"}).invoke
    res = run(
        app,
        [
            "monitor",
            "ref",
            "big",
            "--model",
            "blobs_monitor:predict",
            "--embedding",
            "none",
            "-o",
            "rep",
        ],
    )
    assert res.exit_code == 3, res.output
    assert (
        "## Detector: function blobs_monitor:predict" in (tmp_path / "rep" / "drift.md").read_text()
    )
    assert 'alt="reliability"' in (tmp_path / "rep" / "drift.html").read_text()
    np.savez(tmp_path / "plain.npz", images=np.zeros((4, 8, 8), np.uint8))
    res = run(
        app,
        [
            "monitor",
            "plain.npz",
            "plain.npz",
            "--model",
            "blobs_monitor:predict",
            "--embedding",
            "none",
        ],
    )
    assert res.exit_code == 2 and "needs objects" in res.output


def test_a_synthcv_dataset_is_read_as_rendered_with_objects(tmp_path):
    from synthcv.pipeline import generate

    spec = str(Path(__file__).resolve().parents[1] / "examples" / "digits_mnist.yaml")
    generate(spec, tmp_path / "ds", count=12, progress=False)
    s = load_monitor_source(str(tmp_path / "ds"))
    assert len(s) == 12 and s.images.shape[1:3] == (28, 28) and set(s.labels) <= set(range(10))
    assert "lights.ambient" in s.factors and len(s.factors["lights.ambient"]) == 12
    assert len(s.objects["object_count"]) == 12 and (s.objects["object_count"] == 1).all()
    assert ((s.objects["object_size"] > 0.3) & (s.objects["object_size"] < 1)).all()
    assert sorted(set(s.object_classes)) == sorted({str(v) for v in s.labels})
    assert len(s.instances()) == 12
    half = load_monitor_source(str(tmp_path / "ds"), n=6)
    assert len(half) == 6 and len(half.objects["object_count"]) == 6


def test_a_dataset_subset_feeds_images_objects_and_instances_from_the_same_samples(tmp_path):
    """With --n, the image features, the object features and the instance view come from one
    subset, even when some samples show no object (those are not classification samples, so
    a subset drawn over all samples would pick other ones)."""
    from synthcv.format import open_dataset
    from synthcv.pipeline import generate
    from synthcv.spec import load_spec
    from synthcv.targets import target_object

    spec = load_spec(
        "image: {width: 32, height: 32}\nobjects:\n  count: {randint: [0, 2]}\n"
        "  classes: {cube: {asset: {primitive: cube, size: 0.08}}}\n"
        "outputs: {normals: false, depth: false}\n"
    ).with_count(16)
    out = tmp_path / "ds"
    generate(spec, out, progress=False, on_empty="allow")
    ds = open_dataset(out)
    counts = {}
    for i in range(len(ds)):
        objs = ds.objects_of(i)
        if target_object(objs) is not None:
            counts[i] = sum(
                1 for o in objs if not o["is_distractor"] and (o["visible_pixels"] or 0) > 0
            )
    assert 0 < len(counts) < len(ds)  # some samples are empty: the case that went wrong
    s = load_monitor_source(str(out), n=6, seed=3)
    assert len(s.images) == 6 and len(s.objects["object_count"]) == 6
    rgb = {i: ds[i]["rgb"] for i in counts}
    matched = [next(i for i in counts if np.array_equal(rgb[i], im)) for im in s.images]
    assert s.objects["object_count"].tolist() == [counts[i] for i in matched]
    assert s.instance_loader().image_ids.tolist() == matched


def test_detection_outcomes_match_as_cocoeval_does():
    """A duplicate of a matched object and a detection of the wrong class are false positives;
    the higher-scoring duplicate takes the object."""
    from synthcv.tasks.evaluation import detection_outcomes
    from synthcv.tasks.instances import Instances, InstanceSet, Predictions

    gt = InstanceSet(
        [np.zeros((40, 40, 3), np.uint8)],
        [Instances(np.array([[0, 0, 10, 10], [20, 20, 10, 10]]), np.array([0, 1]))],
        ["cat", "dog"],
    )
    preds = [
        Predictions(
            np.array([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 10, 10], [30, 0, 5, 5]]),
            np.array([0.6, 0.9, 0.8, 0.7]),
            np.array([0, 0, 0, 1]),  # the third says "cat" where a dog is; the fourth: nothing
        )
    ]
    scores, tp = detection_outcomes(gt, preds, iou=0.5)
    got = {round(float(s), 2): bool(t) for s, t in zip(scores, tp, strict=True)}
    assert got == {0.9: True, 0.6: False, 0.8: False, 0.7: False}
    with pytest.raises(ValueError, match="2 predictions for 1 images"):
        detection_outcomes(gt, preds * 2)


def _overconfident(n: int, seed: int, right: float):
    """Every object found once at score 0.9, plus one false alarm per image at 0.9 with
    probability (1 - right) / right per object: precision ``right`` at a claimed 0.9."""
    from synthcv.tasks.instances import Instances, InstanceSet, Predictions

    rng = np.random.default_rng(seed)
    images, targets, preds = [], [], []
    for _ in range(n):
        box = np.array([[rng.uniform(0, 40), rng.uniform(0, 40), 16, 16]])
        targets.append(Instances(box, np.array([0])))
        images.append(np.zeros((64, 64, 3), np.uint8))
        boxes, scores = [box[0]], [0.9]
        if rng.random() < (1 - right) / right:
            boxes.append([60, 60, 3, 3])  # nowhere near the object
            scores.append(0.9)
        preds.append(Predictions(np.array(boxes), np.array(scores), np.zeros(len(boxes))))
    return InstanceSet(images, targets, ["cat"]), preds


def test_an_overconfident_detector_has_the_d_ece_it_was_built_with():
    """Half its 0.9-scored detections are false alarms: precision 0.5, D-ECE 0.4; the label-free
    estimate for a batch that behaves the same (calibrated on the reference's labels) says 0.5,
    not the 0.9 the scores claim."""
    from synthcv.monitor.model_checks import detector_section
    from synthcv.monitor.report import _model_lines, _reliability_png

    ref, ref_p = _overconfident(400, 0, right=0.5)
    cur, cur_p = _overconfident(300, 1, right=0.5)
    m = detector_section("overconfident", ["bbox"], ref, cur, ref_p, cur_p)
    prec = m["reference"]["precision"]
    assert prec["n"] == sum(len(p) for p in ref_p)
    assert abs(prec["precision"] - 0.5) < 0.05 and prec["lo"] < prec["precision"] < prec["hi"]
    assert abs(m["reference_calibration"]["ece"] - (0.9 - prec["precision"])) < 1e-6
    assert abs(m["current_calibration"]["ece"] - 0.4) < 0.06
    assert abs(m["estimated_current_precision"] - prec["precision"]) < 1e-6
    # unlabelled, the batch still gets the estimate; the measured row is left empty
    from synthcv.tasks.instances import Instances

    blind = type(cur)(cur.images, [Instances.empty(64, 64) for _ in cur.images], ["cat"])
    m2 = detector_section("overconfident", ["bbox"], ref, blind, ref_p, cur_p)
    assert "current" not in m2 and "current_calibration" not in m2
    assert abs(m2["estimated_current_precision"] - prec["precision"]) < 1e-6
    lines = "\n".join(_model_lines(m2))
    assert (
        "precision (estimated, CBPE-style)" in lines
        and "The estimate is not a measurement" in lines
    )
    assert _reliability_png(m)  # a diagram of score against precision renders


def test_a_synthcv_subset_decodes_only_its_own_images(tmp_path, monkeypatch):
    from conftest_dataset_fixture import write_fixture_dataset
    from synthcv.format import codecs
    from synthcv.tasks.data import load_synthcv_dataset

    ds = write_fixture_dataset(tmp_path / "ds", count=3, shard_size=2)
    full = load_synthcv_dataset(ds, match=None, progress=False)
    assert len(full) == 3
    reads = []
    real = codecs.read_png

    def counted(path, *args, **kwargs):
        reads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(codecs, "read_png", counted)
    sub = load_monitor_source(str(ds), n=2, seed=1)
    assert len(sub) == 2 and len(reads) == 2 * 2  # rgb + instance of the chosen two only
    idx = np.sort(np.random.default_rng(1).permutation(3)[:2])
    assert np.array_equal(sub.images, full.images[idx])
    assert np.array_equal(sub.labels, full.labels[idx])
    assert {k: list(v) for k, v in sub.factors.items()} == {
        k: list(v[idx]) for k, v in full.factors.items()
    }
