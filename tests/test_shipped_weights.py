"""Smoke tests of the shipped weights on a real photograph (a Kodak crop from ../shared/data)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import list_codecs, load_codec, load_codec_for_id, unpack
from model.metrics import psnr

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim23.png"
# Floors only a trained model reaches, for a 256x256 crop at 4 steps. Random weights, and a CDC whose
# latent collapsed (every symbol zero), give 11-13 dB here. The shipped CDC is a preliminary CPU
# checkpoint (17.4 dB when this floor was set; see its card), the hyperprior 28.0 dB.
PSNR_FLOOR = {"cdc": 15.0, "hyperprior": 23.0}
BPP_RANGE = (0.02, 2.0)


def _shipped(family):
    return [i.name for i in list_codecs() if i.family == family]


@pytest.fixture(scope="module")
def photo():
    if not KODAK.exists():
        pytest.skip(f"{KODAK} not found: the shipped-weight smoke tests need ../shared/data/kodak")
    return np.asarray(Image.open(KODAK).convert("RGB"))[128:384, 256:512]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cdc", "hyperprior"])
def test_shipped_model_compresses_a_photo(family, photo):
    names = _shipped(family)
    if not names:
        pytest.skip(f"no shipped {family} weights in model/weights/")
    codec = load_codec(names[0])
    blob = codec.encode([photo])[0]
    assert load_codec_for_id(unpack(blob).codec_id).codec_id == codec.codec_id
    bpp = len(blob) * 8 / (photo.shape[0] * photo.shape[1])
    decoded = np.asarray(codec.decode([blob], steps=4)[0].convert("RGB"))
    quality = psnr(photo, decoded)
    print(f"{codec.codec_id}: {bpp:.3f} bpp, {quality:.2f} dB")
    assert BPP_RANGE[0] < bpp < BPP_RANGE[1]
    assert quality > PSNR_FLOOR[family]
