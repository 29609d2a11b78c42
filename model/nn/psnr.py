"""PSNR from a mean squared error: the one formula the codecs, training and evaluation share."""

from __future__ import annotations

import math

import numpy as np


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """10 log10(peak² / MSE) in dB; ``inf`` when the MSE is 0. ``peak``: 255 for 8-bit pixels, 1 for [0, 1]."""
    return math.inf if mse == 0 else float(10.0 * np.log10(peak**2 / mse))
