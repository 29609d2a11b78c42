"""cdc-avif's base-layer encoder settings (effort, speed, subsampling, tune) and its rate control.

Tiny networks keep these fast: a zero-head network restores to the AVIF base exactly, so what the
codec writes can be checked against Pillow's own AVIF at the same settings.
"""

import numpy as np
import pytest
import torch

from model import BitstreamError, unpack
from model.evaluation.metrics import psnr
from model.codecs.avif_base import EFFORTS, BaseSettings, decode_base, encode_base
from model.codecs.base_layer import SETTINGS_TAG, base_payload, read_base_payload
from model.codecs.cdc_avif import AvifDiffusionCodec
from model.codecs.cdc_avif import SIZES as CONFIGS, RestorationConfig
from model.nn.restoration import AvifRestorationModel
from test_cdc_avif import photo


def codec(settings_features=0, zero_head=True) -> AvifDiffusionCodec:
    torch.manual_seed(0)
    cfg = RestorationConfig(**{**CONFIGS["cdc-avif-tiny"].__dict__, "settings_features": settings_features})
    model = AvifRestorationModel(cfg)
    if not zero_head:  # every zero-initialised layer random too, so the embedding reaches the output
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                torch.nn.init.normal_(p, std=0.05)
    return AvifDiffusionCodec(model, "cdc-avif-t", "0" * 64)


def test_each_effort_codes_its_settings_and_decodes_to_that_avif():
    img, c = photo(64, 96), codec()
    for name, settings in EFFORTS.items():
        blob = c.encode([img], quality=25, effort=name)[0]
        payload = unpack(blob).strings[0]
        base = read_base_payload(payload, 64, 96, "test")
        assert (base.quality, base.settings) == (25, settings)
        # zero head: the decode is exactly Pillow's AVIF at those settings
        assert np.array_equal(np.asarray(c.decode([blob])[0]), decode_base(encode_base(img, 25, settings)))
    # Pillow's default keeps the one-byte head of every bitstream written before settings existed
    assert unpack(c.encode([img], quality=25)[0]).strings[0][0] == 25
    assert unpack(c.encode([img], quality=25, effort="best")[0]).strings[0][:4] == bytes([SETTINGS_TAG, 25, 2, 3])


def test_the_weights_card_sets_the_default_effort(tmp_path):
    import json

    from model import load_codec
    from model.nn.weights_file import save_weights

    img = photo(64, 64)
    model = AvifRestorationModel(CONFIGS["cdc-avif-tiny"])
    save_weights(model, tmp_path / "cdc-avif-t.safetensors", {"name": "cdc-avif-t", "default_effort": "medium",
                                                             "steps_trained": 0, "default_steps": 1, "description": ""})
    c = load_codec(str(tmp_path / "cdc-avif-t.safetensors"))
    settings = lambda blob: read_base_payload(unpack(blob).strings[0], 64, 64, "test").settings
    assert settings(c.encode([img], quality=25)[0]) == EFFORTS["medium"]  # the card's
    assert settings(c.encode([img], quality=25, effort="fast")[0]) == EFFORTS["fast"]  # the user's wins
    assert settings(codec().encode([img], quality=25)[0]) == EFFORTS["fast"]  # no card value: fast
    card = json.loads((tmp_path / "cdc-avif-t.json").read_text())
    (tmp_path / "cdc-avif-t.json").write_text(json.dumps({**card, "default_effort": "slowest"}))
    with pytest.raises(ValueError, match="default_effort 'slowest' is none of fast, medium, best"):
        load_codec(str(tmp_path / "cdc-avif-t.safetensors"))


def test_single_settings_replace_the_efforts():
    img, c = photo(64, 64), codec()
    base = read_base_payload(unpack(c.encode([img], quality=40, effort="best", speed=9, tune="ssim")[0]).strings[0],
                             64, 64, "test")
    assert base.settings == BaseSettings(9, "4:4:4", "ssim")
    with pytest.raises(ValueError, match="must be one of"):
        c.encode([img], effort="slowest")


