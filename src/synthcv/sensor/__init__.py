"""The camera after the renderer (issue #22): lens distortion that moves every label, optics,
a physically based sensor (shot + read noise, gain, ADC), processing and JPEG.

``lens`` is the Brown–Conrady model; ``geometry`` moves a rendered sample and its labels
through it; ``photometric`` holds the pixel stages in their fixed order; ``params`` the
realized settings of one sample (docs/sensor.md).
"""
