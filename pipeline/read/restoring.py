"""One archive row back into its image or its sample, in this process, by the decompress job's rules.

Kept files (``original``, ``jpeg-xl``) and ``lossless`` rows come back by their storage path's rule
(``decode.restore.restore_kept``); codec rows are decoded by the codec that wrote them
(``model.load_codec_for_id``, loaded once per process and codec id) with the decode options given,
each codec taking those it declares (``Codec.select_options``, as the jobs do), so an option a family
adds later passes through unchanged. ``preset`` names a weights card's decode preset, as
``decompress --preset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PIL import Image

from model import load_codec_for_id
from model.options import family_options

from ..decode.restore import needs_codec, restore_kept, sample_members, stored_as
from ..records.paths import Restored, oriented


class RowError(ValueError):
    """A row that gives no image: archived as an error row (``error`` is what the row records), or
    one that fails to decode now. ``key`` and ``shard`` say which."""

    def __init__(self, key: str, shard: str, error: str):
        super().__init__(f"{key!r} in {shard}: {error}")
        self.key, self.shard, self.error = key, shard, error


@lru_cache(maxsize=8)
def codec_for(codec_id: str, device: str, weights_dir: str | None, weights_url: str | None):
    """The codec that wrote ``codec_id``, once per process (each DataLoader worker loads its own)."""
    return load_codec_for_id(codec_id, device=device, weights_dir=weights_dir, weights_url=weights_url)


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` unchanged, refusing a name that no codec family declares (a typo would decode with
    defaults and say nothing)."""
    known = {o.name for o in family_options("decode")} | {"preset"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown decode option(s) {', '.join(unknown)}: the codecs take {', '.join(sorted(known))}")
    return options


@dataclass(frozen=True)
class RowDecoder:
    """Decode options and where codecs come from; picklable (DataLoader workers and Ray tasks get a copy)."""

    options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    weights_dir: str | None = None
    weights_url: str | None = None

    def restored(self, row: dict) -> Restored:
        """What the row gives back (``Restored``): decoded pixels, the kept file, or why not."""
        if not needs_codec(row):
            return restore_kept(row)
        try:
            codec = codec_for(row["codec_id"], self.device, self.weights_dir, self.weights_url)
        except Exception as exc:  # no matching weights here
            return Restored(error=f"refused: {exc}")
        opts = dict(self.options)
        preset = opts.pop("preset", None)
        try:
            return Restored(image=codec.decode([row["bitstream"]], preset=preset,
                                               **codec.select_options("decode", opts))[0])
        except Exception as exc:  # BitstreamError and the like: this row's
            if isinstance(exc, MemoryError):
                raise
            return Restored(error=f"decode failed: {exc}")

    def restored_or_raise(self, row: dict, shard: str) -> Restored:
        """``restored``, with ``RowError`` for an error row or a row that does not restore now."""
        if row.get("error") is not None:
            raise RowError(row["key"], shard, f"archived as an error row: {row['error']}")
        restored = self.restored(row)
        if restored.error:
            raise RowError(row["key"], shard, restored.error)
        return restored

    def image(self, row: dict, shard: str) -> Image.Image:
        """The row's image as a PIL image (kept files opened and turned to display orientation, as the
        pixel paths keep them); ``RowError`` for an error row or one without an image."""
        restored = self.restored_or_raise(row, shard)
        if restored.image is not None:
            return restored.image
        if restored.file is not None:
            return oriented(restored.file)
        raise RowError(row["key"], shard, f"the sample has no image (stored as {stored_as(row)!r})")

    def sample(self, row: dict, shard: str) -> dict[str, bytes | str]:
        """The sample as it was archived, WebDataset style: ``__key__`` and its members by extension (the
        image member as the decompress job writes it); ``RowError`` for an error row."""
        members, _ = sample_members(row, self.restored_or_raise(row, shard))
        return {"__key__": row["key"], **members}

