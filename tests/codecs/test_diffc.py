"""DiffC on a tiny random cdc-avif network: both families end to end, the decoder rebuilds the
encoder's noisy states bit for bit (1 and 2 threads), the rate tracks the KL, every prefix of a
bitstream is a valid bitstream, and bad input is refused with a BitstreamError. Only weights whose
card says they are a prior load (tiny cards here; the shipped prior is not needed).

Whether PSNR rises with every prefix is a property of a trained prior (a random one predicts
noise); results/diffc measures it with real weights. Here the mechanism is tested: the states
are exact and the size rises with every step.
"""

from __future__ import annotations

import io
import json
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from model import BitstreamError, WeightsError, build_network, list_codecs, load_codec, load_codec_for_id, named_config, unpack
from model.__main__ import main
from model.codec import OptionError
from model.codecs.diffc import DEFAULT_PRIOR, DiffCCodec
from model.diffc.stream import truncate
from model.format import Container, pack
from model.nn.weights_file import save_weights
from model.rcc.ans import header_bits
from model.threads import fixed_threads
from model.zoo import load_network
from model.weights import objective_card, sha256_file

# RCC's cost per chunk above KL at the default cap_bits 10 (chunks of 6 bits, halved above 8), as
# results/diffc/README.md states it; the index, split flags and byte rounding included.
CHUNK_COST_BITS = 2.6
FAST = {"cap_bits": 6}  # the smallest search: tests stay within seconds
# what the cards of the tiny networks say they were trained for (model.weights.objective_card)
PRIOR = objective_card(0.2, (0.0, 0.0, 0.8, 1.0), 0.1)  # every noise level, base dropout: both families
CONDITIONAL_PRIOR = objective_card(0.2, (0.0, 0.0, 0.8, 1.0), 0.0)  # no base dropout: diffc-avif only
RESTORATION = objective_card(1.0, (0.0,), 0.0)  # t = 1 only: neither


def tiny_weights(folder, name: str, seed: int, objective: dict = PRIOR):
    """A cdc-avif-tiny network with random (non-zero) weights saved as NAME in ``folder``, its card
    saying it was trained with ``objective``."""
    torch.manual_seed(seed)
    model = build_network(named_config("cdc-avif-tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_weights(model, folder / f"{name}.safetensors", {"name": name, "description": "random, for tests",
                                                         "steps_trained": 0, "default_steps": 1, **objective})


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    tiny_weights(folder, "tiny", 0)
    tiny_weights(folder, "other", 1)
    tiny_weights(folder, "conditional", 2, CONDITIONAL_PRIOR)
    tiny_weights(folder, "restoration", 3, RESTORATION)
    return folder


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A smooth synthetic scene with grain, 28 x 42 (not a multiple of the network's 4)."""
    y, x = np.mgrid[0:28, 0:42] / 42
    scene = np.stack([np.sin(6 * x) + y, np.cos(5 * y * x), x - y], axis=-1) * 80 + 110
    grain = np.random.default_rng(0).normal(0, 4, scene.shape)
    return (scene + grain).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["diffc-avif-tiny", "diffc-tiny"])
def codec(request, weights_dir):
    return load_codec(request.param, weights_dir=weights_dir)


@pytest.fixture(scope="module")
def encoded(codec, photo):
    return codec.encode_traced(photo, **FAST)


def test_every_input_mode_round_trips_with_its_codec_id(codec, photo, weights_dir):
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    png = io.BytesIO()
    Image.fromarray(photo).save(png, format="PNG")
    inputs = [photo, Image.fromarray(photo), grey, Image.fromarray(grey), png.getvalue()]
    blobs = codec.encode(inputs, stop_step=2, **FAST)
    assert {unpack(b).codec_id for b in blobs} == {codec.codec_id}
    assert codec.codec_id.startswith(codec.name + "@")
    decoded = load_codec_for_id(codec.codec_id, weights_dir=weights_dir).decode(blobs)
    size = (photo.shape[1], photo.shape[0])
    assert [(im.mode, im.size) for im in decoded] == [("RGB", size)] * 2 + [("L", size)] * 2 + [("RGB", size)]


