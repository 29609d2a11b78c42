"""The codec contract (model/codec.py), checked on every registered family: a new family passes it
without a test of its own.

Each family gives the suite codecs by its ``Evaluation.examples`` (names; WEIGHTS stands for a tiny random
weights file of the family whose cards it loads, made here from that family's ``NAME-tiny`` size in
its ``Networks.sizes``; a family with a network and such a size needs no examples).
The test plugins (tests/plugin_family.py) are included; the fault injectors (tests/faulty_family.py)
fail on purpose and are not. Images are tiny so that every family runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import plugin_family
from model import (BitstreamError, OptionError, build_network, codec_from_network, families, load_codec,
                   load_codec_for_id, unpack)
from model.codec import declared
from model.nn.weights_file import save_weights
from model.weights import objective_card

FAULT_INJECTORS = {"faulty", "stall"}  # tests/faulty_family.py: they fail on purpose
# The cheapest encode settings where a codec declares them (DiffC's RCC search), so the suite stays quick.
CHEAP_ENCODE = {"cap_bits": 6, "levels": 2}
# Two sizes that pad to one shape for every pad multiple up to 64 (44 or 48 or 64 rows), and one that does not.
SAME_PADDED = [(41, 40), (44, 40)]
OTHER_PADDED = (70, 90)
TILE, OVERLAP = 128, 32  # a small tile, so a 150 x 200 image takes the tiled path
# the tiny cards say "a prior over every noise level, with base dropout", so the DiffC families load them
PRIOR_CARD = objective_card(0.2, None, 0.1)


def weights_name(family: str) -> str:
    return f"{family}-conformance"


def conformance_families():
    return [f for f in families() if f.name not in FAULT_INJECTORS]


def tiny_size(family):
    return family.networks.sizes.get(f"{family.name}-tiny") if family.networks is not None else None


def cases() -> list[tuple[str, str]]:
    """(family, codec name) for every example of every family."""
    out = []
    for fam in conformance_families():
        examples = fam.evaluation.examples or (("WEIGHTS",) if tiny_size(fam) is not None else ())
        card_family = fam.loads_cards_of[0] if fam.loads_cards_of else fam.name
        out += [(fam.name, name.replace("WEIGHTS", weights_name(card_family))) for name in examples]
    return out


CASES = cases()


def tiny_network(family, seed: int = 0):
    """The family's ``-tiny`` network with random, non-zero weights (a zero head would hide its work)."""
    torch.manual_seed(seed)
    network = build_network(tiny_size(family))
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return network


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance-weights")
    for fam in conformance_families():
        name = weights_name(fam.name)
        if tiny_size(fam) is not None:
            save_weights(tiny_network(fam), folder / f"{name}.safetensors",
                         {"name": name, "description": "random, for the conformance suite", "steps_trained": 0,
                          "default_steps": 2, **PRIOR_CARD})
    plugin_family.write_lut_weights(folder / f"{weights_name('tinylut')}.safetensors", 16)
    return folder


@pytest.fixture(scope="module", params=CASES, ids=[name for _, name in CASES])
def codec(request, weights_dir):
    return load_codec(request.param[1], weights_dir=weights_dir)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth scene with grain: something every codec codes to a non-trivial bitstream."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w, 2)
    scene = np.stack([np.sin(6 * x) + y, np.cos(5 * y * x), x - y], axis=-1) * 80 + 110
    grain = np.random.default_rng(seed).normal(0, 4, scene.shape)
    return (scene + grain).clip(0, 255).astype(np.uint8)


def encode(codec, images, **options):
    return codec.encode(images, **codec.select_options("encode", CHEAP_ENCODE), **options)


def decode_options(codec) -> dict:
    """Noise on, where a codec draws any: a seed must then fix every pixel."""
    return codec.select_options("decode", {"gamma": 0.8, "seed": 3})


def pixels(images) -> list[np.ndarray]:
    return [np.asarray(im) for im in images]


def test_every_registered_family_is_checked():
    checked = {family for family, _ in CASES}
    missing = {f.name for f in conformance_families()} - checked
    assert not missing, f"families without Evaluation.examples or a network with a -tiny size: {sorted(missing)}"
    assert {"pillow", "hyperprior", "cdc", "cdc-avif", "diffc-avif", "diffc", "tinyraw", "tinylut"} <= checked


