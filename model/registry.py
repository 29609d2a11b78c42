"""Codec families, and codecs by name, in the manner of CompressAI's ``@register_model``.

The registry is data: the families and what they declare. It imports no family and builds nothing:
networks are ``model.zoo``'s (from each family's ``Networks`` hooks, ``model.hooks``), plugins are
imported by ``model.plugins`` before the first look-up. The built-in families are registered in one
place above it (``model/codecs/__init__.py``, imported by ``model/__init__.py``); a plugin registers
its own::

    register_family(Family(name="pillow", load=load, parse=parse, options=OPTIONS, listing=listing))

``parse`` turns a name into the weights file it needs (or None) and the options the name fixes:
``avif-q40`` -> no weights, quality 40; ``cdc-s-q2`` -> weights ``cdc-s-q2``. Which family a name goes
to does not depend on the order of registration: a name is offered first to the families that declare
a prefix of it (``Family.prefixes``), the longest prefix first, then to the families whose names are
weights files' names; a weights-bearing family claims a file only when the card's ``family`` is one
it loads (``Family.card_families``), never by the name's prefix. A path to a ``.safetensors`` file
goes to the family its card names. The registry is the one piece of process-wide state: families
are code, registered once per process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .codec import Codec, Option
from .format import BitstreamError
from .hooks import Evaluation, Networks
from .plugins import ENTRY_POINT_GROUP, PLUGINS_ENV, load_plugins
from .weights import Weights, WeightsError, WeightsResolver, split_codec_id


@dataclass(frozen=True)
class ParsedName:
    """What a codec name means to a family: the weights it needs (None: no weights) and its presets."""

    weights: str | None
    presets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CodecRequest:
    """Everything a family's loader gets."""

    name: str  # as asked for, e.g. "cdc-s-q2", "avif-q40", or the card's name for a path
    presets: dict[str, Any]  # options the name fixes; the registry applies them after loading
    weights: Weights | None  # the weights file the name resolved to (None for weightless families)
    resolver: WeightsResolver  # for any further files the family needs
    device: str
    short_hash: str | None = None  # set when loading for bitstreams tagged NAME@HASH (decoding an archive)


@dataclass(frozen=True)
class CodecInfo:
    """One row of ``python -m model list``."""

    name: str
    family: str
    description: str
    path: Path | None = None


def whole_name_is_weights(name: str) -> ParsedName:
    """The default ``parse``: the name is a weights file's name, with no presets."""
    return ParsedName(name)


