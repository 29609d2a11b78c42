"""What a decode runs with, fixed for the whole job: one frozen settings object from the decompress
job's flags to the codec call (``decoding.in_process``), the decoding process (``sandbox``) and each
shard's marker (``fingerprint``).

The decode options stay a mapping (``FrozenOptions``), not fields: a family declares its own (steps,
gamma, seed, engine, ...), and every one it declares passes through to ``codec.decode(blobs, **options)``
without this module naming it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from ..io.batches import JOB_MAX_PIXELS
from ..io.child import Limits
from ..records.archive import RowGroups


class FrozenOptions(Mapping[str, Any]):
    """A mapping that cannot change after it is made (nested mappings are frozen too); pickles to the
    actors and the decoding process, equal to a dict with the same items."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_items", {k: frozen(v) for k, v in (items or {}).items()})

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __setattr__(self, name, value):
        raise AttributeError("FrozenOptions cannot change")

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self):
        return FrozenOptions, (self.plain(),)

    def plain(self) -> dict[str, Any]:
        """A dict copy (nested ones too): what JSON writes."""
        return {k: v.plain() if isinstance(v, FrozenOptions) else v for k, v in self._items.items()}


def frozen(value: Any) -> Any:
    return FrozenOptions(value) if isinstance(value, Mapping) and not isinstance(value, FrozenOptions) else value


@dataclass(frozen=True)
class DecodeSettings:
    # decode options given (flags, then the preset's values they did not set); each codec takes those it declares
    options: Mapping[str, Any] = field(default_factory=FrozenOptions)
    batch_size: int = 16
    format: str = "webdataset"
    keys: frozenset[str] | None = None  # only these keys; None: all
    max_pixels: int = JOB_MAX_PIXELS  # decode refuses larger headers; also caps originals in audits
    row_groups: RowGroups = RowGroups()  # what the archive is held to: larger row groups and rows are refused
    weights_dir: str | None = None  # where codec weights are looked up; None: model/weights
    limits: Limits = Limits()  # of the process that decodes (``sandbox``)
    # codec id -> the decode options it runs with, its own defaults included (``decoding.resolved_options``)
    codec_options: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenOptions)
    preset: str | None = None  # the weights cards' preset the options came from (recorded; its values are in options)

    def __post_init__(self):
        # frozen all the way down: a caller's dict, changed later, cannot change what a job decodes with
        object.__setattr__(self, "options", FrozenOptions(self.options))
        object.__setattr__(self, "codec_options", FrozenOptions(self.codec_options))

    def options_for(self, codec) -> dict[str, Any]:
        """The options ``codec.decode`` is called with: those given that its family declares."""
        return codec.select_options("decode", self.options)

    def fingerprint(self) -> dict:
        """What a decoded shard depends on, kept in its marker: other settings mean decoding again. The
        options each codec runs with are in it, so a changed default (a card's ``default_steps``) is one
        too; a marker written before they were (no ``codec_options``) is not trusted: decoded once again.
        The preset's name is not: its values are in the options."""
        keys = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest() if self.keys is not None else None
        return {"options": dict(sorted(self.options.plain().items())), "format": self.format, "keys_sha256": keys,
                "batch_size": self.batch_size, "max_pixels": self.max_pixels,
                "max_row_group_bytes": self.row_groups.bytes,
                "codec_options": json.loads(json.dumps(self.codec_options.plain(), sort_keys=True))}  # as a marker reads back
