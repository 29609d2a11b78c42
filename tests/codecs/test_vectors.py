"""Committed bitstreams of every family (tests/vectors/) still decode bit for bit.

The vectors were written by the code before the codec registry refactor (see
tests/vectors/make_vectors.py); a changed hash means old archives would decode differently.
"""

import json
from functools import cache
from pathlib import Path

import pytest
import torch
from vectors.make_vectors import pixel_sha256

from model import load_codec_for_id, unpack
from model.codec import declared

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ENTRIES = json.loads((VECTORS / "vectors.json").read_text())


@cache
def codec_for(codec_id: str):
    return load_codec_for_id(codec_id)


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_family_has_vectors():
    families = {e["codec_id"].split("-")[0] for e in ENTRIES}
    assert families >= {"jpeg", "webp", "avif", "hyperprior", "cdc"}
    assert any(e["decode"].get("gamma", 0) > 0 for e in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_vector_decodes_bit_exactly(entry, one_thread):
    blob = (VECTORS / entry["file"]).read_bytes()
    assert unpack(blob).codec_id == entry["codec_id"]
    codec = codec_for(entry["codec_id"])
    # the vectors are eager-torch decodes: where a codec has decode engines, pin torch (model/engine.py)
    pinned = {"engine": "torch"} if "engine" in declared(codec.options, "decode") else {}
    image = codec.decode([blob], **{**pinned, **entry["decode"]})[0]
    assert (image.mode, list(image.size)) == (entry["mode"], entry["size"])
    assert pixel_sha256(image) == entry["pixels_sha256"]