def test_mixed_sizes_batch_like_one_by_one(codec):
    """Equal padded shapes with different sizes, and another padded shape, in one call: the bitstreams
    and decoded pixels are those of one image at a time, bit for bit."""
    images = [photo(h, w, seed=i) for i, (h, w) in enumerate([*SAME_PADDED, OTHER_PADDED, SAME_PADDED[0]])]
    blobs = encode(codec, images)
    assert blobs == [encode(codec, [im])[0] for im in images]
    options = decode_options(codec)
    together = pixels(codec.decode(blobs, **options))
    alone = [pixels(codec.decode([b], **options))[0] for b in blobs]
    assert [a.shape for a in together] == [im.shape for im in images]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, mode", [
    (lambda: Image.fromarray(photo(19, 23)[..., 0], "L"), "L"),
    (lambda: Image.fromarray(np.dstack([photo(17, 21), np.full((17, 21), 128, np.uint8)]), "RGBA"), "RGB"),
    (lambda: Image.fromarray(photo(1, 1)), "RGB"),
    (lambda: Image.fromarray(photo(7, 5)), "RGB"),
    (lambda: Image.fromarray(photo(33, 17)), "RGB"),
], ids=["grey", "rgba", "1x1", "7x5", "33x17"])
def test_modes_and_sizes_come_back_as_the_contract_says(codec, make, mode):
    image = make()
    out = codec.decode(encode(codec, [image]))[0]
    assert (out.mode, out.size) == (mode, image.size)


def test_a_large_image_takes_the_tiled_path_and_batches_like_one_by_one(codec):
    network = getattr(codec, "model", None)
    family = next(f for f in families() if f.name == codec.family)
    if family.networks is None or family.networks.wrap is None or network is None:
        pytest.skip(f"family {codec.family} has no tiles to set (no Networks.wrap of a network)")
    tiled = codec_from_network(network, codec.name, tile=TILE, overlap=OVERLAP)
    images = [photo(150, 200), photo(*SAME_PADDED[1], seed=1)]
    assert 150 * 200 > TILE**2
    blobs = tiled.encode(images)
    assert blobs == [tiled.encode([im])[0] for im in images]
    together = pixels(tiled.decode(blobs))
    assert [a.shape for a in together] == [im.shape for im in images]
    np.testing.assert_array_equal(together[0], pixels(tiled.decode(blobs[:1]))[0])


def test_the_encoder_returns_what_describe_reads_back(codec):
    """What the compress job records per row (``encode_settings``) comes from the encoder: the same bitstreams
    as ``encode``, and the same settings as ``describe`` reads back from them."""
    images = [photo(12, 16), photo(9, 9, seed=1)]
    encoded = codec.encode_chosen(images, **codec.select_options("encode", CHEAP_ENCODE))
    assert [e.bitstream for e in encoded] == encode(codec, images)
    assert [e.chosen for e in encoded] == [codec.describe(e.bitstream) for e in encoded]


def test_undeclared_options_are_refused_with_the_valid_ones(codec):
    image = photo(9, 9)
    with pytest.raises(OptionError) as enc:
        codec.encode([image], no_such_option=1)
    for name in declared(codec.options, "encode"):
        assert name in str(enc.value)
    assert "valid:" in str(enc.value)
    blob = encode(codec, [image])[0]
    with pytest.raises(OptionError) as dec:
        codec.decode([blob], no_such_option=1)
    for name in declared(codec.options, "decode"):
        assert name in str(dec.value)
    assert "valid:" in str(dec.value)


def test_a_seed_fixes_every_bit(codec):
    image = photo(*SAME_PADDED[0])
    blob = encode(codec, [image])[0]
    assert encode(codec, [image])[0] == blob
    options = decode_options(codec)
    np.testing.assert_array_equal(pixels(codec.decode([blob], **options))[0],
                                  pixels(codec.decode([blob], **options))[0])


def test_another_codecs_bitstream_is_refused(codec):
    other = load_codec("webp-q50" if codec.name.startswith("jpeg") else "jpeg-q50")
    blob = other.encode([photo(9, 9)])[0]
    with pytest.raises(BitstreamError, match="written by codec"):
        codec.decode([blob])


def test_truncated_bitstreams_are_refused(codec):
    blob = encode(codec, [photo(9, 9)])[0]
    for cut in (0, 1, 10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(BitstreamError):
            codec.decode([blob[:cut]])


def test_a_decoded_image_encodes_to_the_same_codec_id(codec):
    blob = encode(codec, [photo(*SAME_PADDED[0])])[0]
    again = encode(codec, codec.decode([blob]))[0]
    assert unpack(again).codec_id == unpack(blob).codec_id == codec.codec_id_for(
        codec.resolve_options("encode", codec.select_options("encode", CHEAP_ENCODE)))


def test_the_codec_id_loads_a_codec_that_decodes_the_bitstream(codec, weights_dir):
    """What the decompress job does: the id in the bitstream, not the name it was asked by, finds the codec."""
    blob = encode(codec, [photo(*SAME_PADDED[1])])[0]
    again = load_codec_for_id(unpack(blob).codec_id, weights_dir=weights_dir)
    options = decode_options(codec)
    np.testing.assert_array_equal(pixels(again.decode([blob], **options))[0], pixels(codec.decode([blob], **options))[0])
