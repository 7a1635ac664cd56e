"""Denoising on (noisy, clean) pairs: a small learned DnCNN beside classical baselines.

A dataset generated with ``outputs: {pairs: true}`` carries ``rgb`` (what the simulated camera
saw: exposure, shot and read noise, blur, JPEG ...) and ``clean`` (the same image before the
sensor's photometric stages, pixel-aligned). That is supervision no real camera gives, so the
question here is what it is worth: a DnCNN (Zhang et al. 2017, a residual CNN that predicts the
noise) trained on the pairs against non-local means, total variation and wavelet shrinkage,
each scored by PSNR and SSIM, with the noisy input itself as the floor.

Project rule: every choice (the TV weight, the checkpoint kept) is made on validation pairs cut
from the training dataset (:func:`split_pairs`); a test set is scored once at the end and never
chooses anything.
"""

from __future__ import annotations

import copy
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthcv.fileio import atomic_path, write_json_atomic, write_text_atomic

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
CHECKPOINT_KIND = "synthcv-denoiser"
NOISY_ROW = "noisy input"
#: PSNR of an exact copy: finite, so means and JSON stay numbers.
PSNR_CAP = 100.0
#: TV weights tried on the validation pairs (images in [0, 1]).
TV_WEIGHTS = (0.02, 0.04, 0.08, 0.12, 0.2, 0.3)

Images = np.ndarray  # uint8, (N, H, W) grayscale or (N, H, W, 3) RGB
Method = Callable[[Images], Images]


# ------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class DenoiserConfig:
    """What builds a :class:`DnCNN` (saved beside the weights, so a run dir reloads)."""

    channels: int = 3
    depth: int = 8
    width: int = 32

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels: got {self.channels}, expected 1 or 3")
        if self.depth < 2:
            raise ValueError(f"depth: got {self.depth}, expected at least 2")
        if self.width < 1:
            raise ValueError(f"width: got {self.width}, expected at least 1")


