"""Monitoring: is the data a model now sees still the data it was trained on?

``synthcv monitor REFERENCE CURRENT`` compares interpretable image features (brightness,
contrast, sharpness, noise, exposure, foreground size and position, colour), the class mix and
a classifier's embedding, with the tests in :mod:`synthcv.monitor.drift`, and exits 3 when it
finds drift so a scheduler can branch on it (issue #17).
"""

from synthcv.monitor.drift import DriftReport, FeatureDrift, detect_drift
from synthcv.monitor.features import image_features

__all__ = ["DriftReport", "FeatureDrift", "detect_drift", "image_features"]
