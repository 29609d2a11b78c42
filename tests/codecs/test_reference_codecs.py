"""Pillow's JPEG, WebP, AVIF and JPEG XL behind the codec interface."""

import numpy as np
import pytest

from model import BitstreamError, bits_per_pixel, load_codec, load_codec_for_id, unpack
from model import OptionError
from model.evaluation.metrics import psnr


def _photo_like(h=48, w=64, seed=0):
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    base = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2) % 256
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["jpeg-q90", "webp-q90", "avif-q90", "jxl-q90"])
def test_round_trip_quality_and_real_bpp(name):
    codec = load_codec(name)
    images = [_photo_like(), _photo_like(31, 17, 1)]
    blobs = codec.encode(images)
    decoded = codec.decode(blobs)
    assert len(blobs) == len(decoded) == 2
    for img, blob, out in zip(images, blobs, decoded):
        assert np.asarray(out).shape == img.shape
        assert psnr(img, np.asarray(out)) > 28
        c = unpack(blob)
        assert (c.height, c.width, c.codec_id) == (*img.shape[:2], name)
        assert bits_per_pixel(blob, *img.shape[:2]) == len(blob) * 8 / (img.shape[0] * img.shape[1])


def test_greyscale_comes_back_grey():
    codec = load_codec("webp-q80")
    out = codec.decode(codec.encode([_photo_like()[..., 0]]))[0]
    assert out.mode == "L"


def test_other_codecs_bitstream_refused():
    blob = load_codec("jpeg-q50").encode([_photo_like()])[0]
    with pytest.raises(BitstreamError, match="jpeg-q50"):
        load_codec("webp-q50").decode([blob])


def test_unknown_name_lists_known():
    with pytest.raises(KeyError, match="python -m model list"):
        load_codec("cdc-nonexistent")


def test_avif_takes_the_base_layer_settings_and_records_them():
    image = _photo_like(64, 80)
    codec = load_codec("avif-q40")
    default, best = codec.encode([image])[0], codec.encode([image], effort="best")[0]
    assert unpack(default).codec_id == "avif-q40" and unpack(best).codec_id == "avif-best-q40"
    assert unpack(best).strings != unpack(default).strings  # 4:4:4 at speed 2: another file
    own = codec.encode([image], speed=3, subsampling="4:4:4", tune="psnr")[0]
    assert unpack(own).codec_id == "avif-s3-444-psnr-q40"
    preset = load_codec("avif-best-q40")
    assert preset.name == "avif-best-q40" and preset.encode([image])[0] == best
    for blob in (best, own):  # any AVIF codec decodes any settings: the file carries them
        assert psnr(image, np.asarray(load_codec("avif-q5").decode([blob])[0])) > 30
        again = load_codec_for_id(unpack(blob).codec_id)  # what decompress loads: the same settings
        assert again.encode([image])[0] == blob


def test_only_avif_declares_encoder_settings():
    with pytest.raises(OptionError, match="no encode options 'effort'"):
        load_codec("jpeg-q50").encode([_photo_like()], effort="best")
    with pytest.raises(KeyError, match="unknown codec 'jxl-best-q50'"):
        load_codec("jxl-best-q50")
