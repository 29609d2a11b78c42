"""The one codec contract the pipeline, the CLI and the evaluation see.

    codec = load_codec("cdc-s-q2")                               # model.registry
    blobs = codec.encode(images, **encode_options)               # list[bytes], real bitstreams
    encoded = codec.encode_chosen(images, **encode_options)      # with what the encoder chose per image
    images = codec.decode(blobs, steps=8, gamma=0.0, seed=0)     # list[PIL.Image]

Images may be Pillow images, uint8 arrays (H x W or H x W x 3), ``LoadedImage`` or file bytes.
Decoded images come back in the restored mode (``L`` for grey originals, else ``RGB``).

Each codec declares its options (``Option``: name, type, default, encode or decode side); the
CLI, the jobs and the evaluation build their flags and sweeps from these declarations. A name the
codec does not declare is refused with the list of the ones it does; ``None`` means "the default",
which is the declaration's unless the codec instance has its own (a name preset such as
``avif-q40``, or a card's ``default_steps``).

A weights card may name decode presets, sets of decode options a user asks for by name::

    "decode_presets": {"realism": {"steps": 4, "gamma": 0.8, "eta": 1.0}}

    images = codec.decode(blobs, preset="realism")               # options given beside it win
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
from PIL import Image

from pipeline.imagefiles.pixels import DEFAULT_MAX_PIXELS, as_loaded, from_rgb8

from .format import BitstreamError, Container, pack, unpack

Side = Literal["encode", "decode"]


class OptionError(ValueError):
    """An option a codec does not declare, or a value of the wrong type or range."""


@dataclass(frozen=True)
class Option:
    """One option of a codec: ``encode`` options change the bitstream, ``decode`` options only its decoding.

    ``default`` None means the codec instance chooses (for example the model card's default steps).
    """

    name: str
    type: type  # int, float, str or bool
    default: Any
    side: Side
    help: str = ""
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None

    def __post_init__(self):
        if self.side not in ("encode", "decode"):
            raise ValueError(f"option '{self.name}': side must be 'encode' or 'decode', not {self.side!r}")
        if self.type not in (int, float, str, bool):
            raise ValueError(f"option '{self.name}': type must be int, float, str or bool, not {self.type!r}")

    def check(self, value: Any, owner: str = "codec") -> Any:
        """``value`` converted to the declared type (int -> float is allowed) and range-checked."""
        if value is None:
            return None
        t = self.type
        ok = (isinstance(value, t) and not (t is int and isinstance(value, bool))) or (
            t is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise OptionError(f"{owner}: option '{self.name}' takes {t.__name__}, got {value!r}")
        value = t(value)
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{owner}: option '{self.name}' must be one of {list(self.choices)}, got {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise OptionError(f"{owner}: option '{self.name}' must be in {self.min}..{self.max}, got {value!r}")
        return value


def declared(options: Iterable[Option], side: Side | None = None) -> dict[str, Option]:
    """The options of one side (or all), by name."""
    return {o.name: o for o in options if side is None or o.side == side}


def setting_text(options: dict[str, Any]) -> str:
    """``{"steps": 4, "gamma": 0.8}`` -> ``steps 4, gamma 0.8``."""
    return ", ".join(f"{k} {v}" for k, v in options.items())


@dataclass(frozen=True)
class Encoded:
    """One image's bitstream and what its encoder chose beyond the codec id, as text (``Codec.describe``'s
    keys: cdc-avif's rate control chooses the base quality per image); {} where the id says it all."""

    bitstream: bytes
    chosen: dict[str, str]


class Codec(ABC):
    """Base class: subclasses declare ``options`` and implement ``_encode_rgb`` and ``_decode_containers``."""

    #: registry name, e.g. "cdc-s-q2" or "webp-q75"
    name: str
    #: the registered family: "cdc", "hyperprior", "pillow", ...
    family: str
    #: the options this codec takes, encode and decode side
    options: tuple[Option, ...] = ()
    #: this instance's defaults where they differ from the declaration (name presets, card values); never
    #: changed after construction: ``with_presets`` makes a new codec
    presets: Mapping[str, Any] = MappingProxyType({})
    #: named sets of decode options (a weights card's ``decode_presets``), asked for by ``preset=``
    decode_presets: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
    #: decode refuses headers above this many pixels, before allocating anything for them
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def stochastic_decoder(self) -> bool:
        """Whether decoding draws noise (a ``gamma`` option): evaluation then sweeps it."""
        return "gamma" in declared(self.options, "decode")

    @property
    def codec_id(self) -> str:
        """What every bitstream records: the name, plus a short hash of the exact weights where there are any."""
        return self.name

    # ----- options ---------------------------------------------------------------------------
    def with_presets(self, **presets) -> "Codec":
        """A codec like this one with these defaults (checked against the declaration); this one is unchanged."""
        return self._with(presets=self._merged_presets(**presets))

    def with_decode_presets(self, presets: dict[str, dict[str, Any]]) -> "Codec":
        """A codec like this one that also names these sets of decode options (checked against the
        declaration); this one is unchanged."""
        if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
            raise OptionError(f"{self.name}: decode presets must map names to option sets, e.g. "
                              '{"realism": {"steps": 4, "gamma": 0.8}}, got ' + repr(presets))
        checked = {name: self._check("decode", values) for name, values in presets.items()}
        return self._with(decode_presets={**self.decode_presets, **checked})

    def with_max_pixels(self, max_pixels: int) -> "Codec":
        """A codec like this one whose decode refuses headers above ``max_pixels``; this one is unchanged."""
        return self._with(max_pixels=int(max_pixels))

    def _merged_presets(self, **presets) -> dict[str, Any]:
        """This codec's presets with ``presets`` over them, checked: what a constructor or ``with_presets`` sets
        (a new dict: codecs never share one, so none changes another's)."""
        return {**self.presets, **self._check(None, presets)}

    def _with(self, **attributes) -> "Codec":
        """A shallow copy with ``attributes`` replaced: the copy shares the network (codecs never train it)."""
        new = copy.copy(self)
        new.__dict__.update(attributes)
        return new

    def preset_options(self, preset: str) -> dict[str, Any]:
        """The decode options of the preset called ``preset``; an unknown name is refused with the list."""
        if preset not in self.decode_presets:
            names = ", ".join(f"{n} ({setting_text(v)})" for n, v in self.decode_presets.items())
            raise OptionError(f"{self.name} has no decode preset {preset!r} "
                              f"({'its weights card names ' + names if names else 'its weights card names none'})")
        return dict(self.decode_presets[preset])

    def resolve_options(self, side: Side, given: dict[str, Any], preset: str | None = None) -> dict[str, Any]:
        """Every declared option of ``side``: the given value, else the ``preset``'s (decode side), else
        this instance's default."""
        checked = self._check(side, given)
        named = self.preset_options(preset) if preset is not None else {}
        return {
            name: checked[name] if checked.get(name) is not None else named.get(name, self.presets.get(name, opt.default))
            for name, opt in declared(self.options, side).items()
        }

    def select_options(self, side: Side, values: dict[str, Any]) -> dict[str, Any]:
        """The part of ``values`` this codec declares on ``side`` (one setting applied to many codecs)."""
        names = declared(self.options, side)
        return {k: v for k, v in values.items() if k in names}

    def _check(self, side: Side | None, given: dict[str, Any]) -> dict[str, Any]:
        valid = declared(self.options, side)
        unknown = sorted(set(given) - set(valid))
        if unknown:
            what = f"{side} options" if side else "options"
            raise OptionError(f"{self.name} has no {what} {', '.join(map(repr, unknown))} "
                              f"(valid: {', '.join(valid) or 'none'})")
        return {k: valid[k].check(v, self.name) for k, v in given.items()}

    # ----- the contract ----------------------------------------------------------------------
    def encode(self, images: Sequence, **options) -> list[bytes]:
        return [e.bitstream for e in self.encode_chosen(images, **options)]

    def encode_chosen(self, images: Sequence, **options) -> list[Encoded]:
        """``encode``, each bitstream with what the encoder chose for it (no bitstream is read back)."""
        opts = self.resolve_options("encode", options)
        loaded = [as_loaded(im) for im in images]
        coded = self._encode_chosen([im.rgb for im in loaded], **opts)
        codec_id = self.codec_id_for(opts)
        return [
            Encoded(pack(Container(codec_id, im.rgb.shape[0], im.rgb.shape[1], im.mode, tuple(s))), chosen)
            for im, (s, chosen) in zip(loaded, coded)
        ]

    def decode(self, blobs: Sequence[bytes], preset: str | None = None, **options) -> list[Image.Image]:
        opts = self.resolve_options("decode", options, preset)
        containers = [self.parse(b) for b in blobs]
        rgbs = self._decode_containers(containers, **opts)
        return [from_rgb8(rgb, c.mode) for rgb, c in zip(rgbs, containers)]

    def parse(self, blob: bytes) -> Container:
        """Unpack and check that this codec (these exact weights) made the bitstream."""
        c = unpack(blob)
        if not self.accepts_id(c.codec_id):
            raise BitstreamError(
                f"bitstream was written by codec '{c.codec_id}', this is '{self.codec_id}': "
                f"load the matching weights (load_codec('{c.codec_name}'))"
            )
        if c.height * c.width > self.max_pixels:
            raise BitstreamError(
                f"header says {c.width}x{c.height} = {c.height * c.width} pixels, over the decode cap of "
                f"{self.max_pixels} (an edited or hostile header; raise max_pixels to allow it)")
        return c

    def describe(self, blob: bytes) -> dict[str, str]:
        """The encode settings a bitstream records beyond its codec id, as text (cdc-avif: the base
        layer's quality and encoder settings, which rate control chooses per image); {} where the id
        says it all. Reads headers only: no decode. For bitstreams written before (old rows, files);
        an encode gets the same from ``encode_chosen``."""
        return {}

    def codec_id_for(self, encode_options: dict[str, Any]) -> str:
        """The id written into bitstreams encoded with these options (the same for all, by default)."""
        return self.codec_id

    def accepts_id(self, codec_id: str) -> bool:
        """Whether this codec decodes bitstreams tagged ``codec_id``."""
        return codec_id == self.codec_id

    @abstractmethod
    def _encode_rgb(self, rgbs: list[np.ndarray], **encode_options) -> list[tuple[bytes, ...]]:
        """Payload strings for each uint8 H x W x 3 image."""

    def _encode_chosen(self, rgbs: list[np.ndarray], **encode_options) -> list[tuple[tuple[bytes, ...], dict[str, str]]]:
        """(payload strings, what was chosen) for each image: a codec that chooses per image overrides this
        (and ``describe``, which must read the same back from the bitstream)."""
        return [(s, {}) for s in self._encode_rgb(rgbs, **encode_options)]

    @abstractmethod
    def _decode_containers(self, containers: list[Container], **decode_options) -> list[np.ndarray]:
        """uint8 H x W x 3 arrays, cropped to each container's height and width."""
