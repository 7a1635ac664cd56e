"""Colour temperature → linear RGB: Planck's law seen through the CIE 1931 observer.

A lamp's colour is the chromaticity of a black body at its temperature, converted to linear
sRGB (Rec. 709 primaries, D65 white) and scaled so the largest channel is 1; brightness comes
from the lamp's power alone. The CIE 1931 2° colour-matching functions are the multi-lobe
Gaussian fit of Wyman, Sloan and Shirley (JCGT 2013), accurate to a few thousandths in
chromaticity, so no table has to ship. docs/environments.md lists the RGB of common
temperatures.
"""

from __future__ import annotations

import functools

import numpy as np

#: The range a lamp's temperature may take (candle flame … clear blue sky).
MIN_KELVIN, MAX_KELVIN = 1000.0, 40000.0

_H, _C, _K = 6.62607015e-34, 2.99792458e8, 1.380649e-23
_NM = np.arange(360.0, 831.0, 1.0)
#: XYZ → linear sRGB (IEC 61966-2-1).
XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def _lobe(nm: np.ndarray, mu: float, s_lo: float, s_hi: float) -> np.ndarray:
    s = np.where(nm < mu, s_lo, s_hi)
    return np.exp(-0.5 * ((nm - mu) / s) ** 2)


@functools.cache
def _cmf() -> np.ndarray:
    """(3, N) x̄, ȳ, z̄ at 1 nm from 360 to 830 nm (Wyman et al. 2013, multi-lobe fit)."""
    nm = _NM
    x = (
        1.056 * _lobe(nm, 599.8, 37.9, 31.0)
        + 0.362 * _lobe(nm, 442.0, 16.0, 26.7)
        - 0.065 * _lobe(nm, 501.1, 20.4, 26.2)
    )
    y = 0.821 * _lobe(nm, 568.8, 46.9, 40.5) + 0.286 * _lobe(nm, 530.9, 16.3, 31.1)
    z = 1.217 * _lobe(nm, 437.0, 11.8, 36.0) + 0.681 * _lobe(nm, 459.0, 26.0, 13.8)
    return np.stack([x, y, z])


def blackbody_xyz(kelvin: float) -> np.ndarray:
    """CIE XYZ of a black body at ``kelvin``, normalised to Y = 1."""
    if not MIN_KELVIN <= float(kelvin) <= MAX_KELVIN:
        raise ValueError(
            f"colour temperature: got {kelvin} K, expected {MIN_KELVIN:g}..{MAX_KELVIN:g}"
        )
    lam = _NM * 1e-9
    radiance = 1.0 / (lam**5 * np.expm1(_H * _C / (lam * _K * float(kelvin))))
    xyz = _cmf() @ radiance
    return xyz / xyz[1]


def chromaticity(kelvin: float) -> tuple[float, float]:
    """CIE 1931 (x, y) of a black body."""
    x, y, z = blackbody_xyz(kelvin)
    return float(x / (x + y + z)), float(y / (x + y + z))


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Linear sRGB of a black body at ``kelvin``, largest channel 1, out-of-gamut parts 0."""
    rgb = np.clip(XYZ_TO_SRGB @ blackbody_xyz(kelvin), 0.0, None)
    return tuple(float(c) for c in rgb / rgb.max())  # type: ignore[return-value]