def test_decoder_rebuilds_every_state_bit_for_bit_under_1_and_2_threads(codec, photo):
    with fixed_threads(2):
        blob, trace = codec.encode_traced(photo, **FAST)
    images = []
    for threads in (1, 2):
        with fixed_threads(threads):
            states = codec.decode_states(blob)
            images.append(np.asarray(codec.decode([blob])[0]))
        assert len(states) == len(trace.states) + 1 == codec.resolve_options("encode", {})["levels"] + 1
        assert all(torch.equal(a, b) for a, b in zip(states[1:], trace.states))
    assert np.array_equal(images[0], images[1])


def test_rate_is_the_kl_plus_a_cost_per_chunk(codec, photo):
    _, trace = codec.encode_traced(photo)  # the default cap_bits
    fixed = 1 + codec.conditional
    payload_bits = sum(8 * len(s) for s in trace.strings[fixed:])
    dims = trace.states[0].numel()
    predicted = sum(kl + CHUNK_COST_BITS * n + header_bits(n, dims, 8) for kl, n in zip(trace.kl_bits, trace.chunks))
    assert abs(payload_bits - predicted) <= 0.1 * predicted, (payload_bits, predicted)
    assert min(trace.kl_bits) > 0 and sum(trace.chunks) >= 20  # something was coded


def test_every_prefix_is_the_bitstream_encoded_to_stop_there(codec, photo, encoded, tmp_path):
    blob, trace = encoded
    sizes = []
    for k in range(len(trace.states) + 1):
        shorter = truncate(blob, step=k)
        if k in (0, 3):  # (every k: the same mechanism, and each encode costs a second)
            assert shorter == codec.encode([photo], stop_step=k, **FAST)[0]
        states = codec.decode_states(shorter)
        assert len(states) == k + 1 and all(torch.equal(a, b) for a, b in zip(states[1:], trace.states[:k]))
        assert np.array_equal(np.asarray(codec.decode([shorter])[0]), np.asarray(codec.decode([blob], truncate_step=k)[0]))
        sizes.append(len(shorter))
    assert sizes == sorted(set(sizes)) and len(sizes) >= 5  # rate rises with every step
    # a bpp budget keeps the longest prefix within it, at encode, truncate and decode time alike
    budget = (sizes[3] + sizes[4]) / 2 * 8 / (photo.shape[0] * photo.shape[1])
    assert truncate(blob, bpp=budget) == truncate(blob, step=3) == codec.encode([photo], max_bpp=budget, **FAST)[0]
    assert np.array_equal(np.asarray(codec.decode([blob], truncate_bpp=budget)[0]),
                          np.asarray(codec.decode([truncate(blob, step=3)])[0]))
    assert truncate(blob, bpp=0.0) == truncate(blob, step=0)  # the floor: header (and base) alone
    src, out = tmp_path / "in.darc", tmp_path / "out.darc"
    src.write_bytes(blob)
    assert main(["truncate", str(src), str(out), "--step", "2"]) == 0 and out.read_bytes() == truncate(blob, step=2)
    assert main(["truncate", str(src), str(out), "--bpp", str(budget)]) == 0 and out.read_bytes() == truncate(blob, step=3)


def test_both_bitstream_versions_round_trip_and_a_newer_one_is_refused(codec, photo, encoded):
    """Version 2 (the default: constriction's payloads) and version 1 (big-integer rANS, before issue 33) code
    the same states: the payload coder is lossless, so only the step payloads' bytes differ."""
    blobs = {2: encoded[0], 1: codec.encode_traced(photo, bitstream_version=1, **FAST)[0]}
    for version, blob in blobs.items():
        assert unpack(blob).strings[0][3] == version  # the header's version byte
        assert all(torch.equal(a, b) for a, b in zip(codec.decode_states(blob)[1:], encoded[1].states))
    assert blobs[1] != blobs[2] and unpack(blobs[1]).strings[:1 + codec.conditional][1:] == \
        unpack(blobs[2]).strings[:1 + codec.conditional][1:]  # the AVIF base, if any, is the same
    assert np.array_equal(np.asarray(codec.decode([blobs[1]])[0]), np.asarray(codec.decode([blobs[2]])[0]))
    c = unpack(blobs[2])
    header = bytearray(c.strings[0])
    header[3] = 3
    with pytest.raises(BitstreamError, match="version 3, this build reads versions 1, 2: it was written by a newer"):
        codec.decode([_repack(c, (bytes(header),) + c.strings[1:])])


