"""cdc-avif: the AVIF base layer restored by a conditional diffusion decoder.

Tiny random networks (named_config("cdc-avif-tiny")) keep these fast; the shipped weights are checked
at the end on a Kodak crop (skipped without ../shared/data).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import BitstreamError, list_codecs, load_codec, load_codec_for_id, named_config, random_codec, unpack
from model.evaluation.metrics import psnr
from model.codecs.avif_base import decode_base, encode_base
from model.codecs.base_layer import read_base_payload
from model.codecs.cdc_avif import AvifDiffusionCodec
from model.nn.restoration import AvifRestorationModel
from model.nn.weights_file import save_weights

KODAK = Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak" / "kodim23.png"


def photo(h=96, w=128, seed=0) -> np.ndarray:
    """A smooth synthetic scene with edges and texture (AVIF leaves visible error on it)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)], -1) * 80 + 128
    img[h // 3 : h // 2, w // 4 : w // 2] = (30, 200, 60)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def tiny_model(seed=0, zero_head=True) -> AvifRestorationModel:
    torch.manual_seed(seed)
    model = AvifRestorationModel(named_config("cdc-avif-tiny"))
    if not zero_head:  # a random, non-identity network
        torch.nn.init.normal_(model.denoiser.head[-1].weight, std=0.05)
    return model


@pytest.fixture
def weights_dir(tmp_path):
    """Two different tiny weights files in a folder, as the registry finds them."""
    for name, seed in (("cdc-avif-a", 0), ("cdc-avif-b", 1)):
        save_weights(tiny_model(seed, zero_head=False), tmp_path / f"{name}.safetensors",
                     {"name": name, "description": "test", "steps_trained": 0, "default_steps": 1})
    return tmp_path


def test_zero_head_returns_the_avif_base_exactly():
    codec = AvifDiffusionCodec(tiny_model(), "cdc-avif-zero", "0" * 64)
    img = photo()
    blob = codec.encode([img], quality=20)[0]
    base = decode_base(encode_base(img, 20))
    for options in ({"steps": 1}, {"steps": 3, "gamma": 0.8, "seed": 5}, {"steps": 2, "t_start": 0.5}):
        assert np.array_equal(np.asarray(codec.decode([blob], **options)[0]), base), options
    assert psnr(img, base) < 45  # the base is lossy, so "exactly the base" is a real claim


@pytest.mark.parametrize("unshuffle,norm", [(4, "none"), (1, "layer"), (2, "none")])
def test_fast_decoder_levers_keep_the_base_guarantee_and_pad_to_their_multiple(unshuffle, norm):
    # cdc-avif-fast's levers (the stem's unshuffle, no LayerNorm) on a tiny net: untrained is still the base
    # exactly, at a size that is not a multiple of the network's (the codec pads to pad_multiple)
    from dataclasses import replace
    torch.manual_seed(0)
    model = AvifRestorationModel(replace(named_config("cdc-avif-tiny"), unshuffle=unshuffle, norm=norm))
    assert model.pad_multiple == unshuffle * 2 ** (len(model.cfg.widths) - 1)
    img = photo(h=90, w=118)
    codec = AvifDiffusionCodec(model, "cdc-avif-zero", "0" * 64)
    blob = codec.encode([img], quality=20)[0]
    assert np.array_equal(np.asarray(codec.decode([blob], engine="torch")[0]), decode_base(encode_base(img, 20)))
    with pytest.raises(ValueError, match="norm"):
        replace(named_config("cdc-avif-tiny"), norm="batch")


def test_a_tiny_model_learns(tmp_path):
    """Loss on one fixed batch (same t and noise every step) falls under Adam."""
    from model.training.objectives import Terms, restoration

    model = tiny_model()
    img = torch.from_numpy(photo(64, 64)).permute(2, 0, 1).float()[None] / 127.5 - 1
    base = torch.from_numpy(decode_base(encode_base(photo(64, 64), 10))).permute(2, 0, 1).float()[None] / 127.5 - 1
    x, b, q = img.repeat(4, 1, 1, 1), base.repeat(4, 1, 1, 1), torch.full((4,), 10.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        out = model(x, b, q, final_step_fraction=1.0, generator=torch.Generator().manual_seed(0))
        parts = restoration(model.cfg, out, (x, b, q), Terms())
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        losses.append(float(parts["loss"]))
    assert losses[-1] < 0.7 * losses[0], losses


def test_registry_names_options_and_wrong_weights(weights_dir):
    codec = load_codec("cdc-avif-a-q35", weights_dir=weights_dir)
    assert codec.family == "cdc-avif" and codec.presets["quality"] == 35
    img = photo()
    blob = codec.encode([img])[0]
    assert unpack(blob).strings[0][0] == 35  # the quality byte the decoder conditions on
    assert len(codec.encode([img], quality=70)[0]) > len(blob)
    assert load_codec_for_id(unpack(blob).codec_id, weights_dir=weights_dir).codec_id == codec.codec_id
    with pytest.raises(BitstreamError, match="cdc-avif-a@"):
        load_codec("cdc-avif-b", weights_dir=weights_dir).decode([blob])
    assert "cdc-avif-a" in {i.name for i in list_codecs(weights_dir)}


def test_stochastic_decode_is_reproducible(weights_dir):
    codec = load_codec("cdc-avif-a", weights_dir=weights_dir)
    blob = codec.encode([photo()], quality=15)[0]
    one, again, other = (np.asarray(codec.decode([blob], steps=3, gamma=0.8, seed=s)[0]) for s in (1, 1, 2))
    assert np.array_equal(one, again)
    assert not np.array_equal(one, other)


def test_another_decoder_restores_the_same_base_layer(weights_dir):
    """``decoder``: a cdc-avif bitstream restored by other cdc-avif weights (the realism preset's way)
    is what those weights make of the same base; the row's own codec id is still the encoder's."""
    a, b = (load_codec(n, weights_dir=weights_dir) for n in ("cdc-avif-a", "cdc-avif-b"))
    img = photo()
    blob_a, blob_b = a.encode([img], quality=15)[0], b.encode([img], quality=15)[0]
    own, by_b = (np.asarray(a.decode([blob_a], **kw)[0]) for kw in ({}, {"decoder": "cdc-avif-b"}))
    assert np.array_equal(by_b, np.asarray(b.decode([blob_b])[0]))
    assert not np.array_equal(own, by_b)
    preset = a.with_decode_presets({"realism": {"decoder": "cdc-avif-b"}})
    assert np.array_equal(np.asarray(preset.decode([blob_a], preset="realism")[0]), by_b)
    save_weights(random_codec("cdc-tiny").model, weights_dir / "cdc-other.safetensors",
                 {"name": "cdc-other", "description": "test", "steps_trained": 0, "default_steps": 1})
    for name, message in (("cdc-avif-missing", "'cdc-avif-missing': not found"),
                          ("cdc-other", "'cdc-other': a cdc weights file")):
        with pytest.raises(ValueError, match=message):
            a.decode([blob_a], decoder=name)


def test_batches_and_modes(weights_dir):
    codec = load_codec("cdc-avif-a", weights_dir=weights_dir)
    grey = Image.fromarray(photo(40, 52)[..., 0], "L")
    imgs = [photo(), photo(96, 128, seed=1), grey, photo(17, 9)]
    blobs = codec.encode(imgs, quality=30)
    assert blobs == [codec.encode([im], quality=30)[0] for im in imgs]  # batching changes no byte
    together = codec.decode(blobs)
    alone = [codec.decode([b])[0] for b in blobs]
    assert [np.asarray(a).tolist() == np.asarray(b).tolist() for a, b in zip(together, alone)] == [True] * 4
    assert together[2].mode == "L" and together[2].size == (52, 40)
    assert together[3].size == (9, 17)


def test_tiles_bound_memory_and_match_the_whole(weights_dir):
    whole = load_codec("cdc-avif-a", weights_dir=weights_dir)
    tiled = AvifDiffusionCodec(whole.model, whole.name, whole.sha256, tile=64, overlap=32)
    img = photo(150, 200)
    blob = whole.encode([img], quality=25)[0]
    a = np.asarray(whole.decode([blob])[0]).astype(int)
    b = np.asarray(tiled.decode([blob])[0]).astype(int)
    base = decode_base(encode_base(img, 25)).astype(int)
    assert np.abs(a - base).max() > 10  # the network does change the image...
    assert np.abs(a - b).max() <= 2  # ...and the blended tiles change it alike, to a level or two


def test_box_headers_are_not_paid_for(weights_dir):
    """The container around the stripped AVIF is smaller than the AVIF file alone."""
    codec = load_codec("cdc-avif-a", weights_dir=weights_dir)
    img = photo(256, 384)
    for q in (5, 30):
        assert len(codec.encode([img], quality=q)[0]) < len(encode_base(img, q))


@pytest.mark.parametrize("payload, message", [
    (b"", "one string"),
    (bytes([101]) + b"\x01abc", "quality byte"),
    (bytes([30]) + b"\x00not an avif file", "AVIF base does not decode: .*ftyp"),
    (bytes([30]) + b"\x01\x0a\x0b", "AVIF base does not decode: .*truncated"),
])
def test_hostile_payloads_are_bitstream_errors(weights_dir, payload, message):
    from model.format import Container, pack

    codec = load_codec("cdc-avif-a", weights_dir=weights_dir)
    blob = pack(Container(codec.codec_id, 48, 64, "RGB", (payload,) if payload else ()))
    with pytest.raises(BitstreamError, match=message):
        codec.decode([blob])


SHIPPED = [i for i in list_codecs() if i.family == "cdc-avif" and i.path is not None]


@pytest.mark.slow
@pytest.mark.parametrize("info", SHIPPED, ids=lambda i: i.name)
def test_shipped_weights_beat_or_match_their_base(info):
    """On a Kodak crop, one deterministic step: the MSE model is above AVIF at the same quality,
    a perceptual model at most 1.5 dB below (the issue's bound)."""
    if not KODAK.exists():
        pytest.skip(f"{KODAK} not found: the shipped-weight smoke tests need ../shared/data/kodak")
    img = np.asarray(Image.open(KODAK).convert("RGB"))[128:384, 256:512]
    codec = load_codec(info.name)
    for q in (15, 40):
        blobs = codec.encode([img], quality=q)
        decoded = np.asarray(codec.decode(blobs, steps=1, gamma=0.0)[0])
        base = read_base_payload(unpack(blobs[0]).strings[0], *img.shape[:2], "test")  # at the card's effort
        gain = psnr(img, decoded) - psnr(img, decode_base(encode_base(img, q, base.settings)))
        print(f"{info.name} q{q}: {gain:+.3f} dB over AVIF")
        assert gain > (0.0 if "mse" in info.name else -1.5)
