"""The realized sensor settings of one sample (drawn by the sampler from the spec's ``sensor:``).

Every stage is optional: ``None`` switches it off, and a sample whose stages are all off is
written exactly as the renderer produced it (byte for byte).
"""

from __future__ import annotations

from dataclasses import dataclass

from synthcv.sensor.lens import Distortion

#: The ISO at which ``full_well`` electrons fill the output (gain 1).
BASE_ISO = 100.0


@dataclass(frozen=True)
class Noise:
    full_well: float  # electrons that fill the output at BASE_ISO
    read_noise: float  # electrons, rms
    bit_depth: int  # the ADC's


@dataclass(frozen=True)
class Defocus:
    focus_distance: float  # metres
    f_number: float
    focal_length_mm: float


@dataclass(frozen=True)
class SensorParams:
    distortion: Distortion | None = None
    chromatic_aberration: float | None = None  # lateral: red scaled by 1 + a, blue by 1 - a
    vignetting: float | None = None  # share of the cos⁴ fall-off applied, 0..1
    defocus: Defocus | None = None
    motion_blur: tuple[float, float] | None = None  # (length px, angle degrees)
    exposure_ev: float | None = None  # light on the sensor relative to the render, stops
    iso: float | None = None  # gain = iso / BASE_ISO
    noise: Noise | None = None
    white_balance: tuple[float, float] | None = None  # red, blue gains (green 1)
    response: str = "srgb"  # "srgb" | "gamma" | "linear"
    gamma: float = 2.2
    jpeg_quality: int | None = None
    seed: int = 0  # of the noise

    @property
    def geometric(self) -> bool:
        return self.distortion is not None and not self.distortion.is_identity

    @property
    def photometric(self) -> bool:
        """Does any stage change pixel values (beyond the lens's resampling)?"""
        return (
            bool(self.chromatic_aberration)
            or bool(self.vignetting)
            or self.defocus is not None
            or (self.motion_blur is not None and self.motion_blur[0] > 0)
            or (self.exposure_ev is not None and self.exposure_ev != 0)
            or (self.iso is not None and self.iso != BASE_ISO)
            or self.noise is not None
            or (self.white_balance is not None and self.white_balance != (1.0, 1.0))
            or self.response != "srgb"
            or self.jpeg_quality is not None
        )

    @property
    def gain(self) -> float:
        return (self.iso if self.iso is not None else BASE_ISO) / BASE_ISO
