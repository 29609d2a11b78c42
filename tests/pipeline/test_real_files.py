"""The archive keeps what real files carry (issue 23): the real corpus (``tests/files/real``: PngSuite,
Pillow's test images) and the awkward cases built in code (``real_corpus``) through compress, both
decompress formats and the audit, by default and with ``--lossless``, each property checked on the
files as written; and one member whose writer fails among good ones, which must not fail its shard."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageOps
from real_corpus import MOTION_VIDEO, samples
from shardkit import archive_rows, write_shard
from test_keeping import opened, tar_samples

from jobs import compress, decompress
from model import load_codec, load_codec_for_id
from pipeline.imagefiles.segments import chunk_type, jpeg_segments, png_chunks, raw_profile, reset_orientation, segment_marker
from pipeline.decode.decoding import DecodeSettings, decode_shard, in_process
from pipeline.encode.encoding import EncodeSettings, compress_shard
from pipeline.io.storage import Storage

CODEC = "webp-q80"  # a fast codec: the default's diffusion decoder is not what these tests are about
RUN = ["--actors", "1", "--no-progress"]
TRNS = ("tbrn2c08-png", "tbbn0g04-png", "tbbn3p08-png", "tm3n3p02-png", "rgb_trns-png", "l_trns-png",
        "p_trns_single-png", "1_trns-png", "trns-named-jpg")


def alpha(data: bytes) -> np.ndarray:
    return np.asarray(opened(data).convert("RGBA").getchannel("A"))


def shown(data: bytes) -> Image.Image:
    """The image as a viewer shows it: EXIF orientation (wherever Pillow finds it) applied."""
    return ImageOps.exif_transpose(opened(data))


def texts(data: bytes) -> dict[str, str]:
    """A PNG's texts, the orientation (reset when the pixels are turned) left out of XMP and raw-profile EXIF."""
    out = {}
    for key, value in opened(data).text.items():
        if key == "Raw profile type exif":
            tags = Image.Exif()
            tags.load(raw_profile(value))
            value = repr({t: v for t, v in tags.items() if t != 0x0112})
        out[key] = re.sub(r'tiff:Orientation="\d"|<tiff:Orientation>\d</tiff:Orientation>', "", value)
    return out


def background(data: bytes) -> tuple | None:
    """A PNG's bKGD as the colour it names (a palette's index looked up), 8-bit originals only."""
    img = opened(data)
    value = img.info.get("background")
    if img.mode == "P" and value is not None:
        return tuple(img.getpalette()[3 * value:3 * value + 3])
    return value if np.asarray(img).dtype == np.uint8 and img.mode != "1" else None


def segments_of(data: bytes, *markers: int) -> list[bytes]:
    return [s for s in jpeg_segments(data) if segment_marker(s) in markers]


def chunks_of(data: bytes, *kinds: str) -> list[bytes]:
    return [c for c in png_chunks(data) if chunk_type(c) in kinds]


def originals() -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for key, members in samples():
        out[key if key not in out else f"{key}~2"] = members  # decoding names a repeated key apart
    return out


