"""The likelihood classifier: Bayes' rule over a class-conditional model's exact likelihoods."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthcv.genmodels.classify import (  # noqa: E402
    class_log_likelihoods,
    likelihood_classify,
)
from synthcv.genmodels.registry import build_model  # noqa: E402

pytestmark = pytest.mark.torch


def halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8×8 binary images: class 0 has its top half on, class 1 its bottom half; 10% noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.zeros(n, 1, 8, 8, dtype=torch.long)
    x[y == 0, :, :4] = 1
    x[y == 1, :, 4:] = 1
    flip = torch.rand(x.shape, generator=g) < 0.1
    return torch.where(flip, 1 - x, x), y


@pytest.fixture(scope="module")
def trained():
    model = build_model(
        "gated-pixelcnn", (1, 8, 8), levels=2, num_classes=2, channels=8, layers=2, first_kernel=3
    )
    x, y = halves(256, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(80):
        idx = torch.randint(0, len(x), (64,))
        loss = model.loss(x[idx], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_each_column_is_the_models_own_class_conditional_log_likelihood(trained):
    x, _ = halves(10, 1)
    ll = class_log_likelihoods(trained, x, batch_size=3)
    for c in range(2):
        assert torch.allclose(ll[:, c], trained.log_prob(x, c).double(), atol=1e-4)


def test_a_trained_conditional_model_classifies_by_bayes_rule(trained):
    x, y = halves(200, 2)
    res = likelihood_classify(trained, x, y.numpy())
    assert res["accuracy"] > 0.97 and res["margin_bpd"] > 0
    assert set(res["per_class_accuracy"]) == {0, 1}
    assert np.asarray(res["confusion"]).sum() == 200
    # A prior that all but rules class 1 out moves the decisions to class 0.
    skewed = likelihood_classify(trained, x, y.numpy(), prior=np.array([1.0, 1e-300]))
    assert (skewed["predictions"] == 0).mean() > 0.95


def test_an_untrained_model_is_at_chance_and_unconditional_models_are_refused():
    model = build_model(
        "gated-pixelcnn", (1, 8, 8), levels=2, num_classes=2, channels=8, layers=2, first_kernel=3
    )
    x, y = halves(200, 3)
    assert abs(likelihood_classify(model, x, y.numpy())["accuracy"] - 0.5) < 0.2
    plain = build_model("gated-pixelcnn", (1, 8, 8), levels=2, channels=8, layers=2, first_kernel=3)
    with pytest.raises(ValueError, match="unconditional"):
        class_log_likelihoods(plain, x)
    with pytest.raises(ValueError, match="prior must be 2"):
        likelihood_classify(model, x, y.numpy(), prior=np.array([1.0, 2.0, 3.0]))
    assert math.isfinite(likelihood_classify(model, x, y.numpy())["margin_bpd"])


def test_genmodel_classify_cli_scores_a_run_and_refuses_unconditional_ones(tmp_path):
    import json
    import subprocess
    import sys

    base = [sys.executable, "-m", "synthcv", "genmodel"]
    tiny = ["--model", "gated-pixelcnn", "--limit", "64", "--test-limit", "30", "--epochs", "1"]
    tiny += ["--param", "channels=8", "--param", "layers=2", "--no-track"]
    for name, extra in (("cond", ["--conditional"]), ("plain", [])):
        r = subprocess.run(
            [*base, "train", *tiny, *extra, "--out", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
    out = tmp_path / "cls.json"
    r = subprocess.run(
        [*base, "classify", str(tmp_path / "cond"), "--prior", "train", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["n"] == 30 and 0 <= res["accuracy"] <= 1 and res["prior"] == "train"
    assert np.asarray(res["confusion"]).sum() == 30
    r = subprocess.run(
        [*base, "classify", str(tmp_path / "plain")], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2 and "unconditional" in r.stderr and "Traceback" not in r.stderr