@dataclass(frozen=True)
class Family:
    """A codec family's registration: how its names parse, how its codecs load, what they declare and
    what its weights cards hold; what it trains (``networks``) and how it is evaluated (``evaluation``)
    are its hooks, which the registry keeps and never calls."""

    name: str  # "pillow", "hyperprior", "cdc", ...
    load: Callable[[CodecRequest], Codec]
    parse: Callable[[str], ParsedName | None] = whole_name_is_weights
    # The starts of the names its ``parse`` claims ("diffc-avif"); none: its names are weights files' names.
    prefixes: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()  # what its codecs declare (flags and sweeps are built from these)
    description: str = ""
    card_fields: tuple[str, ...] = ()  # fields its weights cards must hold
    loads_cards_of: tuple[str, ...] = ()  # other families whose weights it loads (DiffC: "cdc-avif")
    listing: Callable[[list[Weights]], list[CodecInfo]] | None = None  # default: one row per weights file
    # What its encode and its decode run a network for, per side: True always, False never, or the
    # option names that make it run one when set (cdc-avif: rate control decodes to choose a quality, the
    # gate to choose a strength).
    # The jobs put a side that runs none on CPUs only, and book GPUs for one that does. None: a
    # family with a network (its own or the cards it loads) runs it on both sides.
    network_at: dict[str, bool | tuple[str, ...]] | None = None
    networks: Networks | None = None  # training hooks: its networks' config, builder, sizes, samples
    evaluation: Evaluation = Evaluation()  # evaluation hooks: its base layer, its conformance examples

    def runs_network(self, side: str, options: dict[str, Any]) -> bool:
        """Whether a codec of this family runs a network to ``side`` with these (resolved) options."""
        if self.network_at is None:
            return self.networks is not None or bool(self.loads_cards_of)
        when = self.network_at.get(side, False)  # options that run it when given (a flag: when true)
        if isinstance(when, bool):
            return when
        return any(value is not None and value is not False for value in map(options.get, when))

    @property
    def card_families(self) -> tuple[str, ...]:
        return (self.name, *self.loads_cards_of)

    def list(self, weights: list[Weights]) -> list[CodecInfo]:
        """Its rows for ``python -m model list``, given the weights files found."""
        if self.listing is not None:
            return self.listing(weights)
        return [CodecInfo(w.name, self.name, w.card.get("description", ""), w.path)
                for w in weights if w.family == self.name]

    def check_card(self, weights: Weights) -> None:
        missing = [f for f in self.card_fields if f not in weights.card]
        if missing:
            raise WeightsError(f"{weights.path.with_suffix('.json')}: card lacks {', '.join(missing)} "
                               f"(family {self.name} needs {', '.join(self.card_fields)})")
        recorded = weights.card.get("sha256")
        if recorded and recorded != weights.sha256:
            raise WeightsError(f"{weights.path}: sha256 {weights.sha256[:12]}... is not its card's "
                               f"{str(recorded)[:12]}...: the card describes other weights (re-export the pair)")


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family (from its own module); the same module's family again (re-imported) replaces it."""
    old = _FAMILIES.get(family.name)
    if old is not None and _source(old) != _source(family):
        raise ValueError(f"codec family '{family.name}' is already registered by {old.load.__module__}")
    _FAMILIES[family.name] = family
    return family


def _source(family: Family) -> str:
    """The file that registered a family (one file may be imported under two module names)."""
    module = sys.modules.get(family.load.__module__)
    return getattr(module, "__file__", None) or family.load.__module__


def families() -> list[Family]:
    """Every registered family (built-ins first, in ``model/codecs/__init__.py``'s order, which decides
    nothing but listings), after importing the plugins (``model.plugins``)."""
    load_plugins()
    return list(_FAMILIES.values())


def get_family(name: str) -> Family:
    for fam in families():
        if fam.name == name:
            return fam
    raise KeyError(f"unknown codec family '{name}' (registered: {', '.join(_FAMILIES)}; plugins are "
                   f"imported from ${PLUGINS_ENV} and the '{ENTRY_POINT_GROUP}' entry points)")


def runs_network(codec: Codec, side: str, options: dict[str, Any] | None = None) -> bool:
    """Whether ``codec`` runs a network to ``side`` (its family's ``network_at``) with ``options``
    (those given; the codec's presets fill the rest)."""
    return get_family(codec.family).runs_network(side, codec.resolve_options(side, options or {}))


# ----- look-ups -------------------------------------------------------------------------------
def list_codecs(weights_dir: Path | str | None = None) -> list[CodecInfo]:
    """Every loadable codec: weights files first (by name), then the families' name patterns."""
    weights = WeightsResolver.from_env(weights_dir).local()
    rows = [row for fam in families() for row in fam.list(weights)]
    claimed = {row.path for row in rows}
    rows += [CodecInfo(w.name, str(w.family), "(no registered family loads these weights)", w.path)
             for w in weights if w.path not in claimed]
    return sorted((r for r in rows if r.path), key=lambda r: r.name) + [r for r in rows if not r.path]