def test_real_files_come_back_by_default_and_losslessly(ray_local, tmp_path):
    write_shard(tmp_path / "in" / "real-000000.tar", samples())
    given = originals()

    # default flags (a fast codec): nothing lost, no failed shard or row
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "arc"), "--codec", CODEC, *RUN]) == 0
    rows = {r["key"] + ("~2" if r["notes"] and "repeats a name" in r["notes"][0] else ""): r
            for r in archive_rows(tmp_path / "arc")}
    assert sorted(rows) == sorted(given) and not any(r["error"] for r in rows.values())
    assert decompress.main(["--input", str(tmp_path / "arc"), "--output", str(tmp_path / "wds"), *RUN]) == 0
    back = tar_samples(tmp_path / "wds" / "real-000000.tar")
    assert sorted(back) == sorted(given) and all(sorted(back[k]) == sorted(given[k]) for k in given)
    marker = json.loads((tmp_path / "wds" / "real-000000.decoded.json").read_text())
    assert marker["renamed"] == {"dup~2": "dup"} and not marker["failed_rows"]

    # 1, 2: content decides: PNGs named .jpg come back as PNGs under their name, alpha and all
    for key in ("rgba-named-jpg", "rgb-png-named-jpg", "trns-named-jpg"):
        assert opened(back[key]["jpg"]).format == "PNG", key
        assert "named .jpg" in rows[key]["notes"][0], key
    assert np.array_equal(alpha(back["rgba-named-jpg"]["jpg"]), alpha(given["rgba-named-jpg"]["jpg"]))
    # 3: transparency in every tRNS form comes back exact
    for key in TRNS:
        ext = next(iter(given[key]))
        assert rows[key]["stored_because"] == "alpha", key
        assert np.array_equal(alpha(back[key][ext]), alpha(given[key][ext])), key
    # 4: orientation in a PNG's raw-profile text: turned once, as shown
    was, now = shown(given["raw-profile-rotated"]["png"]), shown(back["raw-profile-rotated"]["png"])
    assert was.size == now.size == (32, 48)
    # 5: a repeated member name: two rows, both back
    assert back["dup"]["jpg"] != back["dup~2"]["jpg"]
    # data after the image, HEIF, MPO: the file itself, and the row says why
    for key, why in (("motion-photo", "data after the image"), ("hopper-heif", "HEIF"), ("frame_size-mpo", "multi-image"),
                     ("second_frame_comment-gif", "animation")):
        assert rows[key]["stored_because"].startswith(why), key
        ext = next(e for e in given[key] if e != "json")
        assert back[key][ext] == given[key][ext], key
    assert back["motion-photo"]["jpg"].endswith(MOTION_VIDEO)

    # segments kept on the codec path: JPEG APPn and COM, the EXIF thumbnail, PNG colour chunks, GIF, TIFF, AVIF
    assert jpeg_segments(back["every-segment"]["jpg"]) == jpeg_segments(given["every-segment"]["jpg"])  # all, in order
    coded_jpegs = [k for k, r in rows.items() if r["stored_as"] == "codec" and r["orig_format"] == "JPEG"]
    assert {"iptc-jpg", "photoshop-200dpi-jpg", "flower-jpg", "rotated-thumbnail", "hopper-jpg"} <= set(coded_jpegs)
    for key in coded_jpegs:  # every APPn and COM segment, in order, EXIF thumbnails included; orientation reset
        assert jpeg_segments(back[key]["jpg"]) == [s[:4] + reset_orientation(s[4:]) if s[4:10] == b"Exif\x00\x00" else s
                                                   for s in jpeg_segments(given[key]["jpg"])], key
    turned = opened(back["rotated-thumbnail"]["jpg"])  # turned once; its EXIF, thumbnail included, kept
    assert turned.size == (360, 480)
    assert turned.info["exif"] == reset_orientation(opened(given["rotated-thumbnail"]["jpg"]).info["exif"])
    assert b"\xff\xd8" in turned.info["exif"][8:] and turned.getexif()[0x0112] == 1
    assert segments_of(back["hopper-jpg"]["jpg"], 0xFE) == segments_of(given["hopper-jpg"]["jpg"], 0xFE)
    for key, kinds in (("ccwn2c08-png", ("cHRM", "gAMA")), ("srgb", ("sRGB", "pHYs")), ("tbbn3p08-png", ("gAMA",))):
        assert rows[key]["stored_as"] in ("codec", "lossless"), key
        assert chunks_of(back[key]["png"], *kinds) == chunks_of(given[key]["png"], *kinds) != [], key
    assert opened(back["exif2c08-png"]["png"]).info["exif"] == opened(given["exif2c08-png"]["png"]).info["exif"]
    assert opened(back["hopper-gif"]["gif"]).info["comment"] == opened(given["hopper-gif"]["gif"]).info["comment"]
    tif = "hopper_float_dpi_2-tif"
    assert opened(back[tif]["tif"]).info["dpi"] == opened(given[tif]["tif"]).info["dpi"]
    tagged, tags_were = opened(back["tiff-tags"]["tif"]), opened(given["tiff-tags"]["tif"])
    assert (tagged.info["xmp"], tagged.info["dpi"], tagged.tag_v2[270]) == \
        (tags_were.info["xmp"], (300.0, 300.0), "a description")
    assert rows["tiff-tags"]["notes"] == ["not kept: TIFF tag IptcNaaInfo (33723: not carried)"]
    assert opened(back["avif-xmp"]["avif"]).info["xmp"] == opened(given["avif-xmp"]["avif"]).info["xmp"]
    assert "hIST" in " ".join(rows["ch1n3p04-png"]["notes"] or []) or rows["ch1n3p04-png"]["stored_as"] == "original"

    # 6: --format png never writes over a member of the sample
    assert decompress.main(["--input", str(tmp_path / "arc"), "--output", str(tmp_path / "png"), "--format", "png",
                            *RUN]) == 0
    files = {p.name: p.read_bytes() for p in (tmp_path / "png" / "real-000000").iterdir()}
    assert files["own-png.png"] == given["own-png"]["png"]
    assert opened(files["own-png.decoded.png"]).size == opened(given["own-png"]["jpg"]).size

    # the audit measures the written files, alpha in every form and orientation as shown included
    assert decompress.main(["--input", str(tmp_path / "arc"), "--output", str(tmp_path / "audit"), "--audit",
                            str(tmp_path / "in"), *RUN]) == 0
    audit = pq.read_table(tmp_path / "audit" / "audit.parquet").to_pylist()
    assert not [r for r in audit if r["error"]]
    for r in audit:
        if r["key"] in TRNS or r["key"] in ("i_trns-png", "tbwn0g16-png"):
            assert r["alpha_max_error"] == 0 and r["exact"], r["key"]
        if r["stored_as"] in ("original", "jpeg-xl", "lossless"):
            assert r["exact"], r["key"]

    # --lossless: every image back byte for byte, or its pixels, alpha and metadata exact, whatever its name
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "ll"), "--lossless", "--codec", CODEC,
                          *RUN]) == 0
    assert decompress.main(["--input", str(tmp_path / "ll"), "--output", str(tmp_path / "llout"), *RUN]) == 0
    lossless_rows = {r["key"]: r for r in archive_rows(tmp_path / "ll")}
    back = tar_samples(tmp_path / "llout" / "real-000000.tar")
    for key, members in given.items():
        row = lossless_rows[key.split("~")[0]]
        for ext, data in members.items():
            if data == back[key][ext]:
                continue
            assert row["stored_as"] == "lossless" and ext == row["member"], (key, ext, row["stored_as"])
            was, now = shown(data), shown(back[key][ext])
            assert np.array_equal(np.asarray(was.convert("RGBA")), np.asarray(now.convert("RGBA"))), key
            assert background(back[key][ext]) == background(data), key
            for kind in ("gAMA", "cHRM", "sRGB", "pHYs", "tIME", "sPLT"):
                assert chunks_of(back[key][ext], kind) == chunks_of(data, kind) or kind in " ".join(row["notes"] or []), \
                    (key, kind)
            assert texts(back[key][ext]) == texts(data), key  # tEXt, zTXt, iTXt: the same texts, orientation reset
    assert decompress.main(["--input", str(tmp_path / "ll"), "--output", str(tmp_path / "llaudit"), "--audit",
                            str(tmp_path / "in"), *RUN]) == 0
    lossless_audit = pq.read_table(tmp_path / "llaudit" / "audit.parquet").to_pylist()
    assert all(r["exact"] for r in lossless_audit if r["stored_as"] != "none")


