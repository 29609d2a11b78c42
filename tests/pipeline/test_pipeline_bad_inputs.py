"""One shard holding every kind of bad input, plus a truncated shard: nothing kills the job,
each bad image becomes an error row with a reason, every other image is archived as it should be."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image, ImageOps
from shardkit import archive_rows, image_bytes, photo, stats, write_shard

from jobs import compress
from model import load_codec

BOMB_CAP = 1_000_000


def bad_samples() -> dict[str, tuple[dict[str, bytes], str | None]]:
    """key -> (members, expected error substring or None for a good row)."""
    jpeg, png = image_bytes(photo(64, 48), "JPEG", quality=90), image_bytes(photo(64, 48), "PNG")
    corrupt_png = bytearray(png)
    corrupt_png[60:90] = b"\xff" * 30  # inside IDAT: the chunk checksum no longer matches
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    palette = photo(32, 24).convert("P", palette=Image.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    frames = [photo(32, 24, seed=i) for i in range(3)]
    return {
        "zero-byte": ({"jpg": b""}, "empty file"),
        "truncated-jpeg": ({"jpg": jpeg[: len(jpeg) // 2]}, "jpg: cannot decode image: image file is truncated"),
        "truncated-png": ({"png": png[: len(png) // 2]}, "png: cannot decode image: image file is truncated"),
        "corrupt-png": ({"png": bytes(corrupt_png)}, "png: cannot decode image"),
        "not-an-image": ({"jpg": b"this is a text file, not a JPEG\n" * 10}, "cannot decode"),
        "no-image-member": ({"txt": b"caption only"}, None),  # passes through (stored_as none)
        "bomb": ({"png": image_bytes(Image.new("L", (1500, 1000)), "PNG")}, "over the cap"),
        "one-pixel": ({"png": image_bytes(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")}, None),
        "cmyk-jpeg": ({"jpg": image_bytes(photo(40, 30).convert("CMYK"), "JPEG")}, None),
        "png-16bit": ({"png": image_bytes(Image.fromarray(np.asarray(photo(40, 30, mode="L")).astype(np.uint16) * 257), "PNG")}, None),
        "palette-transparency": ({"png": image_bytes(palette, "PNG")}, None),
        "exif-rotated": ({"jpg": image_bytes(photo(40, 20), "JPEG", exif=exif), "json": b'{"a": 1}'}, None),
        "greyscale": ({"jpg": image_bytes(photo(40, 30, mode="L"), "JPEG")}, None),
        "animated-gif": ({"gif": image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])}, None),
        "animated-webp": ({"webp": image_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:2])}, None),
    }


def test_every_bad_input_becomes_an_error_row_and_nothing_else_is_lost(ray_local, tmp_path):
    cases = bad_samples()
    write_shard(tmp_path / "in" / "bad-000000.tar", [(k, m) for k, (m, _) in cases.items()])
    truncated = write_shard(tmp_path / "in" / "cut-000000.tar",
                            [(f"t{i}", {"png": image_bytes(photo(seed=i), "PNG")}) for i in range(3)])
    raw = truncated.read_bytes()
    truncated.write_bytes(raw[: len(raw) - 10240 + 300])  # into the last member

    out = tmp_path / "archive"
    rc = compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q80",
                        "--max-pixels", str(BOMB_CAP), "--batch-size", "4", "--no-progress"])
    assert rc == 0  # bad input never fails the job

    rows = {r["key"]: r for r in archive_rows(out)}
    assert sorted(rows) == sorted([*cases, "t0", "t1", "t2"])  # every sample exactly once
    webp = load_codec("webp-q80")
    for key, (members, expected) in cases.items():
        row = rows[key]
        image = members.get(row["member"])
        if expected is None:
            assert row["error"] is None, (key, row["error"])
            if image is None:
                assert (row["stored_as"], row["bitstream"]) == ("none", None), key
                continue
            shown = ImageOps.exif_transpose(Image.open(io.BytesIO(image))).size  # as a viewer shows it
            assert (row["width"], row["height"]) == shown, key
            if row["stored_as"] == "codec":
                assert webp.decode([row["bitstream"]])[0].size == shown, key
            else:  # kept losslessly (``keeping``): the file, or its pixels exactly
                assert row["stored_as"] in ("original", "lossless", "jpeg-xl") and row["stored_because"], key
        else:
            assert row["error"] and expected in row["error"], (key, row["error"])
            assert row["bitstream"] == image, key  # the error row keeps the original file (None: none read)
    assert (rows["one-pixel"]["width"], rows["one-pixel"]["height"]) == (1, 1)
    assert rows["cmyk-jpeg"]["orig_mode"] == "CMYK" and rows["cmyk-jpeg"]["orig_format"] == "JPEG"
    assert rows["png-16bit"]["orig_mode"].startswith("I")
    assert rows["palette-transparency"]["orig_mode"] == "P"
    assert rows["greyscale"]["orig_mode"] == "L"
    exif_row = rows["exif-rotated"]
    assert (exif_row["orientation"], exif_row["width"], exif_row["height"]) == (6, 20, 40)
    assert dict(exif_row["metadata"]) == {"json": b'{"a": 1}'}
    assert rows["animated-gif"]["frames"] == 3 and rows["animated-webp"]["frames"] == 2
    assert rows["zero-byte"]["orig_bytes"] == 0 and rows["zero-byte"]["orig_sha256"]

    assert rows["t0"]["error"] is None and rows["t1"]["error"] is None
    assert "truncated" in rows["t2"]["error"]
    shard_stats = stats(out)
    assert "truncated" in shard_stats["cut-000000"]["truncated"]
    assert shard_stats["bad-000000"]["errors"] == sum(e is not None for _, e in cases.values())
    assert {k for k, r in rows.items() if r["stored_as"] == "codec"} >= {"exif-rotated", "greyscale"}
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["failed"] == 0 and manifest["counts"]["rows"] == len(cases) + 3
    assert any("cut-000000" in w for w in manifest["warnings"])
