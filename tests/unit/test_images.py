"""Input conversion: every Pillow mode to 8-bit RGB, the original mode recorded and restored."""

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.imagefiles.pixels import ImageError, from_rgb8, load_image, restored_mode


def _png(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode,restored",
    [("RGB", "RGB"), ("L", "L"), ("LA", "L"), ("RGBA", "RGB"), ("P", "RGB"), ("I;16", "L"), ("1", "L")],
)
def test_modes_convert_and_restore(mode, restored):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray(
        rng.integers(0, 65536, (9, 13), dtype=np.uint16))
    loaded = load_image(_png(img))
    assert loaded.rgb.shape == (9, 13, 3) and loaded.rgb.dtype == np.uint8
    assert loaded.mode == img.mode
    assert restored_mode(loaded.mode) == restored
    assert from_rgb8(loaded.rgb, loaded.mode).mode == restored


def test_sixteen_bit_keeps_the_top_byte():
    arr = np.array([[0, 256, 65535, 32768]], dtype=np.uint16)
    loaded = load_image(_png(Image.fromarray(arr)))
    assert loaded.rgb[0, :, 0].tolist() == [0, 1, 255, 128]


def test_cmyk_jpeg():
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    loaded = load_image(_png(img, "JPEG"))
    assert loaded.mode == "CMYK" and loaded.rgb[4, 4, 0] > 200 and loaded.rgb[4, 4, 1] < 60


def test_exif_orientation_applied():
    img = Image.new("RGB", (20, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    loaded = load_image(_png(img, "JPEG", exif=exif.tobytes()))
    assert loaded.orientation == 6 and loaded.rgb.shape[:2] == (20, 10)


@pytest.mark.parametrize(
    "data,reason",
    [(b"", "empty"), (b"not an image at all", "cannot decode"), (b"\x89PNG\r\n\x1a\n\0\0", "cannot decode")],
)
def test_bad_bytes_have_reasons(data, reason):
    with pytest.raises(ImageError, match=reason):
        load_image(data)


def test_pixel_cap():
    with pytest.raises(ImageError, match="over the cap"):
        load_image(_png(Image.new("RGB", (100, 100))), max_pixels=5000)