def test_decoders_differ_as_documented(codec, encoded):
    blob, _ = encoded
    ode = [np.asarray(codec.decode([blob], denoiser="ode", steps=3, seed=s)[0]) for s in (0, 1)]
    ancestral = [np.asarray(codec.decode([blob], denoiser="ancestral", steps=3, seed=s)[0]) for s in (0, 0, 1)]
    assert np.array_equal(ode[0], ode[1])  # the probability flow is deterministic: the seed is unused
    assert np.array_equal(ancestral[0], ancestral[1]) and not np.array_equal(ancestral[0], ancestral[2])
    with pytest.raises(OptionError, match="denoiser"):
        codec.decode([blob], denoiser="euler")


def test_bad_bitstreams_raise_bitstream_errors_quickly(codec, encoded, weights_dir):
    blob, trace = encoded
    c = unpack(blob)
    fixed, steps = c.strings[: 1 + codec.conditional], c.strings[1 + codec.conditional:]
    last = steps[-1]
    bad = {  # what -> (bitstream, the phrase its error must say: each is caught by its own check)
        "garbage": (bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)), "not a diffarc bitstream"),
        "cut mid-chunk": (blob[: len(blob) - len(last) // 2], "checksum mismatch"),
        "step cut mid-chunk, checksum redone": (_repack(c, fixed + steps[:-1] + (last[:-1],)),
                                                "a coded step does not decode"),
        "step with a flipped byte, checksum redone": (
            _repack(c, fixed + steps[:-1] + (bytes([last[0] ^ 0x10]) + last[1:],)), "a coded step does not decode"),
        "more steps than the schedule": (_repack(c, fixed + steps + steps[:1]), "do not fit"),
        "no header": (_repack(c, steps), "not a DiffC bitstream"),
    }
    for what, (data, phrase) in bad.items():
        t0 = time.perf_counter()
        with pytest.raises(BitstreamError, match=phrase):
            codec.decode([data])
        assert time.perf_counter() - t0 < 10, what


def test_wrong_model_is_refused(codec, encoded, weights_dir, photo):
    blob, _ = encoded
    other_weights = load_codec(codec.name.replace("tiny", "other"), weights_dir=weights_dir)
    other_family = load_codec(codec.name.replace("diffc-avif-", "diffc-") if codec.conditional
                              else codec.name.replace("diffc-", "diffc-avif-"), weights_dir=weights_dir)
    cdc_avif = load_codec(weights_dir / "tiny.safetensors")  # a path loads the card's family, cdc-avif
    for wrong in (other_weights, other_family, cdc_avif):
        with pytest.raises(BitstreamError, match="written by codec"):
            wrong.decode([blob])
    with pytest.raises(BitstreamError, match="progressive"):
        truncate(cdc_avif.encode([photo])[0], step=1)
    # the same id with a schedule of another model's length is refused by the header check
    c = unpack(blob)
    header = bytearray(c.strings[0])
    header[10:12] = (1000).to_bytes(2, "big")
    with pytest.raises(BitstreamError, match="another model"):
        codec.decode([_repack(c, (bytes(header),) + c.strings[1:])])


def _repack(c: Container, strings) -> bytes:
    return pack(Container(c.codec_id, c.height, c.width, c.mode, tuple(strings)))


def test_the_decompress_job_previews_an_archive_at_a_lower_rate(codec, encoded, weights_dir):
    from jobs.decompress import build_parser
    from model.options import family_options, given_options
    from pipeline.decode.decoding import DecodeSettings, decode_rows, in_process

    blob, _ = encoded
    args = build_parser().parse_args(["--truncate-step", "2", "--seed", "3"])
    options = given_options(args, family_options("decode"))
    assert options == {"truncate_step": 2, "seed": 3}
    rows = [{"codec_id": codec.codec_id, "bitstream": blob, "error": None}] * 2
    decoded = decode_rows(in_process(lambda _id: codec, DecodeSettings(options=options)), rows)
    preview = np.asarray(codec.decode([truncate(blob, step=2)])[0])
    assert not np.array_equal(preview, np.asarray(codec.decode([blob])[0]))  # the preview is not the full decode
    assert len(decoded) == 2
    assert all(r.error is None and np.array_equal(np.asarray(r.image), preview) for r in decoded)


def test_only_weights_whose_card_says_prior_load_and_list(weights_dir, tmp_path):
    assert load_codec("diffc-avif-conditional-q30", weights_dir=weights_dir).name == "diffc-avif-conditional"
    refusals = {"diffc-avif-restoration": "objective is 'restoration'", "diffc-restoration": "objective is 'restoration'",
                "diffc-conditional": "with base dropout > 0"}
    for name, phrase in refusals.items():
        with pytest.raises(WeightsError, match=phrase) as refused:
            load_codec(name, weights_dir=weights_dir)
        assert name.split("-")[-1] in str(refused.value) and f"{DEFAULT_PRIOR}" in str(refused.value)
    # bitstreams a restoration network wrote (before cards said what it is) still decode from their codec id
    path = weights_dir / "restoration.safetensors"
    old = DiffCCodec(load_network(path), "diffc-avif-restoration", sha256_file(path), conditional=True)
    blob = old.encode([np.zeros((8, 8, 3), np.uint8)], stop_step=1, **FAST)[0]
    assert load_codec_for_id(old.codec_id, weights_dir=weights_dir).decode([blob])[0].size == (8, 8)
    rows = {row.name: row.description for row in list_codecs(weights_dir)}
    assert "(conditional, other, tiny;" in rows["diffc-avif-WEIGHTS[-qN]"] and "(other, tiny;" in rows["diffc-WEIGHTS"]
    assert "restoration," not in rows["diffc-avif-WEIGHTS[-qN]"] + rows["diffc-WEIGHTS"]
    assert f"{DEFAULT_PRIOR} (not installed)" in rows["diffc-avif[-qN]"]
    # a codec name without weights means the shipped prior; the codec id names the weights
    tiny_weights(tmp_path, DEFAULT_PRIOR, 0)
    shipped = load_codec("diffc-avif-q40", weights_dir=tmp_path)
    assert shipped.name == f"diffc-avif-{DEFAULT_PRIOR}" and shipped.presets["quality"] == 40
    assert load_codec("diffc", weights_dir=tmp_path).codec_id.startswith(f"diffc-{DEFAULT_PRIOR}@")
    assert "(not installed)" not in {row.name: row.description for row in list_codecs(tmp_path)}["diffc"]
    # a card that states no objective (written before cards did) is no prior either
    card = json.loads((tmp_path / f"{DEFAULT_PRIOR}.json").read_text())
    del card["objective"]
    (tmp_path / f"{DEFAULT_PRIOR}.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="states no training objective"):
        load_codec("diffc-avif", weights_dir=tmp_path)


def test_cdc_avif_says_once_when_a_restoration_network_decodes_what_it_was_not_trained_for(weights_dir, photo):
    restoration = load_codec(weights_dir / "restoration.safetensors")  # a path: the cdc-avif family
    blob = restoration.encode([photo])[0]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        restoration.decode([blob])  # 1 step, gamma 0: what it was trained for
        restoration.decode([blob], steps=2, gamma=0.8)
        restoration.decode([blob, blob], steps=4)
    assert [str(w.message).split(" is ")[0] for w in said] == ["restoration"]
    assert "trained for the one-step decode from gamma 0" in str(said[0].message)
    prior = load_codec(weights_dir / "tiny.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prior.decode(prior.encode([photo]), steps=2, gamma=0.8)  # a prior: no warning