def load_codec(name_or_path: str | Path, device: str = "cpu", weights_dir: Path | str | None = None,
               weights_url: str | None = None, resolver: WeightsResolver | None = None) -> Codec:
    """A codec by registry name or by path to a ``.safetensors`` file with its ``.json`` card.

    Weights are looked up by ``resolver``, else in ``weights_dir`` / at ``weights_url`` (see
    ``WeightsResolver.from_env``)."""
    return _load(str(name_or_path), device, resolver or WeightsResolver.from_env(weights_dir, weights_url), None)


def load_codec_for_id(codec_id: str, device: str = "cpu", weights_dir: Path | str | None = None,
                      weights_url: str | None = None, resolver: WeightsResolver | None = None) -> Codec:
    """The codec that wrote bitstreams tagged ``codec_id``; refuses mismatching weights."""
    name, short_hash = split_codec_id(codec_id)
    resolver = resolver or WeightsResolver.from_env(weights_dir, weights_url)
    try:
        codec = _load(name, device, resolver, short_hash)
    except KeyError:
        raise BitstreamError(
            f"no weights for codec '{codec_id}': '{name}' is not registered here "
            f"(install the weights file {name}.safetensors into {resolver.describe()})"
        ) from None
    if not codec.accepts_id(codec_id):
        raise BitstreamError(
            f"weights mismatch: bitstreams need '{codec_id}' but the registered '{name}' is "
            f"'{codec.codec_id}' (the weights were retrained or replaced; find the matching file)"
        )
    return codec


def _load(name: str, device: str, resolver: WeightsResolver, short_hash: str | None) -> Codec:
    if name.endswith(".safetensors"):
        path = Path(name)
        if not path.exists():
            raise KeyError(f"unknown codec '{name}': no such weights file")
        weights = Weights.open(path)
        fam = _claiming_family(weights)
        return _finish(fam, CodecRequest(weights.name, {}, weights, resolver, device))
    for fam in offered_to(name):
        parsed = fam.parse(name)
        if parsed is None:
            continue
        weights = None
        if parsed.weights is not None:
            weights = resolver.find(parsed.weights, short_hash)
            if weights is None or weights.family not in fam.card_families:
                continue
        return _finish(fam, CodecRequest(name, parsed.presets, weights, resolver, device, short_hash))
    known = ", ".join(i.name for i in list_codecs(resolver.dirs[0]))
    raise KeyError(f"unknown codec '{name}': not a registered name or a .safetensors path "
                   f"(known: {known}; `python -m model list` shows them; weights are looked up in "
                   f"{resolver.describe()})")


def offered_to(name: str) -> list[Family]:
    """The families a name is offered to, in turn: those declaring a prefix of it, the longest prefix first
    (``diffc-avif-X`` is diffc-avif's before diffc's), then those whose names are weights files' names,
    whose cards tell them apart; ties go by family name, never by the order of registration."""
    def claim(fam: Family) -> int:
        return max((len(p) for p in fam.prefixes if name.startswith(p)), default=-1 if fam.prefixes else 0)

    return sorted((f for f in families() if claim(f) >= 0), key=lambda f: (-claim(f), f.name))


def _claiming_family(weights: Weights) -> Family:
    fams = sorted(families(), key=lambda f: f.name)
    for fam in [f for f in fams if f.name == weights.family] + [f for f in fams if weights.family in f.card_families]:
        return fam
    raise KeyError(f"{weights.path}: its card names family '{weights.family}', which no registered family "
                   f"loads (registered: {', '.join(f.name for f in fams)})")


def _finish(fam: Family, request: CodecRequest) -> Codec:
    if request.weights is not None:
        fam.check_card(request.weights)
    codec = fam.load(request).with_presets(**request.presets)
    weights = request.weights
    # a card's decode presets are its own family's options (DiffC also loads cdc-avif cards)
    if weights is not None and weights.family == fam.name and "decode_presets" in weights.card:
        try:
            codec = codec.with_decode_presets(weights.card["decode_presets"])
        except ValueError as exc:
            raise WeightsError(f"{weights.path.with_suffix('.json')}: decode_presets: {exc}") from None
    return codec
