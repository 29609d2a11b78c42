"""Committed bitstreams of every family (tests/vectors/) still decode bit for bit, and the vectors that
record how they were encoded (every shipped cdc-avif weights file, its efforts, rate control and decode
presets; diffc-avif and diffc with two prefixes) still encode to the same bytes.

The first vectors were written by the code before the codec registry refactor (see
tests/vectors/make_vectors.py); a changed hash means old archives would decode differently.
"""

import hashlib
import json
from functools import cache
from pathlib import Path

import pytest
import torch
from vectors.make_vectors import EFFORTS, encoded_groups, pixel_sha256, reencoded, source_images, vector_decode

from model import load_codec, load_codec_for_id, unpack
from model.weights import WeightsResolver

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ENTRIES = json.loads((VECTORS / "vectors.json").read_text())
ENCODED = [e for e in ENTRIES if "encode" in e]


@cache
def codec_for(codec_id: str):
    return load_codec_for_id(codec_id)


@cache
def codec_named(name: str):
    return load_codec(name)


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_family_has_vectors():
    families = {e["codec_id"].split("-")[0] for e in ENTRIES}
    assert families >= {"jpeg", "webp", "avif", "hyperprior", "cdc", "diffc"}
    assert any(e["decode"].get("gamma", 0) > 0 for e in ENTRIES)


def test_every_shipped_codec_and_preset_has_encoded_vectors():
    """Each shipped cdc-avif weights file at every effort, under both rate controls and with each decode
    preset of its card; diffc-avif and diffc whole and at two prefixes: each for both source images."""
    cdc_avif = [w for w in WeightsResolver().local() if w.family == "cdc-avif"]
    assert {w.name for w in cdc_avif} >= {"cdc-avif-mse", "cdc-avif-m-mse", "cdc-avif-m-prior", "cdc-avif-m-realism"}
    recorded = {(e["encode"]["codec"], json.dumps(e["encode"]["options"]), json.dumps(e["decode"]),
                 e["encode"]["truncate_step"], e["encode"]["source"]) for e in ENCODED}
    wanted = {(name, json.dumps(enc), json.dumps(dec), step, source)
              for name, enc, dec, prefixes in encoded_groups() for step in (None, *prefixes)
              for source in source_images()}
    assert not wanted - recorded, "run tests/vectors/make_vectors.py to write the missing vectors"
    efforts = {(e["encode"]["codec"], e["encode"]["options"].get("effort")) for e in ENCODED}
    assert all((w.name, effort) in efforts for w in cdc_avif for effort in EFFORTS)
    assert {e["decode"].get("preset") for e in ENCODED if e["encode"]["codec"] == "cdc-avif-mse"} >= {"realism"}
    assert {(e["encode"]["codec"], e["encode"]["truncate_step"]) for e in ENCODED} >= {
        (f, s) for f in ("diffc-avif", "diffc") for s in (None, 1, 2)}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_vector_decodes_bit_exactly(entry, one_thread):
    blob = (VECTORS / entry["file"]).read_bytes()
    assert unpack(blob).codec_id == entry["codec_id"]
    image = vector_decode(codec_for(entry["codec_id"]), blob, entry["decode"])
    assert (image.mode, list(image.size)) == (entry["mode"], entry["size"])
    assert pixel_sha256(image) == entry["pixels_sha256"]


@cache
def encoded_stream(name: str, options: str, source: str) -> bytes:
    """The whole bitstream of one source image (DiffC prefixes share it)."""
    return reencoded(codec_named(name), source_images()[source], json.loads(options), None)


@pytest.mark.parametrize("entry", ENCODED, ids=lambda e: e["file"])
def test_vector_encodes_to_the_same_bytes(entry, one_thread):
    blob = (VECTORS / entry["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == entry["bitstream_sha256"], "the committed vector file changed"
    encode = entry["encode"]
    stream = encoded_stream(encode["codec"], json.dumps(encode["options"]), encode["source"])
    if encode["truncate_step"] is not None:
        from model.diffc.stream import truncate

        stream = truncate(stream, step=encode["truncate_step"])
    assert stream == blob, f"{encode['codec']} {encode['options']} no longer writes the bytes of {entry['file']}"
