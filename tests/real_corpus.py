"""Real files (``tests/files/real``, README there: PngSuite, Pillow's test images) and the awkward cases
built in code (issue 23): names that lie about the format, a repeated member name, a sample with its
own ``.png`` beside its ``.jpg``, orientation in a PNG raw-profile text, data after a JPEG's end,
sRGB and every JPEG segment kind in one file. ``samples()`` is one shard's worth, in order."""

from __future__ import annotations

import io
from pathlib import Path

from keep_corpus import XMP, exif
from PIL import Image, PngImagePlugin
from shardkit import image_bytes, photo

REAL = Path(__file__).resolve().parent / "files" / "real"
MOTION_VIDEO = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 4  # what a motion photo appends


def real_files() -> dict[str, bytes]:
    """File name -> bytes of every file of the real corpus."""
    return {p.name: p.read_bytes() for p in sorted(REAL.iterdir()) if p.name != "README.md"}


def raw_profile_png(orientation: int) -> bytes:
    """An RGB PNG whose orientation lives only in ImageMagick's ``Raw profile type exif`` text chunk."""
    raw = exif(orientation)
    digits = raw.hex()
    text = f"\nexif\n{len(raw):8d}\n" + "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72)) + "\n"
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", text)
    return image_bytes(photo(48, 32, seed=21), "PNG", pnginfo=info)


def srgb_png() -> bytes:
    """An RGB PNG with an sRGB chunk (rendering intent 0) and a pHYs (PngSuite has no sRGB sample)."""
    from pipeline.imagefiles.segments import make_chunk, with_png_chunks

    return with_png_chunks(image_bytes(photo(48, 32, seed=22), "PNG"),
                           [make_chunk("sRGB", b"\x00"), make_chunk("pHYs", b"\x00\x00\x0b\x13\x00\x00\x0b\x13\x01")])


def every_segment_jpeg() -> bytes:
    """A JPEG with JFIF density, EXIF, XMP, IPTC (APP13), a comment and a private APP5, in that order."""
    from pipeline.imagefiles.segments import SOI, jpeg_segments, with_jpeg_segments

    base = image_bytes(photo(64, 48, seed=23), "JPEG", quality=92, dpi=(300, 300), exif=exif(), xmp=XMP)
    iptc = b"\xff\xed" + (2 + 24).to_bytes(2, "big") + b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00"[:24]
    com = b"\xff\xfe" + (2 + 11).to_bytes(2, "big") + b"a comment!!"
    app5 = b"\xff\xe5" + (2 + 6).to_bytes(2, "big") + b"maker\x00"
    own = jpeg_segments(base)
    assert base.startswith(SOI) and own
    return with_jpeg_segments(base, [s for s in own if s[1] == 0xE0] + [iptc, com, app5])


def rotated_camera_jpeg() -> bytes:
    """A camera JPEG (EXIF with a thumbnail and maker data) whose EXIF says orientation 6, set in place."""
    from pipeline.imagefiles.segments import reset_orientation

    data = real_files()["flower.jpg"]
    exif_block = Image.open(io.BytesIO(data)).info["exif"]
    return data.replace(exif_block, reset_orientation(exif_block, 6))


def tagged_tiff() -> bytes:
    """A TIFF with a description, a resolution, XMP (tag 700) and IPTC (tag 33723, which is not carried)."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[270], tags[282], tags[283], tags[296], tags[700], tags[33723] = "a description", 300.0, 300.0, 2, XMP, b"iptc"
    return image_bytes(photo(64, 48, seed=30), "TIFF", tiffinfo=tags)


def samples() -> list[tuple[str, dict[str, bytes]]]:
    """(key, members) of one shard: the real files under their own extensions, then the built cases."""
    real = real_files()
    out = [(name.replace(".", "-"), {name.rsplit(".", 1)[1]: data, "json": b'{"src": "%s"}' % name.encode()})
           for name, data in real.items()]
    jpg = image_bytes(photo(64, 48, seed=24), "JPEG", quality=90)
    out += [
        ("rgba-named-jpg", {"jpg": real["basn6a08.png"]}),  # bug 1: an RGBA PNG called .jpg
        ("rgb-png-named-jpg", {"jpg": image_bytes(photo(48, 32, seed=25), "PNG")}),  # bug 2
        ("trns-named-jpg", {"jpg": real["tbrn2c08.png"]}),
        ("raw-profile-rotated", {"png": raw_profile_png(6)}),  # bug 4
        ("dup", {"jpg": jpg}), ("dup", {"jpg": image_bytes(photo(64, 48, seed=26), "JPEG", quality=90)}),  # bug 5
        ("own-png", {"jpg": image_bytes(photo(64, 48, seed=27), "JPEG", quality=90),
                     "png": image_bytes(photo(64, 48, seed=28, mode="L"), "PNG")}),  # bug 6
        ("srgb", {"png": srgb_png()}),
        ("every-segment", {"jpg": every_segment_jpeg()}),
        ("motion-photo", {"jpg": jpg + MOTION_VIDEO}),  # data after the image
        ("rotated-thumbnail", {"jpg": rotated_camera_jpeg()}),
        ("tiff-tags", {"tif": tagged_tiff()}),
        ("avif-xmp", {"avif": image_bytes(photo(96, 64, seed=29), "AVIF", quality=98, xmp=XMP)}),
    ]
    return out