class DnCNN(nn.Module):
    """Residual denoiser: conv-ReLU, (conv-BN-ReLU) × (depth-2), conv predicts the noise, and
    the output is input − noise. Input and output are (N, C, H, W) floats in [0, 1]; any size.

    The last conv starts at zero, so an untrained model is the identity and its first
    validation score is the noisy floor: training can only be kept if it beats that.
    """

    def __init__(self, config: DenoiserConfig | None = None) -> None:
        super().__init__()
        self.config = config or DenoiserConfig()
        c, w = self.config.channels, self.config.width
        layers: list[nn.Module] = [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(self.config.depth - 2):
            layers += [
                nn.Conv2d(w, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
        last = nn.Conv2d(w, c, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def _channels(images: Images) -> int:
    if images.ndim == 3:
        return 1
    if images.ndim == 4 and images.shape[-1] == 3:
        return 3
    raise ValueError(
        f"expected images of shape (N, H, W) or (N, H, W, 3), got {tuple(images.shape)}"
    )


def _to_tensor(images: Images) -> torch.Tensor:
    """uint8 (N, H, W[, 3]) → float (N, C, H, W) in [0, 1]."""
    arr = np.ascontiguousarray(images)
    if not arr.flags.writeable:  # e.g. np.asarray of a PIL image: torch wants writable memory
        arr = arr.copy()
    x = torch.from_numpy(arr).float().div_(255.0)
    return x.unsqueeze(1) if images.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def _to_uint8(x: torch.Tensor, gray: bool) -> Images:
    out = x.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    out = out[:, 0] if gray else out.permute(0, 2, 3, 1)
    return np.ascontiguousarray(out.numpy())


def denoise(model: DnCNN, images: Images, batch_size: int = 16) -> Images:
    """``images`` (uint8, N×H×W or N×H×W×3) denoised by ``model``, as uint8, without grad."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    if _channels(images) != model.config.channels:
        raise ValueError(
            f"model denoises {model.config.channels}-channel images, got "
            f"{_channels(images)}-channel ones {tuple(images.shape[1:])}"
        )
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = _to_tensor(images[s : s + batch_size])
            out.append(_to_uint8(model(x), images.ndim == 3))
    model.train(was_training)
    return np.concatenate(out) if out else images.copy()


# ------------------------------------------------------------------------------------- data


def load_pairs(dataset_dir: str | Path, limit: int | None = None) -> tuple[Images, Images]:
    """``(noisy, clean)`` uint8 arrays of a dataset generated with ``outputs: {pairs: true}``:
    ``rgb`` is what the camera saw, ``clean`` the same image before the sensor. The first
    ``limit`` samples (all when None)."""
    from synthcv.format import open_dataset

    ds = open_dataset(dataset_dir)
    missing = (
        f"{dataset_dir}: the dataset has no 'clean' images, so no (noisy, clean) pairs; "
        "generate it with outputs: {pairs: true}"
    )
    if "clean" not in ds.samples.column_names or ds.samples.column("clean").null_count == len(ds):
        raise ValueError(missing)
    n = len(ds) if limit is None else min(limit, len(ds))
    noisy, clean = [], []
    for i in range(n):
        item = ds.read(i, ("rgb", "clean"))
        if item["clean"] is None or item["rgb"] is None:
            raise ValueError(f"{dataset_dir}: sample {item['index']} has no 'rgb' or 'clean' image")
        if item["rgb"].shape != item["clean"].shape:
            raise ValueError(
                f"{dataset_dir}: sample {item['index']}: rgb {item['rgb'].shape} and clean "
                f"{item['clean'].shape} differ in shape"
            )
        if noisy and item["rgb"].shape != noisy[0].shape:
            raise ValueError(
                f"{dataset_dir}: sample {item['index']} is {item['rgb'].shape}, the first one "
                f"{noisy[0].shape}; denoising needs images of one size"
            )
        noisy.append(item["rgb"])
        clean.append(item["clean"])
    if not noisy:
        raise ValueError(f"{dataset_dir}: no samples to read")
    return _as_images(np.stack(noisy)), _as_images(np.stack(clean))


def _as_images(a: np.ndarray) -> Images:
    """Drop an alpha channel, keep grayscale and RGB; uint8 as the codecs give it."""
    if a.ndim == 4 and a.shape[-1] == 4:
        a = a[..., :3]
    _channels(a)
    return np.ascontiguousarray(a.astype(np.uint8, copy=False))


def split_pairs(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` sorted indexes of ``n`` pairs: a seeded cut, at least one of each.
    Choices are made on ``val`` only, so the test set never tunes anything."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: got {val_fraction}, expected a value in (0, 1)")
    if n < 2:
        raise ValueError(f"need at least 2 pairs for a train/val cut, got {n}")
    k = min(max(1, round(n * val_fraction)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


# ----------------------------------------------------------------------------------- metrics


def psnr(clean: Images, test: Images) -> float:
    """Mean per-image PSNR in dB (data range 255; an exact copy scores :data:`PSNR_CAP`)."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    vals = []
    for c, t in zip(clean, test, strict=True):
        if mean_squared_error(c, t) == 0:
            vals.append(PSNR_CAP)
        else:
            vals.append(min(PSNR_CAP, peak_signal_noise_ratio(c, t, data_range=255)))
    return float(np.mean(vals))


def ssim(clean: Images, test: Images) -> float:
    """Mean per-image SSIM (data range 255; RGB over its channel axis; the window shrinks to
    fit images under 7 pixels)."""
    from skimage.metrics import structural_similarity

    axis = -1 if clean.ndim == 4 else None
    side = min(clean.shape[1], clean.shape[2])
    win = min(7, side if side % 2 else side - 1)
    vals = [
        structural_similarity(c, t, data_range=255, channel_axis=axis, win_size=win)
        for c, t in zip(clean, test, strict=True)
    ]
    return float(np.mean(vals))


def evaluate(methods: Mapping[str, Method], noisy: Images, clean: Images) -> list[dict[str, Any]]:
    """One row per method ``{method, psnr, ssim, n}``, the noisy input first as the floor a
    denoiser must beat."""
    rows = [{"method": NOISY_ROW, "psnr": psnr(clean, noisy), "ssim": ssim(clean, noisy)}]
    for name, method in methods.items():
        out = method(noisy)
        rows.append({"method": name, "psnr": psnr(clean, out), "ssim": ssim(clean, out)})
    return [{**r, "n": len(clean)} for r in rows]


# --------------------------------------------------------------------------------- classical


def _per_image(images: Images, fn: Callable[[np.ndarray, int | None], np.ndarray]) -> Images:
    """Apply ``fn(float image in [0, 1], channel_axis)`` per image and return uint8."""
    axis = -1 if images.ndim == 4 else None
    out = np.empty_like(images)
    for i, im in enumerate(images):
        res = fn(im.astype(np.float64) / 255.0, axis)
        out[i] = np.clip(np.round(res * 255.0), 0, 255).astype(np.uint8)
    return out


def nl_means(images: Images) -> Images:
    """Non-local means with each image's noise σ estimated (scikit-image's ``estimate_sigma``,
    averaged over channels) and h = 0.8 σ, the scikit-image recommendation when σ is given."""
    from skimage.restoration import denoise_nl_means, estimate_sigma

    def one(im: np.ndarray, axis: int | None) -> np.ndarray:
        sigma = float(estimate_sigma(im, average_sigmas=True, channel_axis=axis))
        return denoise_nl_means(
            im,
            h=0.8 * sigma,
            sigma=sigma,
            patch_size=5,
            patch_distance=6,
            fast_mode=True,
            preserve_range=True,
            channel_axis=axis,
        )

    return _per_image(images, one)


def total_variation(images: Images, weight: float) -> Images:
    """Chambolle's total-variation denoising at ``weight`` (on images in [0, 1])."""
    from skimage.restoration import denoise_tv_chambolle

    return _per_image(
        images, lambda im, axis: denoise_tv_chambolle(im, weight=weight, channel_axis=axis)
    )


def wavelet(images: Images) -> Images:
    """Wavelet shrinkage, BayesShrink with the noise σ estimated per image (RGB in YCbCr)."""
    from skimage.restoration import denoise_wavelet

    def one(im: np.ndarray, axis: int | None) -> np.ndarray:
        return denoise_wavelet(
            im,
            method="BayesShrink",
            mode="soft",
            rescale_sigma=True,
            convert2ycbcr=axis is not None,
            channel_axis=axis,
        )

    return _per_image(images, one)


def choose_tv_weight(
    noisy_val: Images, clean_val: Images, weights: Sequence[float] = TV_WEIGHTS
) -> tuple[float, dict[float, float]]:
    """The TV weight with the best mean PSNR on the validation pairs (ties: the smaller
    weight), and every weight's score."""
    scores = {float(w): psnr(clean_val, total_variation(noisy_val, w)) for w in weights}
    best = max(sorted(scores), key=lambda w: scores[w])
    return best, scores


WAVELET_ROW = "wavelet (BayesShrink)"


def classical_methods(tv_weight: float) -> dict[str, Method]:
    """The classical baselines, the TV weight already chosen on validation."""
    return {
        "non-local means": nl_means,
        f"total variation (weight {tv_weight:g})": lambda x: total_variation(x, tv_weight),
        WAVELET_ROW: wavelet,
    }


# ---------------------------------------------------------------------------------- training


def _crop_batch(
    noisy: Images, clean: Images, idx: np.ndarray, patch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``patch``² crops of pairs ``idx`` with the same random flips on both."""
    h, w = noisy.shape[1], noisy.shape[2]
    ys = rng.integers(0, h - patch + 1, len(idx))
    xs = rng.integers(0, w - patch + 1, len(idx))
    flips = rng.integers(0, 2, (len(idx), 3))  # horizontal, vertical, transpose
    xn, xc = [], []
    for j, y, x, f in zip(idx, ys, xs, flips, strict=True):
        a = noisy[j, y : y + patch, x : x + patch]
        b = clean[j, y : y + patch, x : x + patch]
        if f[0]:
            a, b = a[:, ::-1], b[:, ::-1]
        if f[1]:
            a, b = a[::-1], b[::-1]
        if f[2]:
            a, b = a.swapaxes(0, 1), b.swapaxes(0, 1)
        xn.append(a)
        xc.append(b)
    return _to_tensor(np.stack(xn)), _to_tensor(np.stack(xc))


def _check_pairs(noisy: Images, clean: Images, what: str) -> None:
    if noisy.shape != clean.shape:
        raise ValueError(f"{what}: noisy {noisy.shape} and clean {clean.shape} differ in shape")
    if noisy.dtype != np.uint8 or clean.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 images, got {noisy.dtype} and {clean.dtype}")
    if len(noisy) == 0:
        raise ValueError(f"{what}: no pairs")
    _channels(noisy)


Progress = Callable[[int, int, float | None], None]


def train_denoiser(
    noisy: Images,
    clean: Images,
    *,
    steps: int = 1000,
    batch_size: int = 16,
    patch: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    val: tuple[Images, Images] | None = None,
    depth: int = 8,
    width: int = 32,
    eval_every: int | None = None,
    progress: Progress | None = None,
) -> tuple[DnCNN, list[dict[str, float]]]:
    """Train a :class:`DnCNN` on random flipped ``patch``² crops (Adam, MSE on the predicted
    noise), scoring the validation pairs every ``eval_every`` steps (default: 10 times) and at
    step 0. Returns the model with the best validation PSNR's weights (ties: the earliest; the
    last step's without ``val``) and the history ``[{step, loss, val_psnr}]``. The same seed
    and inputs give the same weights. ``progress(step, steps, val_psnr or None)`` is called
    after every step."""
    noisy, clean = np.asarray(noisy), np.asarray(clean)
    _check_pairs(noisy, clean, "training pairs")
    if val is not None:
        _check_pairs(np.asarray(val[0]), np.asarray(val[1]), "validation pairs")
        if _channels(np.asarray(val[0])) != _channels(noisy):
            raise ValueError("validation pairs and training pairs differ in channels")
    if steps < 1 or batch_size < 1 or patch < 1:
        raise ValueError(
            f"steps, batch_size and patch must be positive, got {steps}, {batch_size}, {patch}"
        )
    patch = min(patch, noisy.shape[1], noisy.shape[2])
    eval_every = eval_every or max(1, steps // 10)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = DnCNN(DenoiserConfig(channels=_channels(noisy), depth=depth, width=width))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None

    def score(step: int, loss: float) -> float | None:
        nonlocal best
        if val is None:
            history.append({"step": step, "loss": loss})
            return None
        p = psnr(val[1], denoise(model, val[0]))
        history.append({"step": step, "loss": loss, "val_psnr": p})
        if best is None or p > best[0]:
            best = (p, copy.deepcopy(model.state_dict()))
        return p

    score(0, math.nan)
    model.train()
    loss_sum, loss_n = 0.0, 0
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(noisy), batch_size)
        xn, xc = _crop_batch(noisy, clean, idx, patch, rng)
        loss = nn.functional.mse_loss(model.body(xn), xn - xc)  # the residual: the noise
        if not math.isfinite(value := loss.item()):
            raise FloatingPointError(f"denoiser training diverged at step {step} (lr {lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += value
        loss_n += 1
        val_psnr = None
        if step % eval_every == 0 or step == steps:
            val_psnr = score(step, loss_sum / loss_n)
            loss_sum, loss_n = 0.0, 0
            model.train()
        if progress is not None:
            progress(step, steps, val_psnr)
    if best is not None:
        model.load_state_dict(best[1])
    return model.eval(), history


def best_step(history: Sequence[Mapping[str, float]]) -> int | None:
    """The step whose weights :func:`train_denoiser` kept (best validation PSNR, earliest)."""
    scored = [h for h in history if "val_psnr" in h]
    if not scored:
        return None
    top = max(h["val_psnr"] for h in scored)
    return int(next(h["step"] for h in scored if h["val_psnr"] == top))


# -------------------------------------------------------------------------------- save, load


def save_denoiser(
    model: DnCNN, run_dir: str | Path, extra: Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``model.pt`` (the state dict) and ``config.json`` (``{kind, model, ...extra}``)
    into ``run_dir``, each atomically."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        tmp.write_bytes(buf.getvalue())
    cfg = {**(extra or {}), "kind": CHECKPOINT_KIND, "model": asdict(model.config)}
    write_json_atomic(run_dir / CONFIG_FILE, cfg)
    return run_dir / MODEL_FILE, run_dir / CONFIG_FILE


def load_denoiser(run_dir: str | Path) -> DnCNN:
    """The model a :func:`save_denoiser` run dir holds, in eval mode on the CPU."""
    run_dir = Path(run_dir)
    cfg_path, model_path = run_dir / CONFIG_FILE, run_dir / MODEL_FILE
    for p in (cfg_path, model_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file (expected a `synthcv denoise train` run)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{cfg_path}: not a denoiser config (kind {CHECKPOINT_KIND!r})")
    try:
        model = DnCNN(DenoiserConfig(**cfg["model"]))
        model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(
            f"{model_path}: does not match {cfg_path} ({str(exc).splitlines()[0]})"
        ) from None
    return model.eval()


# ------------------------------------------------------------------------------------- a run


def results_markdown(results: Mapping[str, Any]) -> str:
    """The results table: PSNR/SSIM per method on validation, and on test when scored."""
    test = results.get("test")
    head = "| method | val PSNR (dB) | val SSIM |"
    rule = "|---|---|---|"
    if test:
        head += " test PSNR (dB) | test SSIM |"
        rule += "---|---|"
    test_rows = {r["method"]: r for r in test or []}
    lines = [head, rule]
    for r in results["val"]:
        line = f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
        if test:
            t = test_rows[r["method"]]
            line += f" {t['psnr']:.2f} | {t['ssim']:.4f} |"
        lines.append(line)
    n = f"{results['n_train']} train, {results['n_val']} val pairs"
    if test:
        n += f", {results['n_test']} test pairs (scored once, chose nothing)"
    choices = results["choices"]
    notes = [
        "",
        f"{n}; chosen on validation: TV weight {choices['tv_weight']:g}, "
        f"DnCNN checkpoint of step {choices['best_step']}.",
    ]
    return "\n".join(lines + notes) + "\n"


def train_and_evaluate(
    dataset: str | Path,
    out: str | Path,
    *,
    test: str | Path | None = None,
    val_fraction: float = 0.1,
    limit: int | None = None,
    steps: int = 1000,
    batch_size: int = 16,
    patch: int = 64,
    lr: float = 1e-3,
    depth: int = 8,
    width: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``synthcv denoise train``: learn on ``dataset``'s train part, choose the checkpoint and
    the TV weight on its val part, score every method on val (and on ``test``'s pairs, once,
    at the end), and write model.pt, config.json, results.json and results.md into ``out``."""
    noisy, clean = load_pairs(dataset, limit)
    test_pairs = load_pairs(test, limit) if test is not None else None
    if test_pairs is not None and _channels(test_pairs[0]) != _channels(noisy):
        raise ValueError(f"{test}: its images differ in channels from {dataset}'s")
    tr, va = split_pairs(len(noisy), val_fraction, seed)
    val = (noisy[va], clean[va])
    settings = {
        "steps": steps,
        "batch_size": batch_size,
        "patch": patch,
        "lr": lr,
        "seed": seed,
        "val_fraction": val_fraction,
        "limit": limit,
    }
    model, history = train_denoiser(
        noisy[tr],
        clean[tr],
        val=val,
        depth=depth,
        width=width,
        progress=progress,
        **{k: settings[k] for k in ("steps", "batch_size", "patch", "lr", "seed")},
    )
    tv_weight, tv_scores = choose_tv_weight(*val)
    methods: dict[str, Method] = {
        **classical_methods(tv_weight),
        "DnCNN (learned)": lambda x: denoise(model, x),
    }
    results: dict[str, Any] = {
        "dataset": str(dataset),
        "test_dataset": None if test is None else str(test),
        "n_train": len(tr),
        "n_val": len(va),
        "n_test": 0 if test_pairs is None else len(test_pairs[0]),
        "settings": settings,
        "choices": {
            "tv_weight": tv_weight,
            "tv_val_psnr": {f"{w:g}": s for w, s in tv_scores.items()},
            "best_step": best_step(history),
        },
        "history": history,
        "val": evaluate(methods, *val),
        "test": None if test_pairs is None else evaluate(methods, *test_pairs),
    }
    out = Path(out)
    save_denoiser(model, out, {"dataset": str(dataset), "train": settings})
    write_json_atomic(out / RESULTS_JSON, _finite(results))
    write_text_atomic(out / RESULTS_MD, results_markdown(results))
    return results


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def apply_denoiser(run_dir: str | Path, source: str | Path, out: str | Path) -> list[Path]:
    """``synthcv denoise apply``: denoise every image of ``source`` (a dataset's ``rgb``
    images, or the image files of a folder) with the model of ``run_dir``, one PNG each in
    ``out`` (a dataset's as ``{sample_index:06d}.png``, a folder's under its own stem)."""
    from PIL import Image

    model = load_denoiser(run_dir)
    mode = "L" if model.config.channels == 1 else "RGB"
    source, out = Path(source), Path(out)
    items: list[tuple[str, Callable[[], np.ndarray]]]
    if (source / "manifest.json").is_file():
        from synthcv.format import open_dataset

        ds = open_dataset(source)
        items = [
            (f"{int(idx):06d}", lambda j=j: ds.read(j, ("rgb",))["rgb"])
            for j, idx in enumerate(ds.samples.column("sample_index").to_pylist())
        ]
    elif source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) and no dataset")
        items = [(p.stem, lambda p=p: np.asarray(Image.open(p))) for p in files]
    else:
        raise FileNotFoundError(f"{source}: no such dataset or image folder")
    written = []
    for stem, read in items:
        img = np.asarray(Image.fromarray(read()).convert(mode))
        den = denoise(model, img[None])[0]
        path = out / f"{stem}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(den).save(tmp, format="PNG")
        written.append(path)
    return written


def _finite(obj: Any) -> Any:
    """NaN (the step-0 loss) as null, so results.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