def test_a_member_whose_writer_fails_does_not_fail_its_shard(tmp_path):
    """Real rows decoded by the real codec; two images are handed to the writers in modes they refuse
    (16-bit grey for a JPEG member: a PNG beside it; float: not even a PNG, a failed row)."""
    shard = write_shard(tmp_path / "in" / "w-000000.tar", [s for s in samples() if s[0] in (
        "hopper-jpg", "flower-jpg", "iptc-jpg", "every-segment", "hopper_gray-jpg")])
    storage = Storage()
    compress_shard(load_codec(CODEC), str(shard), str(tmp_path / "arc"), EncodeSettings(), storage)
    real = in_process(load_codec_for_id, DecodeSettings())
    modes = {1: "I;16", 3: "F"}  # positions in the batch

    def refused_modes(codec_id, blobs):
        return [(img.convert(modes[i]) if i in modes and img is not None else img, error)
                for i, (img, error) in enumerate(real(codec_id, blobs))]

    marker = decode_shard(refused_modes, str(tmp_path / "arc" / "w-000000.parquet"), str(tmp_path / "out"),
                          DecodeSettings(), storage)
    rows = [r for r in archive_rows(tmp_path / "arc") if r["stored_as"] == "codec"]
    assert len(rows) >= 4
    fallback_key, failed_key = rows[1]["key"], rows[3]["key"]
    assert [f["key"] for f in marker.failed_rows] == [failed_key]
    assert [f["key"] for f in marker.fallbacks] == [fallback_key] and "JPEG writer failed" in marker.fallbacks[0]["why"]
    back = tar_samples(tmp_path / "out" / "w-000000.tar")
    assert set(back[fallback_key]) == {"json", "jpg.png"} and opened(back[fallback_key]["jpg.png"]).mode == "I;16"
    assert failed_key not in back
    assert all(opened(back[r["key"]]["jpg"]).format == "JPEG" for r in rows if r["key"] not in (fallback_key, failed_key))
    assert marker.decoded == len(rows) + sum(r["stored_as"] != "codec" for r in archive_rows(tmp_path / "arc")) - 1


def test_descriptions_are_true():
    """Item 9: the job's own limit named, no object reprs, XMP once, frames and pages told apart."""
    from pipeline.imagefiles.pixels import ImageError, load_image
    from pipeline.imagefiles.metadata import file_facts
    from pipeline.imagefiles.segments import make_chunk, PNG_SIGNATURE
    from pipeline.encode.keeping import Policy, decide
    from real_corpus import real_files

    huge = PNG_SIGNATURE + make_chunk("IHDR", (100000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])) + \
        make_chunk("IDAT", b"x") + make_chunk("IEND", b"")
    for data, says in ((huge, "10000000000 pixels, over the cap of"), (b"not an image", "cannot identify image file")):
        try:
            load_image(data)
        except ImageError as exc:
            assert says in str(exc) and "0x" not in str(exc) and ("--max-pixels" in str(exc)) == (data is huge), str(exc)
        else:
            raise AssertionError("loaded")
    real = real_files()
    info = file_facts(real["xmp_tags_orientation_exiftool.png"]).image_info
    assert "xmp" in info and "text:XML:com.adobe.xmp" not in info
    mpo, gif = real["frame_size.mpo"], real["second_frame_comment.gif"]
    assert decide(mpo, file_facts(mpo), Policy()).because == "multi-image"
    assert decide(gif, file_facts(gif), Policy()).because == "animation"
    assert decide(mpo, file_facts(mpo), Policy(allow_first_frame=True)).because == "policy, first of 2 images kept (flag)"