def test_the_network_is_told_the_settings():
    """Same base pixels, other settings: a settings-aware network restores them differently, one
    without settings inputs the same."""
    img = photo(64, 64)
    payload = base_payload(img, 30, EFFORTS["medium"])
    relabelled = payload[:2] + EFFORTS["fast"].to_bytes() + payload[4:]  # the same AVIF, other settings
    a, b = (read_base_payload(p, 64, 64, "test") for p in (payload, relabelled))
    assert np.array_equal(a.rgb, b.rgb) and a.settings != b.settings
    base = torch.from_numpy(a.rgb.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    for features, differ in ((3, True), (0, False)):
        model = codec(settings_features=features, zero_head=False).model
        out = [model.restore(base, torch.tensor([30.0]), torch.zeros_like(base), 1, 1.0,
                             torch.tensor([x.settings.features()])) for x in (a, b)]
        assert bool((out[0] - out[1]).abs().max() > 1e-6) == differ


@pytest.mark.parametrize("flags", [bytes([6, 0x08]), bytes([6, 0x06]), bytes([11, 0])])
def test_invalid_settings_bytes_are_bitstream_errors(flags):
    img = photo(32, 32)
    payload = base_payload(img, 30, EFFORTS["medium"])
    with pytest.raises(BitstreamError, match="settings"):
        read_base_payload(payload[:2] + flags + payload[4:], 32, 32, "test")


def test_rate_control_meets_the_target_with_the_least_quality():
    img, c = photo(96, 128), codec()
    settings = EFFORTS["fast"]
    target = psnr(img, decode_base(encode_base(img, 40, settings)))  # reachable: what quality 40 gives
    choice = c.rate_controlled(img, settings, target_psnr=target)
    assert choice.met and choice.psnr >= target
    below = decode_base(encode_base(img, choice.quality - 1, settings))  # zero head: restored = base
    assert psnr(img, below) < target  # one quality less misses it: the least quality that meets it
    assert choice.probes <= 9  # bisection, not a scan of 101 qualities
    blob = c.encode([img], target_psnr=target)[0]
    assert psnr(img, np.asarray(c.decode([blob])[0])) >= target
    # the bitstream says what was chosen (the pipeline's encode_settings column, `python -m model info`)
    assert c.describe(blob) == {"quality": str(choice.quality), "effort": "fast", "speed": "6",
                                "subsampling": "4:2:0", "tune": "default"}
    assert c.describe(c.encode([img], quality=9, effort="best", speed=3)[0]) == {
        "quality": "9", "speed": "3", "subsampling": "4:4:4", "tune": "psnr"}  # no effort has these settings


def test_rate_control_caps_bytes_and_bpp():
    img, c = photo(96, 128), codec()
    full = len(c.encode([img], quality=60)[0])
    for kwargs, cap in (({"max_bytes": full // 2}, full // 2), ({"max_bpp": full * 4 / (96 * 128)}, full // 2)):
        blob = c.encode([img], **kwargs)[0]
        assert len(blob) <= cap
        q = unpack(blob).strings[0][0]
        assert len(c.encode([img], quality=q + 1)[0]) > cap  # the largest quality that fits
    # a cap below quality 0's size cannot be met, and says so
    choice = c.rate_controlled(img, EFFORTS["fast"], max_bytes=40)
    assert (choice.quality, choice.met) == (0, False)


@pytest.mark.parametrize("options", [{"quality": 25}, {"quality": 9, "effort": "best", "speed": 3},
                                     {"quality": 40, "effort": "medium"}, {"max_bytes": 900}, {"target_psnr": 28.0}])
def test_the_encoder_returns_what_describe_reads_back(options):
    """The compress job's encode_settings column comes from the encoder now (``encode_chosen``), not from
    ``describe`` on the fresh bitstream: the same values, for fixed qualities, each effort and rate control."""
    from model import load_codec

    images, c = [photo(64, 96), photo(48, 48)], codec()
    encoded = c.encode_chosen(images, **options)
    assert [e.bitstream for e in encoded] == c.encode(images, **options)
    assert [e.chosen for e in encoded] == [c.describe(e.bitstream) for e in encoded]
    if "quality" in options:
        assert {e.chosen["quality"] for e in encoded} == {str(options["quality"])}
    webp = load_codec("webp-q60")
    assert [e.chosen for e in webp.encode_chosen(images)] == [webp.describe(b) for b in webp.encode(images)] == [{}, {}]
