"""The real MNIST digits are data beside the repository, not part of it: tests that need them
skip with one reason when they are absent."""

from __future__ import annotations

import pytest

from synthcv.realdata import find_mnist8000

try:
    find_mnist8000()
    HAVE_MNIST = True
except FileNotFoundError:
    HAVE_MNIST = False

needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="mnist-real-8000.npz not present")
