"""A small corpus, made in code, holding every kind of input the archive must keep (issue 17):
metadata, alpha, depth, colour models, animation, tiny and over-compressed images, two images in a
sample, a sample without an image, a broken image. ``CASES`` maps each key to its members and the
path (``pipeline.encode.keeping``) it takes under the default flags; None where either of two may win."""

from __future__ import annotations

import imagecodecs
import numpy as np
from PIL import Image, ImageCms
from shardkit import image_bytes, photo

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="diffarc test"/></rdf:RDF></x:xmpmeta>')
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not sRGB: dropping it would show


def exif(orientation: int = 1) -> bytes:
    e = Image.Exif()
    e[0x010F], e[0x0110], e[0x8298], e[0x0132] = "DiffarcCam", "Model 7", "(c) tests", "2026:01:02 03:04:05"
    if orientation != 1:
        e[0x0112] = orientation
    return e.tobytes()


def _png_text(img: Image.Image) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a test image")
    info.add_itxt("Description", "dürer, ünïcode")
    return image_bytes(img, "PNG", pnginfo=info)


def _alpha(mode: str) -> Image.Image:
    base = photo(40, 30, seed=5)
    a = Image.fromarray((np.indices((30, 40))[1] * 6).astype(np.uint8))  # a ramp of opacity
    img = base.convert("RGBA") if mode == "RGBA" else base.convert("L").convert("LA")
    img.putalpha(a)
    return img


def _palette() -> Image.Image:
    img = photo(40, 30, seed=6).convert("P", palette=Image.ADAPTIVE, colors=16)
    img.info["transparency"] = 3
    return img


def _grey16() -> bytes:
    ramp = (np.indices((30, 40)).sum(0) * 700 + 17).astype(np.uint16)  # 5,000+ distinct levels
    return image_bytes(Image.fromarray(ramp), "PNG")


def _rgb16() -> bytes:
    arr = (np.random.default_rng(1).integers(0, 65535, (24, 32, 3))).astype(np.uint16)
    return bytes(imagecodecs.png_encode(arr))  # Pillow cannot write 48-bit RGB


def _animation(fmt: str) -> bytes:
    frames = [photo(32, 24, seed=i) for i in range(3)]
    return image_bytes(frames[0], fmt, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "WEBP" else {}))


def cases() -> dict[str, tuple[dict[str, bytes], str | None]]:
    """key -> (members, the path taken by default or None when it depends on sizes)."""
    sidecar = b'{"label": 1}'
    stripes = Image.fromarray((np.indices((64, 64))[1] % 2 * 255).astype(np.uint8))
    broken = image_bytes(photo(64, 48), "JPEG", quality=90)
    return {
        "exif-rotated": ({"jpg": image_bytes(photo(96, 64, seed=1), "JPEG", quality=95, exif=exif(6)), "json": sidecar}, "codec"),
        "icc": ({"jpg": image_bytes(photo(96, 64, seed=2), "JPEG", quality=95, icc_profile=ICC), "json": sidecar}, "codec"),
        "xmp": ({"jpg": image_bytes(photo(96, 64, seed=3), "JPEG", quality=95, xmp=XMP, exif=exif())}, "codec"),
        "png-text": ({"png": _png_text(photo(96, 64, seed=4)), "txt": b"caption"}, "codec"),
        "rgba": ({"png": image_bytes(_alpha("RGBA"), "PNG")}, None),
        "la": ({"png": image_bytes(_alpha("LA"), "PNG")}, None),
        "palette-transparency": ({"png": image_bytes(_palette(), "PNG")}, None),
        "grey16": ({"png": _grey16()}, "original"),
        "rgb16": ({"png": _rgb16()}, "original"),
        "cmyk": ({"jpg": image_bytes(photo(40, 30).convert("CMYK"), "JPEG", quality=90)}, "original"),
        "animated-gif": ({"gif": _animation("GIF")}, "original"),
        "animated-webp": ({"webp": _animation("WEBP")}, "original"),
        "one-pixel": ({"png": image_bytes(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")}, None),
        "seven-by-five": ({"png": image_bytes(photo(7, 5), "PNG")}, None),
        "tiny-q95": ({"jpg": image_bytes(photo(20, 20, seed=8), "JPEG", quality=95)}, None),
        "over-compressed": ({"png": image_bytes(stripes, "PNG", optimize=True)}, "original"),
        "two-images": ({"jpg": image_bytes(photo(96, 64, seed=9), "JPEG", quality=95),
                        "seg.png": image_bytes(photo(96, 64, seed=10, mode="L"), "PNG"), "json": sidecar}, "codec"),
        "no-image": ({"txt": b"only a caption", "json": sidecar}, "none"),
        "broken": ({"jpg": broken[: len(broken) // 2], "json": sidecar}, "original"),  # an error row keeping its bytes
    }
