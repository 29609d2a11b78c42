"""cdc-avif's encoder gate (issue 30): where the full network would lose to the AVIF base (text, graphics,
flat areas), the encoder writes a strength that weighs the network's residual, and the decode is then no
worse than the base; images the network improves keep their bytes; a hostile strength is refused."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from model import load_codec, runs_network, unpack
from model.codecs.base_layer import (
    STRENGTH_TAG,
    base_payload,
    read_base_payload,
    with_strength,
)
from model.evaluation.metrics import psnr
from model.format import BitstreamError, Container, pack

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def codec():
    return load_codec("cdc-avif-mse")


def text_image() -> np.ndarray:
    img = Image.new("RGB", (128, 96), "white")
    draw = ImageDraw.Draw(img)
    for row in range(4):
        draw.text((4, 4 + 20 * row), "gate 0123 fox", fill=(0, 0, 0))
    return np.asarray(img)


def photo() -> np.ndarray:
    with tarfile.open(REPO / "examples" / "corpus" / "shard-000000.tar") as tar:
        return np.asarray(Image.open(io.BytesIO(tar.extractfile("img0001.jpg").read())).convert("RGB"))


def base_of(blob: bytes, rgb: np.ndarray):
    return read_base_payload(unpack(blob).strings[0], *rgb.shape[:2], "test")


@pytest.mark.parametrize("name", ["flat", "text"])
def test_where_the_network_loses_the_gated_decode_is_no_worse_than_the_base(codec, name):
    rgb = np.full((64, 96, 3), 200, np.uint8) if name == "flat" else text_image()
    plain, gated = codec.encode([rgb], quality=30)[0], codec.encode([rgb], quality=30, gate=True)[0]
    base = base_of(gated, rgb)
    assert np.array_equal(base.rgb, base_of(plain, rgb).rgb)  # the same AVIF base under the head
    full, weighed = psnr(rgb, codec.decode([plain], engine="torch")[0]), psnr(rgb, codec.decode([gated], engine="torch")[0])
    assert full < psnr(rgb, base.rgb)  # the case the gate is for: the network alone loses to the base
    assert base.strength < 1 and weighed >= psnr(rgb, base.rgb) and weighed > full  # exact on eager torch
    assert codec.describe(gated)["strength"] == f"{round(base.strength * 16)}/16"
    if base.strength == 0:  # the network is off: the base's pixels exactly, on every engine
        for engine in ("torch", "onnx-int8"):
            assert np.array_equal(np.asarray(codec.decode([gated], engine=engine)[0]), base.rgb)


def test_where_the_network_helps_the_gate_keeps_the_bytes(codec):
    rgb = photo()[:96, :128]
    plain = codec.encode([rgb], quality=60)[0]
    assert psnr(rgb, codec.decode([plain], engine="torch")[0]) > psnr(rgb, base_of(plain, rgb).rgb)
    assert codec.encode([rgb], quality=60, gate=True)[0] == plain
    assert "strength" not in codec.describe(plain)


def test_a_strength_outside_sixteenths_is_refused(codec):
    rgb = np.full((32, 32, 3), 90, np.uint8)
    payload = with_strength(base_payload(rgb, 30), 3)
    assert payload[0] == STRENGTH_TAG and read_base_payload(payload, 32, 32, "test").strength == 3 / 16
    for bad in (payload[:4] + bytes([16]) + payload[5:], payload[:4]):
        blob = pack(Container(codec.codec_id, 32, 32, "RGB", (bad,)))
        with pytest.raises(BitstreamError, match="strength byte"):
            codec.decode([blob])
    with pytest.raises(ValueError, match="not 0..15"):
        with_strength(base_payload(rgb, 30), 16)


def test_a_gated_encode_is_planned_as_one_that_runs_the_network(codec):
    """The jobs book workers (and GPUs) for an encode that runs a network: with the gate, it does."""
    assert not runs_network(codec, "encode") and not runs_network(codec, "encode", {"gate": False})
    assert runs_network(codec, "encode", {"gate": True})
