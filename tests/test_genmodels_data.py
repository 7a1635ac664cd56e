"""Real-digit loaders, data sources, the run directory (train/resume/metrics) and the CLI."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from synthcv.realdata import (
    MNIST_ENV_VAR,
    find_mnist8000,
    load_mnist8000,
    load_sklearn_digits,
    mnist8000_candidates,
)

torch = pytest.importorskip("torch")

from synthcv.genmodels.data import load_images  # noqa: E402
from synthcv.genmodels.io import save_samples_npz  # noqa: E402
from synthcv.genmodels.train import TrainConfig, read_metrics, train  # noqa: E402

try:
    find_mnist8000()
    HAVE_MNIST = True
except FileNotFoundError:
    HAVE_MNIST = False


@pytest.mark.skipif(not HAVE_MNIST, reason="mnist-real-8000.npz not present")
def test_mnist8000_fixed_split():
    tr_x, tr_y = load_mnist8000("train")
    te_x, te_y = load_mnist8000("test")
    all_x, all_y = load_mnist8000("all")
    assert tr_x.shape == (7000, 28, 28) and te_x.shape == (1000, 28, 28)
    assert tr_x.dtype == np.uint8 and tr_y.dtype == np.int64
    assert np.array_equal(np.concatenate([tr_x, te_x]), all_x)
    assert np.array_equal(np.concatenate([tr_y, te_y]), all_y)
    assert set(np.unique(all_y)) == set(range(10))


@pytest.mark.skipif(not HAVE_MNIST, reason="mnist-real-8000.npz not present")
def test_mnist6300_leaves_the_experiments_validation_part_out_of_training():
    from synthcv.realdata import MNIST_TRAIN_COUNT, validation_part

    train_x, train_y = load_mnist8000("train")
    val = validation_part(MNIST_TRAIN_COUNT, "val")
    assert len(val) == 700
    source = load_images("mnist6300", "train")
    assert source.images.shape == (6300, 1, 28, 28)
    # no validation digit is a training image, and every other training digit is
    train_rows = {x.tobytes() for x in source.images[:, 0]}
    assert not any(train_x[i].tobytes() in train_rows for i in val)
    keep = np.setdiff1d(np.arange(MNIST_TRAIN_COUNT), val)
    np.testing.assert_array_equal(source.images[:, 0], train_x[keep])
    np.testing.assert_array_equal(source.labels, train_y[keep])
    test = load_images("mnist6300", "test")
    np.testing.assert_array_equal(test.images[:, 0], load_mnist8000("test")[0])
    assert len(load_images("mnist6300", "all").images) == 7300


def test_mnist8000_path_resolution_and_errors(tmp_path, monkeypatch):
    fake = tmp_path / "digits.npz"
    np.savez(fake, images=np.zeros((8000, 28, 28), np.uint8), labels=np.arange(8000) % 10)
    monkeypatch.setenv(MNIST_ENV_VAR, str(fake))
    x, y = load_mnist8000("test")
    assert x.shape == (1000, 28, 28) and y.dtype == np.int64 and y[0] == 0
    monkeypatch.setenv(MNIST_ENV_VAR, str(tmp_path / "nope.npz"))
    with pytest.raises(FileNotFoundError, match=r"nope\.npz") as err:
        load_mnist8000()
    assert MNIST_ENV_VAR in str(err.value)
    with pytest.raises(FileNotFoundError, match="explicit path"):
        load_mnist8000("all", tmp_path / "missing.npz")
    monkeypatch.delenv(MNIST_ENV_VAR)
    monkeypatch.chdir(tmp_path)
    cands = mnist8000_candidates()
    assert cands[0] == tmp_path / ".." / "shared" / "data" / "mnist" / "mnist-real-8000.npz"
    repo = Path(__file__).resolve().parents[1]
    assert repo / ".." / "shared" / "data" / "mnist" / "mnist-real-8000.npz" in cands
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros(3))
    with pytest.raises(ValueError, match="no 'images' array"):
        load_mnist8000("all", bad)
    with pytest.raises(ValueError, match="split must be"):
        load_mnist8000("valid", fake)


def test_sklearn_digits_are_8bit_with_17_levels():
    x, y = load_sklearn_digits("all")
    tr, _ = load_sklearn_digits("train")
    te, _ = load_sklearn_digits("test")
    assert x.shape == (1797, 8, 8) and x.dtype == np.uint8
    assert len(tr) == 1500 and len(te) == 297
    assert x.max() == 255 and len(np.unique(x)) == 17
    assert set(np.unique(y)) == set(range(10))


def test_npz_samples_are_a_trainable_source(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (16, 6, 6), dtype=np.uint8)
    path = save_samples_npz(tmp_path / "s.npz", imgs, np.arange(16) % 4, {"model": "x"})
    with np.load(path) as z:
        assert json.loads(str(z["meta"]))["model"] == "x"
        assert z["labels"].dtype == np.int64
    tr = load_images(path, "train")
    te = load_images(path, "test")
    assert tr.images.shape == (14, 1, 6, 6) and te.images.shape == (2, 1, 6, 6)
    assert tr.num_classes == 4
    assert np.array_equal(np.concatenate([tr.images, te.images])[:, 0], imgs)
    with pytest.raises(FileNotFoundError, match="not 'mnist8000'"):
        load_images(tmp_path / "none.npz")


try:
    import synthcv.format  # noqa: F401

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest_dataset_fixture import write_fixture_dataset

    HAVE_DATASET = True
except ImportError:
    HAVE_DATASET = False


@pytest.mark.skipif(not HAVE_DATASET, reason="synthcv.format / the fixture is not available")
def test_train_on_a_synthcv_dataset_directory(tmp_path):
    ds_dir = write_fixture_dataset(tmp_path / "ds", count=4, shard_size=2)
    data = load_images(ds_dir, "all")
    assert data.images.shape == (4, 3, 24, 32) and data.images.dtype == np.uint8
    assert data.class_names == ["cube", "sphere"] and data.num_classes == 2
    assert list(data.labels) == [1, 1, 1, 1]  # the sphere is the largest visible object
    cfg = TrainConfig(
        model="gated-pixelcnn",
        data=str(ds_dir),
        epochs=1,
        batch_size=2,
        crop=6,
        conditional=True,
        hparams={"channels": 6, "layers": 2, "first_kernel": 3},
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["epoch"] == 1 and np.isfinite(summary["test_bpd"])


# ---- run directory: train, resume, metrics -------------------------------------------------


def small_cfg(**kw):
    base = dict(
        model="gated-pixelcnn",
        data="sklearn-digits",
        epochs=2,
        batch_size=32,
        limit=96,
        test_limit=32,
        hparams={"channels": 8, "layers": 2, "first_kernel": 3},
    )
    return TrainConfig(**{**base, **kw})


def test_resume_continues_exactly_where_the_checkpoint_left_off(tmp_path):
    from synthcv.genmodels.registry import load_checkpoint

    full = train(small_cfg(), tmp_path / "full", progress=False)
    train(small_cfg(epochs=1), tmp_path / "part", progress=False)
    assert len(read_metrics(tmp_path / "part")) == 1
    with pytest.raises(FileExistsError, match="--resume"):
        train(small_cfg(), tmp_path / "part", progress=False)
    resumed = train(small_cfg(epochs=2), tmp_path / "part", resume=True, progress=False)
    m_full, p_full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    m_part, p_part = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for k, v in m_full.state_dict().items():
        assert torch.equal(v, m_part.state_dict()[k]), k
    assert p_full["steps"] == p_part["steps"] == 6 and p_part["epochs_done"] == 2
    rows = read_metrics(tmp_path / "part")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert resumed["test_bpd"] == pytest.approx(full["test_bpd"])
    assert rows[1]["train_bpd"] < rows[0]["train_bpd"]


def test_lr_decay_is_a_function_of_the_epoch_and_survives_resume(tmp_path):
    from synthcv.genmodels.registry import load_checkpoint

    train(small_cfg(lr=2e-3, lr_decay=0.5), tmp_path / "full", progress=False)
    train(small_cfg(lr=2e-3, lr_decay=0.5, epochs=1), tmp_path / "part", progress=False)
    train(small_cfg(epochs=2), tmp_path / "part", resume=True, progress=False)
    for run in ("full", "part"):
        assert [r["lr"] for r in read_metrics(tmp_path / run)] == pytest.approx([2e-3, 1e-3])
    m_full, _ = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    m_part, _ = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for k, v in m_full.state_dict().items():
        assert torch.equal(v, m_part.state_dict()[k]), k
    # and the decay really changed the second epoch's updates
    train(small_cfg(lr=2e-3), tmp_path / "flat", progress=False)
    m_flat, _ = load_checkpoint(tmp_path / "flat" / "checkpoint.pt")
    assert any(not torch.equal(v, m_flat.state_dict()[k]) for k, v in m_full.state_dict().items())


def test_run_json_holds_the_resolved_config_and_reads_back_equal(tmp_path):
    from synthcv.genmodels.train import load_run_config

    cfg = small_cfg(epochs=1, lr_schedule="cosine", ema=0.9, test_limit=8)
    train(cfg, tmp_path / "r", progress=False)
    saved = load_run_config(tmp_path / "r")
    assert cfg.micro_batch is None and saved.micro_batch == cfg.batch_size  # resolved
    assert saved == cfg.replace(micro_batch=cfg.batch_size)
    run_json = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run_json["config"] == saved.to_json()


def test_cosine_schedule_with_warmup_and_exponential_decay():
    from synthcv.genmodels.train import scheduled_lr

    cos = small_cfg(lr=1e-3, lr_schedule="cosine", warmup_steps=4)
    assert scheduled_lr(cos, 0, 0.0, 0) == pytest.approx(0.25e-3)  # warm-up ramp
    assert scheduled_lr(cos, 0, 0.0, 3) == pytest.approx(1e-3)
    assert scheduled_lr(cos, 3, 0.5, 40) == pytest.approx(0.5e-3)  # half-way: half the lr
    assert scheduled_lr(cos, 9, 1.0, 90) == pytest.approx(0.0, abs=1e-12)
    assert scheduled_lr(cos, 9, 1.7, 90) == pytest.approx(0.0, abs=1e-12)  # over budget: 0
    exp = small_cfg(lr=1e-3, lr_decay=0.5)
    assert scheduled_lr(exp, 2, 0.9, 50) == pytest.approx(0.25e-3)


def test_cosine_run_anneals_to_zero_by_its_last_step_and_rejects_unknown_schedules(tmp_path):
    train(small_cfg(lr=2e-3, lr_schedule="cosine", epochs=3), tmp_path / "cos", progress=False)
    rows = read_metrics(tmp_path / "cos")
    # 3 steps per epoch, 9 in all: the last step runs at progress 8/9
    lrs = [r["lr"] for r in rows]
    assert lrs == pytest.approx([1e-3 * (1 + math.cos(math.pi * s / 9)) for s in (2, 5, 8)])
    with pytest.raises(ValueError, match="lr_schedule: got 'step', expected 'exp' or 'cosine'"):
        train(small_cfg(lr_schedule="step"), tmp_path / "bad", progress=False)
    with pytest.raises(ValueError, match=r"ema: got 1\.0, expected less than 1"):
        train(small_cfg(ema=1.0), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_random_shift_translates_each_image_and_keeps_its_grey_levels():
    from synthcv.genmodels.data import random_shift

    rng = np.random.default_rng(0)
    x = torch.zeros(32, 1, 12, 12, dtype=torch.long)  # a 2-pixel zero border, like MNIST's
    x[:, :, 2:10, 2:10] = torch.from_numpy(rng.integers(0, 256, (32, 1, 8, 8)))
    g = torch.Generator().manual_seed(3)
    y = random_shift(x, 2, g)
    assert y.shape == x.shape and y.dtype == x.dtype
    offsets = set()
    for xi, yi in zip(x, y, strict=True):
        # the output is the input translated by one offset in [-2, 2]^2, nothing else changed
        match = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(torch.roll(xi, (dy, dx), dims=(1, 2)), yi)
        ]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 5  # offsets are drawn per image
    assert torch.equal(random_shift(x, 2, torch.Generator().manual_seed(3)), y)  # reproducible
    assert random_shift(x, 0, g) is x
    # beyond the border the edge pixel repeats (no wrap-around)
    ramp = torch.arange(5).view(1, 1, 1, 5).expand(64, 1, 3, 5)
    shifted = random_shift(ramp, 1, torch.Generator().manual_seed(0))
    starts = {int(v) for v in shifted[:, 0, 0, 0]}
    assert starts == {0, 1} and set(shifted[:, 0, 0, -1].tolist()) == {3, 4}


def test_shift_augmented_training_is_reproducible_resumable_and_validated(tmp_path):
    from synthcv.genmodels.registry import load_checkpoint

    full = train(small_cfg(augment_shift=1), tmp_path / "full", progress=False)
    train(small_cfg(augment_shift=1, epochs=1), tmp_path / "part", progress=False)
    train(small_cfg(epochs=2), tmp_path / "part", resume=True, progress=False)
    plain = train(small_cfg(), tmp_path / "plain", progress=False)
    m_full, _ = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    m_part, _ = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for k, v in m_full.state_dict().items():
        assert torch.equal(v, m_part.state_dict()[k]), k
    assert full["train_bpd"] != pytest.approx(plain["train_bpd"], rel=1e-9)  # it did shift
    with pytest.raises(
        ValueError, match="augment_shift: got -1, expected greater than or equal to 0"
    ):
        train(small_cfg(augment_shift=-1), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_weight_average_follows_its_formula():
    from synthcv.genmodels.train import WeightAverage

    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    avg = WeightAverage(lin, decay=0.5)
    expect = 0.0
    for t, value in enumerate([4.0, 8.0, 2.0], start=1):
        with torch.no_grad():
            lin.weight.fill_(value)
        avg.update()
        d = min(0.5, (1 + t) / (10 + t))
        expect = d * expect + (1 - d) * value
        assert float(avg.shadow[0]) == pytest.approx(expect)
    with avg.swapped_in():
        assert float(lin.weight.detach()) == pytest.approx(expect)
    assert float(lin.weight.detach()) == 2.0  # the training weights come back


def test_averaged_weights_are_evaluated_checkpointed_and_resumed(tmp_path):
    from synthcv.genmodels.registry import load_checkpoint
    from synthcv.genmodels.train import evaluate, load_split, tensors

    cfg = small_cfg(ema=0.9, lr=3e-3)
    full = train(cfg, tmp_path / "full", progress=False)
    model, payload = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    raw = payload["train_state_dict"]
    names = [k for k, _ in model.named_parameters()]
    assert any(not torch.equal(payload["state_dict"][k], raw[k]) for k in names)
    x, y = tensors(load_split(cfg, "test"), 256, False)
    assert evaluate(model, x, y) == pytest.approx(full["test_bpd"], rel=1e-6)  # the average
    model.load_state_dict(raw)
    assert evaluate(model, x, y) != pytest.approx(full["test_bpd"], rel=1e-6)
    # an interrupted run resumes both the training weights and their average
    train(small_cfg(ema=0.9, lr=3e-3, epochs=1), tmp_path / "part", progress=False)
    train(small_cfg(epochs=2), tmp_path / "part", resume=True, progress=False)
    _, p_part = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for key in ("state_dict", "train_state_dict"):
        for k, v in payload[key].items():
            assert torch.equal(v, p_part[key][k]), (key, k)


def test_bf16_training_learns_and_its_checkpoint_evaluates_in_float32(tmp_path):
    from synthcv.genmodels.registry import load_checkpoint
    from synthcv.genmodels.train import evaluate, load_split, tensors

    cfg = small_cfg(precision="bf16", epochs=3)
    s = train(cfg, tmp_path / "bf16", progress=False)
    rows = read_metrics(tmp_path / "bf16")
    assert rows[-1]["train_bpd"] < rows[0]["train_bpd"]
    model, _ = load_checkpoint(tmp_path / "bf16" / "checkpoint.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x, y = tensors(load_split(cfg, "test"), 256, False)
    assert evaluate(model, x, y) == pytest.approx(s["test_bpd"], rel=1e-6)
    with pytest.raises(ValueError, match="precision: got 'fp8', expected 'fp32', 'bf16' or 'auto'"):
        train(small_cfg(precision="fp8"), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from synthcv.genmodels.base import GenerativeModel
    from synthcv.genmodels.registry import load_checkpoint

    real_loss = GenerativeModel.loss
    calls = {"n": 0}

    def loss_going_nan(self, x, cond=None, generator=None):
        calls["n"] += 1
        out = real_loss(self, x, cond, generator)
        return out * float("nan") if calls["n"] > 3 else out  # epoch 1 has 3 steps

    monkeypatch.setattr(GenerativeModel, "loss", loss_going_nan)
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 2, step 4"):
        train(small_cfg(epochs=3), tmp_path / "r", progress=False)
    _, payload = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert payload["epochs_done"] == 1 and len(read_metrics(tmp_path / "r")) == 1
    model, _ = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_compiled_training_matches_eager_training(tmp_path):
    eager = train(small_cfg(epochs=1), tmp_path / "eager", progress=False)
    compiled = train(small_cfg(epochs=1, compile=True), tmp_path / "compiled", progress=False)
    # same data, same steps, same initial weights: the same model up to float reassociation
    assert compiled["test_bpd"] == pytest.approx(eager["test_bpd"], rel=1e-3)
    assert compiled["train_bpd"] == pytest.approx(eager["train_bpd"], rel=1e-3)


def test_time_budget_stops_training_and_records_it(tmp_path):
    s = train(small_cfg(epochs=50, minutes=1e-4, eval_every=10), tmp_path / "r", progress=False)
    assert s["stopped_by_budget"] and s["epoch"] == 1 and not s["complete"]
    assert np.isfinite(s["test_bpd"])  # a budget-cut epoch is always evaluated
    assert len(read_metrics(tmp_path / "r")) == 1


def test_a_budget_cut_epoch_resumes_at_its_next_batch_exactly(tmp_path):
    from synthcv.genmodels.registry import load_checkpoint

    # shifts, dropout and averaging: every random stream and running state has to survive
    kw = dict(augment_shift=1, ema=0.9, hparams={"channels": 8, "layers": 2, "dropout": 0.2})
    full = train(small_cfg(**kw), tmp_path / "full", progress=False)
    cut = train(small_cfg(minutes=1e-6, **kw), tmp_path / "cut", progress=False)  # 1 step of 3
    assert cut["stopped_by_budget"] and not cut["complete"] and cut["steps"] == 1
    resumed = train(small_cfg(**kw), tmp_path / "cut", resume=True, progress=False)
    _, p_full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    _, p_cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for name in ("state_dict", "train_state_dict"):  # the average and the last iterate
        for k, v in p_full[name].items():
            assert torch.equal(v, p_cut[name][k]), (name, k)
    assert p_cut["steps"] == p_full["steps"] == 6 and "partial_epoch" not in p_cut
    rows = read_metrics(tmp_path / "cut")
    assert [(r["epoch"], r["complete"]) for r in rows] == [(1, False), (1, True), (2, True)]
    full_rows = read_metrics(tmp_path / "full")
    assert rows[1]["train_bpd"] == pytest.approx(full_rows[0]["train_bpd"])  # whole-epoch mean
    assert resumed["test_bpd"] == full["test_bpd"]


def test_eval_every_skips_test_passes_but_always_evaluates_the_last_epoch(tmp_path):
    s = train(small_cfg(epochs=5, eval_every=2), tmp_path / "r", progress=False)
    rows = read_metrics(tmp_path / "r")
    assert [r["epoch"] for r in rows if "test_bpd" in r] == [2, 4, 5]
    assert all(np.isfinite(r["train_bpd"]) for r in rows)
    assert s["test_bpd"] == rows[-1]["test_bpd"]
    with pytest.raises(ValueError, match="eval_every: got 0, expected greater than or equal to 1"):
        train(small_cfg(eval_every=0), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_micro_batches_accumulate_the_same_gradient_as_one_pass():
    from synthcv.genmodels.registry import build_model
    from synthcv.genmodels.train import accumulate_gradients, training_loss

    model = build_model("gated-pixelcnn", (1, 8, 8), 256, 0, channels=8, layers=2)
    model, loss_fn = training_loss(model, "fp32", compile=False)
    x = torch.randint(0, 256, (20, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    grads, means = [], []
    for micro in (20, 8, 1):  # one pass; 8 + 8 + 4; twenty passes
        model.zero_grad()
        means.append(accumulate_gradients(loss_fn, x, None, None, micro))
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert means[1] == pytest.approx(means[0], rel=1e-6)
    assert means[2] == pytest.approx(means[0], rel=1e-6)
    assert len(grads[0]) > 4
    for g_one, g8, g1 in zip(*grads, strict=True):
        torch.testing.assert_close(g8, g_one, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(g1, g_one, rtol=1e-4, atol=1e-7)
    nan_loss = lambda *_: torch.tensor(float("nan"))  # noqa: E731
    with pytest.raises(FloatingPointError, match="the loss became nan"):
        accumulate_gradients(nan_loss, x, None, None, 8)


def test_micro_batch_resolution_errors_and_record(tmp_path):
    from synthcv.genmodels.registry import build_model
    from synthcv.genmodels.train import resolve_micro_batch

    digits28 = build_model("gated-pixelcnn", (1, 28, 28), 256, 0, channels=4, layers=2)
    assert resolve_micro_batch(TrainConfig(batch_size=64), digits28) == 64  # one pass
    assert resolve_micro_batch(TrainConfig(batch_size=64, micro_batch=16), digits28) == 16
    assert resolve_micro_batch(TrainConfig(batch_size=8, micro_batch=16), digits28) == 8
    made = build_model("made", (1, 28, 28), 256, 0, hidden=[8], num_masks=2)
    assert resolve_micro_batch(TrainConfig(batch_size=64, micro_batch=64), made) == 64
    with pytest.raises(ValueError, match="draws one connectivity per loss call"):
        resolve_micro_batch(TrainConfig(batch_size=64, micro_batch=32), made)
    with pytest.raises(ValueError, match="micro_batch: got 0, expected greater than or equal to 1"):
        train(small_cfg(micro_batch=0), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    # passes of 8 in a batch of 32: the run records it, and trains like one pass per batch
    one = train(small_cfg(epochs=1, precision="fp32"), tmp_path / "one", progress=False)
    split = train(small_cfg(epochs=1, micro_batch=8), tmp_path / "split", progress=False)
    assert json.loads((tmp_path / "split" / "run.json").read_text())["config"]["micro_batch"] == 8
    assert json.loads((tmp_path / "one" / "run.json").read_text())["config"]["micro_batch"] == 32
    assert split["train_bpd"] == pytest.approx(one["train_bpd"], rel=1e-3)
    assert split["test_bpd"] == pytest.approx(one["test_bpd"], rel=1e-3)


def test_evaluation_batch_size_changes_speed_not_the_result():
    from synthcv.genmodels.registry import build_model
    from synthcv.genmodels.train import eval_batch_size, evaluate

    big = build_model("gated-pixelcnn", (1, 28, 28), 256, 0, channels=4, layers=2)
    assert eval_batch_size(big) == 20  # 784 pixels x 256 logits: ~4M outputs per batch
    binary = build_model("gated-pixelcnn", (1, 28, 28), 2, 0, channels=4, layers=2)
    assert eval_batch_size(binary) == 256
    x = torch.randint(0, 256, (45, 1, 28, 28))
    auto = evaluate(big, x, None)
    assert evaluate(big, x, None, batch_size=45) == pytest.approx(auto, rel=1e-6)
    assert evaluate(big, x, None, batch_size=7) == pytest.approx(auto, rel=1e-6)


# ---- command line --------------------------------------------------------------------------


def run_cli(args):
    from typer.testing import CliRunner

    from synthcv.cli.genmodel import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def test_cli_params_take_json_and_comma_lists():
    from synthcv.cli.genmodel import _parse_params

    got = _parse_params(["dilations=1,2,4", "hidden=[16, 8]", "head=logistic", "dropout=0.1"])
    assert got == {"dilations": [1, 2, 4], "hidden": [16, 8], "head": "logistic", "dropout": 0.1}
    assert _parse_params(["name=a,b"]) == {"name": "a,b"}  # not a list of JSON values


def test_cli_train_eval_sample_complete_and_retrain_on_samples(tmp_path):
    run = tmp_path / "run"
    common = ["--limit", 64, "--test-limit", 32, "--batch-size", 32]
    small = ["--param", "channels=8", "--param", "layers=2", "--param", "first_kernel=3"]
    run_cli(["train", "--data", "sklearn-digits", "--conditional", "--epochs", 2, "--out", run,
             "--eval-every", 2, *common, *small])  # fmt: skip
    assert (run / "checkpoint.pt").is_file() and (run / "run.json").is_file()
    rows = read_metrics(run)
    assert ["test_bpd" in r for r in rows] == [False, True]
    out = run_cli(["eval", run])
    ev = json.loads((run / "eval.json").read_text())
    assert ev["train_n"] == 64 and ev["test_n"] == 32
    assert ev["test_bpd"] == pytest.approx(rows[-1]["test_bpd"], rel=1e-6)  # same weights
    assert ev["gap_bpd"] == pytest.approx(ev["test_bpd"] - ev["train_bpd"])
    assert "test_bpd" in out
    run_cli(["sample", run, "-n", 6, "--class", 3, "--out", tmp_path / "s.npz", "--seed", 2])
    with np.load(tmp_path / "s.npz") as z:
        assert z["images"].shape == (6, 8, 8) and z["images"].dtype == np.uint8
        assert list(z["labels"]) == [3] * 6
        meta = json.loads(str(z["meta"]))
        assert meta["model"] == "gated-pixelcnn" and meta["seed"] == 2
        assert meta["temperature"] == 1.0
    run_cli(["sample", run, "-n", 6, "--temperature", 0.5, "--out", tmp_path / "cold.npz"])
    with np.load(tmp_path / "cold.npz") as z:
        assert json.loads(str(z["meta"]))["temperature"] == 0.5
    run_cli(["sample", run, "-n", 4, "--out", tmp_path / "grid.png"])
    run_cli(["complete", run, "-n", 3, "--out", tmp_path / "c.png"])
    run_cli(["complete", run, "-n", 3, "--out", tmp_path / "c.npz"])
    from typer.testing import CliRunner

    from synthcv.cli.genmodel import app

    for cmd in ("sample", "complete"):  # a bad --out is refused before any sampling
        res = CliRunner().invoke(app, [cmd, str(run), "--out", str(tmp_path / "s.jpg")])
        words = " ".join(res.output.replace("│", " ").split())  # rich wraps the error box
        assert res.exit_code == 2 and "use a .npz or .png file" in words
    assert not (tmp_path / "s.jpg").exists()
    res = CliRunner().invoke(
        app, ["sample", str(run), "--temperature", "0", "--out", str(tmp_path / "t.npz")]
    )
    assert res.exit_code == 2 and "--temperature" in res.output
    te = load_images("sklearn-digits", "test", limit=3).images[:, 0]
    with np.load(tmp_path / "c.npz") as z:
        assert np.array_equal(z["images"][:, :4], te[:, :4])  # the known top half is kept
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[0] > 8
    # the samples file is itself a dataset: train an unconditional model on it
    run_cli(["train", "--data", tmp_path / "s.npz", "--model", "nade", "--epochs", 1,
             "--out", tmp_path / "run2", "--param", "hidden=8"])  # fmt: skip
    assert len(read_metrics(tmp_path / "run2")) == 1


def test_cli_rejects_unknown_schedule_and_precision_naming_the_flag(tmp_path):
    from typer.testing import CliRunner

    from synthcv.cli import genmodel
    from synthcv.genmodels.train import PRECISIONS, SCHEDULES

    assert tuple(e.value for e in genmodel.LrSchedule) == SCHEDULES
    assert tuple(e.value for e in genmodel.Precision) == PRECISIONS
    for flag, value in (("--lr-schedule", "step"), ("--precision", "fp8")):
        res = CliRunner().invoke(genmodel.app, ["train", "--out", str(tmp_path / "r"), flag, value])
        words = " ".join(res.output.replace("│", " ").split())
        assert res.exit_code == 2 and f"Invalid value for '{flag}'" in words
        assert f"'{value}' is not one of" in words
    assert not (tmp_path / "r").exists()


def test_cli_binary_vae_eval_reports_elbo_and_importance_weighted_bits(tmp_path):
    run = tmp_path / "vae"
    run_cli(["train", "--model", "conv-vae", "--data", "sklearn-digits", "--binarize",
             "--epochs", 1, "--limit", 64, "--test-limit", 16, "--out", run,
             "--param", "latent=4", "--param", "channels=8"])  # fmt: skip
    run_cli(["train", "--epochs", 2, "--out", run, "--resume"])  # binarize comes from run.json
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    run_cli(["eval", run, "--iw-samples", 8, "--iw-limit", 16])
    ev = json.loads((run / "eval.json").read_text())
    assert 0 < ev["test_iw_bpd"] < 1.5 and 0 < ev["test_bpd"] < 1.5  # binary: ~1 bit/dim max
    assert "ELBO" in ev["note"]


def test_cli_receptive_field_png(tmp_path):
    run_cli(["receptive-field", "--size", 9, "--layers", 3, "--out", tmp_path / "rf.png"])
    from PIL import Image

    with Image.open(tmp_path / "rf.png") as im:
        assert im.size[0] > im.size[1] > 50


def test_receptive_field_grows_with_depth_and_never_covers_the_future():
    from synthcv.genmodels import build_model, receptive_field

    m = build_model("gated-pixelcnn", (1, 9, 9), channels=4, layers=4)
    sizes = []
    for k in range(1, 5):
        rf = receptive_field(m, (4, 4), k)
        assert not rf[5:].any() and not rf[4, 4:].any()
        sizes.append(int(rf.sum()))
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]


def test_cli_module_and_real_data_loader_do_not_import_torch():
    import subprocess

    code = (
        "import sys, synthcv, synthcv.realdata, synthcv.cli.genmodel; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
