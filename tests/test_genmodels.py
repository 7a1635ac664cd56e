"""Generative models: causality, exact likelihoods, samplers, completion, training, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthcv.genmodels import (  # noqa: E402
    build_model,
    check_causality,
    load_checkpoint,
    save_checkpoint,
)
from synthcv.genmodels.heads import (  # noqa: E402
    CategoricalHead,
    LogisticMixtureHead,
    log1mexp,
)

# (name, hparams) small enough that a full dependency matrix takes milliseconds
TINY = {
    "fvsbn": {},
    "nade": {"hidden": 16},
    "made": {"hidden": [48, 48]},
    "gated-pixelcnn": {"channels": 12, "layers": 3, "first_kernel": 5},
    "conv-vae": {"latent": 4, "channels": 8},
}
AR = ["fvsbn", "nade", "made", "gated-pixelcnn"]
# (image shape, levels, classes): grey 8-bit, colour binary + class conditioning
SETTINGS = [((1, 5, 6), 256, 0), ((3, 4, 5), 2, 3)]


def tiny(name, shape, levels, ncls, seed=0, **extra):
    return build_model(name, shape, levels, ncls, seed=seed, **{**TINY[name], **extra})


def rand_x(shape, levels, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, *shape), generator=g)


def rand_y(ncls, n=4):
    return None if ncls == 0 else torch.arange(n) % ncls


def raster_index(shape, r, c, ch):
    return (r * shape[2] + c) * shape[0] + ch


# ---- causality -----------------------------------------------------------------------------


CAUSAL_CASES = [(name, s, {}) for name in AR for s in SETTINGS] + [
    ("gated-pixelcnn", ((3, 5, 5), 256, 2), {"dilations": [2, 1], "head": "logistic"}),
    ("gated-pixelcnn", ((1, 6, 6), 256, 0), {"layers": 4, "dilations": [1, 2, 4]}),
    ("made", ((3, 3, 3), 256, 0), {"num_masks": 3, "mask_seed": 5}),
    ("nade", ((1, 4, 4), 256, 0), {"head": "categorical"}),
]


@pytest.mark.parametrize(("name", "setting", "extra"), CAUSAL_CASES)
def test_no_output_depends_on_its_own_or_later_inputs(name, setting, extra):
    shape, levels, ncls = setting
    model = tiny(name, shape, levels, ncls, **extra)
    rep = check_causality(model, cond=1 if ncls else None)
    assert rep.violations == []
    assert rep.depends.shape == (model.num_dims, model.num_dims)
    # the checker does see connections: dimension 1 depends on dimension 0 in every model
    assert rep.depends[1, 0]


def test_dropout_keeps_training_passes_causal_and_is_off_at_evaluation():
    shape = (1, 5, 6)
    model = tiny("gated-pixelcnn", shape, 256, 0, dropout=0.5)
    torch.manual_seed(0)
    rep = check_causality(model, training=True)  # one training pass, dropout masks active
    assert rep.violations == [] and rep.depends[1, 0]
    x = rand_x(shape, 256)
    model.train()
    assert not torch.equal(model.log_prob(x), model.log_prob(x))  # it does drop
    model.eval()
    plain = tiny("gated-pixelcnn", shape, 256, 0)  # same seed, same weights, no dropout
    assert torch.equal(model.log_prob(x), plain.log_prob(x))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        tiny("gated-pixelcnn", shape, 256, 0, dropout=1.0)


def test_made_every_resampled_mask_is_causal_and_training_cycles_them():
    model = tiny("made", (1, 3, 4), 256, 0, num_masks=3)
    masks = []
    for k in range(3):
        model.eval_mask = k
        rep = check_causality(model)
        assert rep.ok, k
        masks.append(model.layers[0].mask.clone())
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    model.train()
    x = rand_x((1, 3, 4), 256)
    for k in (0, 1, 2, 0):
        model.loss(x)
        assert torch.equal(model.layers[0].mask, masks[k])


def test_colour_order_within_a_pixel_is_r_then_g_then_b():
    shape = (3, 4, 4)
    model = tiny("gated-pixelcnn", shape, 256, 0)
    dep = check_causality(model).depends
    r, g, b = (raster_index(shape, 2, 1, ch) for ch in range(3))
    assert not dep[r, r] and not dep[r, g] and not dep[r, b]
    assert dep[g, r] and not dep[g, g] and not dep[g, b]
    assert dep[b, r] and dep[b, g] and not dep[b, b]


def test_vertical_and_horizontal_stacks_leave_no_blind_spot():
    shape = (1, 7, 7)
    model = tiny("gated-pixelcnn", shape, 256, 0, layers=4, first_kernel=5)
    dep = check_causality(model).depends
    r, c = 4, 3
    i = raster_index(shape, r, c, 0)
    seen = dep[i].reshape(7, 7)
    # every earlier pixel is seen, including the upper-right region a single masked stack misses
    before = np.zeros((7, 7), bool)
    before[:r] = True
    before[r, :c] = True
    assert np.array_equal(seen, before)
    assert seen[r - 1, c + 2] and seen[r - 2, c + 3]


def test_causality_check_refuses_a_vae():
    with pytest.raises(TypeError, match="not autoregressive"):
        check_causality(tiny("conv-vae", (1, 4, 4), 256, 0))


# ---- exact likelihoods ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize(("levels", "bits"), [(256, 8.0), (2, 1.0)])
def test_uniform_model_gives_exactly_log2_levels_bits_per_dim(name, levels, bits):
    shape = (1, 4, 4)
    model = tiny(name, shape, levels, 0, head="categorical")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # zero logits everywhere (VAE: q = prior, KL = 0, uniform decoder)
    x = rand_x(shape, levels, n=8)
    bpd = model.bits_per_dim(x)
    assert bpd.item() == pytest.approx(bits, abs=1e-5)
    assert torch.allclose(model.log_prob(x), torch.full((8,), -16 * math.log(levels)))


def test_log_prob_is_sum_of_per_dimension_log_probs_in_nats():
    shape = (1, 3, 3)
    model = tiny("made", shape, 256, 0)
    x = rand_x(shape, 256, n=2)
    from synthcv.genmodels.base import to_unit

    params = model.forward_params(to_unit(x, 256), None)
    per_dim = model.head.log_prob(params, x)
    assert torch.allclose(model.log_prob(x), per_dim.flatten(1).sum(1))
    assert model.bits_per_dim(x).item() == pytest.approx(
        (-model.log_prob(x).mean() / (9 * math.log(2))).item()
    )


def test_logistic_mixture_bins_sum_to_one_and_categorical_matches_softmax():
    g = torch.Generator().manual_seed(0)
    head = LogisticMixtureHead(256, mixtures=3)
    params = torch.randn(50, 9, generator=g) * 2
    params[:, 6:] -= 3  # sharp components: mass concentrated in few bins
    lp = head.bin_log_probs(params)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(50), atol=1e-4)
    assert torch.isfinite(lp).all()
    cat = CategoricalHead(4)
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert torch.allclose(cat.bin_log_probs(logits).exp(), torch.softmax(logits, -1))


def test_a_very_broad_logistic_keeps_log_probs_and_gradients_finite():
    # log-scale 100: the bin width in units of the scale underflows to 0 in float32; without a
    # floor every bin's gradient became NaN
    head = LogisticMixtureHead(256, mixtures=1)
    params = torch.zeros(1, 1, 3, 2, 2)
    params[:, :, 2] = 100.0
    params.requires_grad_(True)
    x = torch.tensor([[[[0, 255], [7, 128]]]])
    lp = head.log_prob(params, x)
    assert torch.isfinite(lp).all()
    assert lp[0, 0, 0].tolist() == pytest.approx([math.log(0.5)] * 2)  # the tails: half each
    lp.sum().backward()
    assert torch.isfinite(params.grad).all()
    table = head.bin_log_probs(params.detach().movedim(2, -1)).exp().sum(-1)
    assert torch.allclose(table, torch.ones_like(table), atol=1e-5)


def test_log1mexp_is_accurate_from_tiny_to_large_widths():
    w = torch.tensor([1e-8, 2.3e-8, 1e-6, 1e-4, 9.9e-3, 1e-2, 0.5, 5.0, 30.0])
    exact = torch.log(-torch.expm1(-w.double()))
    assert torch.allclose(log1mexp(w).double(), exact, rtol=1e-6, atol=1e-9)


def test_compiled_logistic_head_matches_eager_for_a_broad_component():
    # log-scale 12.76 (a bin 2.3e-8 scales wide): compiled code that computes expm1 as exp - 1
    # gave log(0) = -inf here and killed a compiled FVSBN after 55 epochs
    head = LogisticMixtureHead(256, mixtures=1)
    params = torch.zeros(2, 1, 3, 4, 4)
    params[:, :, 1] = 7.8  # mean far right of the data range
    params[:, :, 2] = 12.76
    x = torch.arange(2 * 16).reshape(2, 1, 4, 4) * 8 % 256
    eager = head.log_prob(params, x)
    p = params.clone().requires_grad_(True)
    compiled = torch.compile(head.log_prob)(p, x)
    assert torch.isfinite(compiled).all()
    assert torch.allclose(compiled.detach(), eager, rtol=1e-5)
    compiled.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    u = torch.rand(20000, generator=torch.Generator().manual_seed(1))
    s = CategoricalHead.sample_from(probs.log().expand(20000, 4), u)
    freq = torch.bincount(s, minlength=4).float() / 20000
    assert freq[1] == 0
    assert torch.allclose(freq, probs, atol=0.015)


def test_bad_inputs_fail_with_clear_errors():
    model = tiny("gated-pixelcnn", (1, 4, 4), 256, 3)
    x = rand_x((1, 4, 4), 256)
    with pytest.raises(ValueError, match="expected x of shape"):
        model.log_prob(x[:, :, :3])
    with pytest.raises(ValueError, match=r"values must be in \[0, 255\]"):
        model.log_prob(x + 256, torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer levels"):
        model.log_prob(x.float())
    with pytest.raises(ValueError, match="needs class labels"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 2\]"):
        model.sample(2, cond=5)
    with pytest.raises(ValueError, match=r"cond must have shape \(2,\)"):
        model.sample(2, cond=[0, 1, 2])
    assert torch.equal(model.sample(2, cond=np.int64(1)), model.sample(2, cond=1))
    with pytest.raises(ValueError, match="unconditional"):
        tiny("nade", (1, 4, 4), 256, 0).sample(2, cond=1)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("pixelrnn", (1, 4, 4))
    with pytest.raises(ValueError, match="dilations"):
        build_model("gated-pixelcnn", (1, 4, 4), layers=3, dilations=[1])


# ---- sampling and completion ---------------------------------------------------------------

SAMPLE_CASES = [(name, s, {}) for name in list(TINY) for s in SETTINGS] + [
    ("gated-pixelcnn", ((3, 5, 6), 256, 0), {"dilations": [1, 2], "head": "logistic"}),
]


@pytest.mark.parametrize(("name", "setting", "extra"), SAMPLE_CASES)
def test_cached_sampler_draws_exactly_what_the_naive_one_draws(name, setting, extra):
    shape, levels, ncls = setting
    model = tiny(name, shape, levels, ncls, **extra)
    y = rand_y(ncls, 5)
    fast = model.sample(5, cond=y, seed=11)
    slow = model.sample(5, cond=y, seed=11, cached=False)
    assert fast.shape == (5, *shape) and fast.dtype == torch.long
    assert int(fast.min()) >= 0 and int(fast.max()) < levels
    assert torch.equal(fast, slow)
    assert torch.equal(model.sample(5, cond=y, seed=11, batch_size=2), fast)
    assert not torch.equal(model.sample(5, cond=y, seed=12), fast)


def test_sampling_temperature_sharpens_and_one_is_the_model_itself():
    from synthcv.genmodels.base import to_unit

    shape = (1, 4, 4)
    model = tiny("gated-pixelcnn", shape, 8, 2)
    y = torch.tensor([0, 1] * 20)
    base = model.sample(40, cond=y, seed=3)
    assert torch.equal(model.sample(40, cond=y, seed=3, temperature=1.0), base)
    # T -> 0 draws the mode at every step: each cold pixel is the most likely level given the
    # pixels drawn before it (wherever the top two levels are not a near tie)
    cold = model.sample(40, cond=y, seed=4, temperature=0.01)
    with torch.no_grad():
        params = model.eval().forward_params(to_unit(cold, 8), y)
    lp = model.head.bin_log_probs(params.movedim(2, -1))
    top2 = lp.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 0.1
    assert clear.float().mean() > 0.25
    assert torch.equal(lp.argmax(-1)[clear], cold[clear])
    # colder samples are more likely under the model, on average
    loglik = {
        t: model.log_prob(model.sample(40, y, seed=6, temperature=t), y).mean() for t in (1, 0.5)
    }
    assert loglik[0.5] > loglik[1]
    # the cached and the naive sampler agree at any temperature
    slow = model.sample(6, cond=y[:6], seed=5, temperature=0.7, cached=False)
    assert torch.equal(model.sample(6, cond=y[:6], seed=5, temperature=0.7), slow)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            model.sample(2, cond=0, temperature=bad)
    vae = tiny("conv-vae", (1, 8, 8), 256, 0)
    with pytest.raises(ValueError, match="autoregressive"):
        vae.sample(2, temperature=0.5)


def test_cached_parameters_match_a_full_forward_pass():
    from synthcv.genmodels.base import to_unit

    shape = (3, 4, 5)
    model = tiny("gated-pixelcnn", shape, 256, 2, dilations=[2, 1]).eval()
    x = rand_x(shape, 256, n=3)
    y = torch.tensor([0, 1, 1])
    with torch.no_grad():
        full = model.forward_params(to_unit(x, 256), y)
        sess = model.cached_session(torch.zeros_like(x), y)
        for r in range(4):
            for c in range(5):
                for ch in range(3):
                    assert torch.allclose(sess.params(r, c, ch), full[:, ch, :, r, c], atol=1e-5)
                    sess.update(r, c, ch, x[:, ch, r, c])


@pytest.mark.parametrize("name", list(TINY))
def test_complete_never_changes_known_pixels(name):
    shape, levels, ncls = (1, 6, 5), 256, 3
    model = tiny(name, shape, levels, ncls)
    x = rand_x(shape, levels, n=3)
    known = torch.rand(3, 1, 6, 5, generator=torch.Generator().manual_seed(3)) < 0.5
    known[:, :, :3] = True  # upper half given, plus a random scatter below
    out = model.complete(x, known, cond=torch.tensor([0, 1, 2]), seed=4)
    assert torch.equal(out[known], x[known])
    assert out.shape == x.shape
    assert not torch.equal(out[~known], x[~known])  # something was actually filled in
    if name != "conv-vae":
        again = model.complete(x, known[0, 0], cond=torch.tensor([0, 1, 2]), seed=4, cached=False)
        assert torch.equal(again, model.complete(x, known[0, 0], torch.tensor([0, 1, 2]), 4))


# ---- training and checkpoints --------------------------------------------------------------


def digits_batch(n=64):
    from synthcv.realdata import load_sklearn_digits

    im, lab = load_sklearn_digits("train")
    return torch.from_numpy(im[:n, None].astype(np.int64)), torch.from_numpy(lab[:n])


@pytest.mark.parametrize("name", list(TINY))
def test_a_few_training_steps_lower_the_loss(name):
    x, y = digits_batch()
    model = build_model(name, (1, 8, 8), 256, 10, seed=0, **TINY[name])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = float(model.loss(x, y, torch.Generator().manual_seed(9)))
    for _ in range(15):
        loss = model.loss(x, y, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(model.loss(x, y, torch.Generator().manual_seed(9)))
    assert after < before - 0.02 * abs(before), (before, after)


@pytest.mark.parametrize("name", list(TINY))
def test_checkpoint_round_trip_gives_identical_log_prob(name, tmp_path):
    x, y = digits_batch(16)
    model = build_model(name, (1, 8, 8), 256, 10, seed=3, **TINY[name])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):  # move off the initialization (and MADE's mask counter)
        loss = model.loss(x, y, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    save_checkpoint(tmp_path / "m.pt", model, note="hi")
    loaded, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["note"] == "hi"
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, y), model.log_prob(x, y))
    assert torch.equal(loaded.sample(2, cond=1, seed=5), model.sample(2, cond=1, seed=5))


def test_model_construction_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_model("nade", (1, 4, 4), seed=1, hidden=8)
    assert torch.equal(torch.rand(3), expected)
    b = build_model("nade", (1, 4, 4), seed=1, hidden=8)
    c = build_model("nade", (1, 4, 4), seed=2, hidden=8)
    assert torch.equal(a.w, b.w) and not torch.equal(a.w, c.w)


def test_vae_importance_weighted_bound_is_at_least_the_elbo():
    x, _ = digits_batch(32)
    model = build_model("conv-vae", (1, 8, 8), 256, 0, seed=0, **TINY["conv-vae"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        loss = model.loss(x, None, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        elbo = model.elbo(x).mean()
        iw = model.iw_log_prob(x, k=64).mean()
        assert torch.equal(model.log_prob(x), model.log_prob(x))  # seeded: deterministic
    assert iw >= elbo


def test_logistic_log_prob_of_observed_bin_equals_the_full_bin_table():
    head = LogisticMixtureHead(256, mixtures=2)
    g = torch.Generator().manual_seed(2)
    params = torch.randn(3, 1, 6, 4, 5, generator=g)
    x = torch.randint(0, 256, (3, 1, 4, 5), generator=g)
    x[0, 0, 0, :2] = torch.tensor([0, 255])  # the tail bins
    table = head.bin_log_probs(params.movedim(2, -1))
    expected = table.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(head.log_prob(params, x), expected, atol=1e-5)


def test_categorical_log_prob_equals_gathered_log_softmax():
    g = torch.Generator().manual_seed(4)
    params = torch.randn(2, 3, 7, 4, 5, generator=g)
    x = torch.randint(0, 7, (2, 3, 4, 5), generator=g)
    expected = torch.log_softmax(params, dim=2).gather(2, x.unsqueeze(2)).squeeze(2)
    assert torch.allclose(CategoricalHead(7).log_prob(params, x), expected, atol=1e-6)


def test_pixelcnn_head_parameters_stay_float32_under_bf16_autocast():
    """bf16 would put a logistic mean near 253/255 half a bin off and round softmax logits."""
    from synthcv.genmodels.base import to_unit

    x = torch.randint(0, 256, (2, 1, 8, 8))
    small = dict(channels=8, layers=2, first_kernel=3)
    for head in ("logistic", "categorical"):
        model = build_model("gated-pixelcnn", (1, 8, 8), 256, head=head, **small)
        with torch.autocast("cpu", torch.bfloat16):
            params = model.forward_params(to_unit(x, 256), None)
        assert params.dtype == torch.float32, head
        exact = model.forward_params(to_unit(x, 256), None)
        assert torch.allclose(params.float(), exact, atol=0.05, rtol=0.05)
