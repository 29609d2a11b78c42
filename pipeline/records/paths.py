"""Storage paths: how a row keeps its image (its ``stored_as``), each with the rule that gives it back.

A new path is a member here with its rule, plus the decision that takes it (``encode.keeping``).
Why each path is taken is ``keeping``'s; what a restored row is written as is ``decode.restore``'s.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Iterable

from PIL import Image, ImageOps

from ..imagefiles.lossless import decode_pixels, jxl_to_jpeg


@dataclass
class Restored:
    """What a row gives back: ``image`` (decoded pixels) or ``file`` (the kept file's bytes), or
    ``error`` (not restored now: fails the row); ``noted``: the row was an error row at compress
    time (reported, not a failure)."""

    image: Image.Image | None = None
    file: bytes | None = None
    error: str | None = None
    noted: str | None = None


def pixels_sha256(img: Image.Image) -> str:
    """The digest a ``lossless`` row records of its pixels (``Row.pixels_sha256``): mode, size and the raw
    pixels, so a restored image is checked without the original file (whose bytes a new PNG never equals)."""
    import hashlib

    head = f"{img.mode} {img.size[0]}x{img.size[1]}\n".encode()
    return hashlib.sha256(head + img.tobytes()).hexdigest()


class StoragePath(StrEnum):
    """A row's ``stored_as`` (the string is what the row holds). ``pixels``: the row keeps pixels, not
    the file, so the image's metadata is kept beside them (``image_info``) and written back."""

    CODEC = "codec"  # the job's lossy codec: decoded by the codec (``decode.decoding``), not by a rule here
    LOSSLESS = "lossless"  # JPEG XL pixel-exact: the same pixels
    JPEG_XL = "jpeg-xl"  # a JPEG recompressed by JPEG XL: the original file, byte for byte
    ORIGINAL = "original"  # the original file's bytes: the file, byte for byte
    NONE = "none"  # a sample without an image: nothing; its other members pass through

    @property
    def pixels(self) -> bool:
        return self in (StoragePath.CODEC, StoragePath.LOSSLESS)


# Each path's kept bytes back into the image (None: nothing to give back from the bytes).
RESTORE: dict[StoragePath, Callable[[bytes | None], Restored | None]] = {
    StoragePath.LOSSLESS: lambda kept: Restored(image=decode_pixels(kept)),
    StoragePath.JPEG_XL: lambda kept: Restored(file=jxl_to_jpeg(kept)),
    StoragePath.ORIGINAL: lambda kept: Restored(file=kept) if kept is not None else None,
    StoragePath.NONE: lambda kept: None,
}


def oriented(data: bytes) -> Image.Image:
    """The first frame, turned to display orientation: what the pixel paths keep."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return ImageOps.exif_transpose(img)


def count_path(paths: dict[str, dict], stored_as: str, because: str, rows: int, stored: int, original: int) -> None:
    """Add ``rows`` rows of one path and reason to ``paths`` (stored_as -> {rows, bytes, orig_bytes, because})."""
    p = paths.setdefault(stored_as, {"rows": 0, "bytes": 0, "orig_bytes": 0, "because": {}})
    p["rows"], p["bytes"], p["orig_bytes"] = p["rows"] + rows, p["bytes"] + stored, p["orig_bytes"] + original
    p["because"][because] = p["because"].get(because, 0) + rows


def sum_paths(each: Iterable[dict[str, dict]]) -> dict[str, dict]:
    """The paths of several shards added up."""
    out: dict[str, dict] = {}
    for paths in each:
        for stored_as, p in (paths or {}).items():
            for i, (because, n) in enumerate(p["because"].items()):  # bytes counted once, with the first reason
                count_path(out, stored_as, because, n, p["bytes"] if i == 0 else 0, p["orig_bytes"] if i == 0 else 0)
    return out


def describe_paths(paths: dict[str, dict]) -> str:
    """One line: how many rows took each path, why, and their bytes against the originals'."""
    return "kept: " + "; ".join(
        f"{path} {p['rows']} rows ({', '.join(f'{why} {n}' for why, n in sorted(p['because'].items()))}), "
        f"{p['bytes']} of {p['orig_bytes']} original bytes" for path, p in sorted(paths.items()))
