"""What a camera does to the light after the lens has placed it: the photometric stages.

Fixed order (docs/sensor.md), each stage a function of the linear image:

1. decode the render (sRGB-encoded uint8) to linear light;
2. optics: lateral chromatic aberration, vignetting (cos⁴), defocus from depth (thin lens),
   motion blur (a line PSF centred on the exposure midpoint, so labels stay put);
3. sensor: exposure (stops), photon shot noise (Poisson in electrons), read noise
   (Gaussian), analog gain (ISO), full-well and ADC clipping, ADC quantisation;
4. processing: white balance gains, the response curve (sRGB, gamma or linear), 8-bit;
5. JPEG compression.

Noise is drawn from ``SensorParams.seed`` only, so a sample is deterministic and independent
of every other sample and of worker count.
"""

from __future__ import annotations

import io

import numpy as np

from synthcv.sensor.params import Defocus, Noise, SensorParams

#: Largest defocus blur diameter rendered, pixels (larger circles of confusion are clipped).
MAX_COC_PX = 48


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    c = np.asarray(encoded, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _sample_bilinear(channel: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    return map_coordinates(channel, [y, x], order=1, mode="nearest")


def chromatic_aberration(img: np.ndarray, K: np.ndarray, amount: float) -> np.ndarray:
    """Lateral chromatic aberration: red magnified by ``1 + amount`` and blue by
    ``1 - amount`` about the principal point; green (where labels are defined) stays."""
    if img.ndim != 3 or amount == 0:
        return img
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    out = img.copy()
    for c, scale in ((0, 1 + amount), (2, 1 - amount)):
        sx = K[0, 2] + (xs - K[0, 2]) / scale
        sy = K[1, 2] + (ys - K[1, 2]) / scale
        out[..., c] = _sample_bilinear(img[..., c], sx, sy)
    return out


def vignetting_gain(K: np.ndarray, width: int, height: int, strength: float) -> np.ndarray:
    """``(1 - s) + s · cos⁴θ``, θ the angle of each pixel's ray to the optical axis: s = 1 is
    the natural fall-off of an ideal thin lens."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    tan2 = ((xs - K[0, 2]) / K[0, 0]) ** 2 + ((ys - K[1, 2]) / K[1, 1]) ** 2
    cos4 = 1.0 / (1.0 + tan2) ** 2
    return (1.0 - strength) + strength * cos4


def circle_of_confusion(depth: np.ndarray, fx: float, d: Defocus) -> np.ndarray:
    """Blur-circle diameter in pixels of a thin lens focused at ``focus_distance``:
    ``c = A · fx · |1/d_f − 1/d|`` with aperture diameter ``A = f / N`` (metres) — the
    thin-lens formula for an object distance much larger than the focal length. Depth 0
    (nothing hit) counts as infinitely far."""
    aperture = d.focal_length_mm / 1000.0 / d.f_number
    inv = np.divide(1.0, depth, out=np.zeros(depth.shape, np.float64), where=depth > 0)
    return aperture * fx * np.abs(1.0 / d.focus_distance - inv)


def _disk(diameter: int) -> np.ndarray:
    r = diameter / 2.0
    n = int(np.ceil(r)) * 2 + 1
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    # anti-aliased disk: 4×4 supersampled coverage of each tap
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    cover = np.zeros((n, n))
    for dy in sub:
        for dx in sub:
            cover += (xx + dx) ** 2 + (yy + dy) ** 2 <= r * r
    return cover / cover.sum()


def _convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    pad = ((ph, ph), (pw, pw)) + ((0, 0),) * (img.ndim - 2)
    padded = np.pad(img, pad, mode="edge")
    k = kernel if img.ndim == 2 else kernel[..., None]
    return fftconvolve(padded, k, mode="valid", axes=(0, 1))


def defocus(img: np.ndarray, depth: np.ndarray, fx: float, d: Defocus) -> np.ndarray:
    """Depth-dependent disk blur (gather approximation): the image blurred at each integer
    blur diameter, and each pixel interpolated between the two levels around its own."""
    coc = np.clip(circle_of_confusion(depth, fx, d), 0, MAX_COC_PX)
    if coc.max() < 1.0:
        return img
    lo = np.floor(coc).astype(np.int64)
    frac = coc - lo
    out = np.zeros_like(img)
    levels = np.unique(np.concatenate([lo.ravel(), np.minimum(lo + 1, MAX_COC_PX).ravel()]))
    blurred: dict[int, np.ndarray] = {}
    for level in levels:
        blurred[int(level)] = img if level <= 1 else _convolve(img, _disk(int(level)))
    for level in np.unique(lo):
        sel = lo == level
        a = blurred[int(level)][sel]
        b = blurred[int(min(level + 1, MAX_COC_PX))][sel]
        f = frac[sel] if img.ndim == 2 else frac[sel][:, None]
        out[sel] = a * (1 - f) + b * f
    return out


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line PSF of ``length`` pixels at ``angle_deg`` (counter-clockwise from
    +x, image y down), centred, anti-aliased by bilinear splatting of 8 samples per pixel."""
    half = int(np.ceil(length / 2)) + 1
    n = 2 * half + 1
    k = np.zeros((n, n))
    steps = max(2, int(np.ceil(length * 8)))
    t = np.linspace(-length / 2, length / 2, steps)
    a = np.radians(angle_deg)
    xs, ys = half + t * np.cos(a), half - t * np.sin(a)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(k, (y0 + dy, x0 + dx), wgt)
    return k / k.sum()


def motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    if length <= 0:
        return img
    return _convolve(img, motion_kernel(length, angle_deg))


def expected_variance(mean: np.ndarray | float, noise: Noise, gain: float) -> np.ndarray | float:
    """Variance of the normalised raw output of a flat patch whose output mean is ``mean``.

    With μ_e = mean · FW / g electrons collected: shot noise g²·μ_e/FW² = ``g·mean/FW``, read
    noise ``(g·σ_r/FW)²``, ADC quantisation ``q²/12`` (q = one ADC step); clipping ignored."""
    q = 1.0 / (2**noise.bit_depth - 1)
    return (
        gain * np.asarray(mean) / noise.full_well
        + (gain * noise.read_noise / noise.full_well) ** 2
        + q * q / 12
    )


def sensor_raw(linear: np.ndarray, p: SensorParams, rng: np.random.Generator) -> np.ndarray:
    """Linear light at the sensor → the ADC's normalised output in [0, 1].

    ``full_well`` electrons fill the output at gain 1 (ISO 100); electrons above the full well
    saturate; at gain g the output clips at ``FW / g`` electrons."""
    light = linear * (2.0 ** (p.exposure_ev or 0.0))
    gain = p.gain
    if p.noise is None:
        return np.clip(light * gain, 0.0, 1.0)
    fw = p.noise.full_well
    electrons = rng.poisson(np.clip(light, 0, None) * fw).astype(np.float64)
    electrons = np.minimum(electrons, fw)
    electrons += rng.normal(0.0, p.noise.read_noise, size=electrons.shape)
    levels = 2**p.noise.bit_depth - 1
    return np.clip(np.round(electrons * gain / fw * levels), 0, levels) / levels


def respond(raw: np.ndarray, p: SensorParams) -> np.ndarray:
    """White balance, then the response curve; returns encoded values in [0, 1]."""
    out = raw
    if p.white_balance is not None and raw.ndim == 3:
        out = raw * np.array([p.white_balance[0], 1.0, p.white_balance[1]])
    out = np.clip(out, 0.0, 1.0)
    if p.response == "srgb":
        return linear_to_srgb(out)
    if p.response == "gamma":
        return np.power(out, 1.0 / p.gamma)
    return out


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with libjpeg through Pillow (4:2:0 chroma, Pillow's default)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.array(im.convert(Image.fromarray(img).mode))


def apply_photometric(
    rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, p: SensorParams
) -> np.ndarray:
    """The photometric stages, in the module's order, on one rendered uint8 image."""
    if not p.photometric:
        return rgb
    rng = np.random.default_rng(p.seed)
    img = srgb_to_linear(rgb.astype(np.float64) / 255.0)
    h, w = img.shape[:2]
    if p.chromatic_aberration:
        img = chromatic_aberration(img, K, p.chromatic_aberration)
    if p.vignetting:
        gain = vignetting_gain(K, w, h, p.vignetting)
        img = img * (gain if img.ndim == 2 else gain[..., None])
    if p.defocus is not None:
        img = defocus(img, depth, float(K[0, 0]), p.defocus)
    if p.motion_blur is not None:
        img = motion_blur(img, *p.motion_blur)
    encoded = respond(sensor_raw(img, p, rng), p)
    out = np.round(encoded * 255.0).astype(np.uint8)
    if p.jpeg_quality is not None:
        out = jpeg_roundtrip(out, p.jpeg_quality)
    return out
