"""Codec families, and codecs by name, in the manner of CompressAI's ``@register_model``.

The registry is data: the families and what they declare. It imports no family. The built-in
families are registered in one place above it (``model/codecs/__init__.py``, imported by
``model/__init__.py``); a plugin registers its own::

    register_family(Family(name="pillow", load=load, parse=parse, options=OPTIONS, listing=listing))

A name is offered to every family in registration order. ``parse`` turns it into the weights
file it needs (or None) and the options the name fixes: ``avif-q40`` -> no weights, quality 40;
``cdc-s-q2`` -> weights ``cdc-s-q2``. A weights-bearing family claims a file only when the card's
``family`` is one it loads (``Family.card_families``), never by the name's prefix. A path to a
``.safetensors`` file goes to the family its card names.

Plugins: modules named in ``$DIFFARC_CODEC_PLUGINS`` (comma-separated module names or ``.py``
paths) and the entry points of group ``diffarc.codecs`` are imported before the first look-up,
in every process that looks one up (Ray workers and subprocesses too), and register themselves.
The registry is the one piece of process-wide state: families are code, registered once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from .codec import Codec, Option
from .format import BitstreamError
from .nn.config import dataclass_from_dict
from .weights import Weights, WeightsError, WeightsResolver, split_codec_id

PLUGINS_ENV = "DIFFARC_CODEC_PLUGINS"
ENTRY_POINT_GROUP = "diffarc.codecs"


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

    def network(self):
        """The network of ``weights``, built by the family its card names (torch is imported here)."""
        return load_network(self.weights.path)


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
    """A codec family: how to parse its names, load its codecs, and what its codecs and cards hold."""

    name: str  # "pillow", "hyperprior", "cdc", ...
    load: Callable[[CodecRequest], Codec]
    parse: Callable[[str], ParsedName | None] = whole_name_is_weights
    options: tuple[Option, ...] = ()  # what its codecs declare (flags and sweeps are built from these)
    description: str = ""
    config: type | None = None  # config dataclass of its networks (stored in weights files and cards)
    network: Callable[[Any], Any] | None = None  # config -> trainable network (torch.nn.Module)
    sizes: dict[str, Any] = field(default_factory=dict)  # named configs ("cdc-s"): train --config, benchmarks
    default_steps: int | None = None  # decoding steps when a weights card names none (export writes it)
    # The samples its network's training loss takes after (lmbda, rho, perceptual): "photos" (crops) or
    # "avif-pairs" (crop, AVIF decode, quality); model/training/loop.py makes them.
    training_data: str = "photos"
    base_layer: str | None = None  # the classical format its bitstreams build on ("avif"): benchmarks compare
    card_fields: tuple[str, ...] = ()  # fields its weights cards must hold
    loads_cards_of: tuple[str, ...] = ()  # other families whose weights it loads (DiffC: "cdc-avif")
    listing: Callable[[list[Weights]], list[CodecInfo]] | None = None  # default: one row per weights file
    wrap: Callable[..., Codec] | None = None  # (network, name, sha256, device, **settings) -> its codec
    # Names the codec conformance suite (tests/codecs/test_codec_conformance.py) loads; WEIGHTS stands for a
    # tiny random weights file of the family whose cards it loads. Default: ("WEIGHTS",) for a family
    # with a network, none otherwise.
    examples: tuple[str, ...] = ()
    # What its encode and its decode run a network for, per side: True always, False never, or the
    # option names that make it run one when set (cdc-avif: rate control decodes to choose a quality).
    # The jobs put a side that runs none on CPUs only, and book GPUs for one that does. None: a
    # family with a network (its own or the cards it loads) runs it on both sides.
    network_at: dict[str, bool | tuple[str, ...]] | None = None

    def runs_network(self, side: str, options: dict[str, Any]) -> bool:
        """Whether a codec of this family runs a network to ``side`` with these (resolved) options."""
        if self.network_at is None:
            return self.network is not None or bool(self.loads_cards_of)
        when = self.network_at.get(side, False)
        return when if isinstance(when, bool) else any(options.get(name) is not None for name in when)

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
_PLUGINS_LOADED: set[str] = set()


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


def codec_from_network(network, name: str, device: str = "cpu", **settings) -> Codec:
    """The codec of an in-memory network (training, tests, benchmarks), by the family its config names;
    its id hashes the weights as they would be saved. ``settings`` go to the codec (tile, overlap...)."""
    from .nn.weights_file import released_sha256  # torch is imported only when a network exists

    family = get_family(network.cfg.family)
    if family.wrap is None:
        raise ValueError(f"codec family '{family.name}' cannot wrap an in-memory network (no Family.wrap)")
    return family.wrap(network, name, released_sha256(network), device, **settings)


# ----- networks: config -> family -> network --------------------------------------------------
def config_from_dict(d: dict):
    """A network config from its stored form (``asdict``), through the config class of the family it names."""
    return _config_of(_family_of_config(d), d)


def _family_of_config(d: dict) -> Family:
    try:
        return get_family(d.get("family"))
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def _config_of(family: Family, d: dict):
    if family.config is None:
        raise ValueError(f"codec family '{family.name}' has no config")
    try:
        return dataclass_from_dict(family.config, d)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {family.name} config: {exc}") from None


def named_sizes() -> dict[str, Any]:
    """Every family's named network configs (``cdc-s``, ``cdc-avif-tiny``, ...), by name."""
    return {name: cfg for fam in families() for name, cfg in fam.sizes.items()}


def named_config(name: str):
    sizes = named_sizes()
    if name not in sizes:
        raise KeyError(f"unknown config '{name}' (known: {', '.join(sizes)})")
    return sizes[name]


def random_codec(config: str = "cdc-tiny", seed: int = 0, device: str = "cpu", **settings) -> Codec:
    """A codec of a named config with random weights: tests, speed benchmarks."""
    import torch  # imported only when a model is needed

    cfg = named_config(config)
    torch.manual_seed(seed)
    return codec_from_network(build_network(cfg), config, device, **settings)


def build_network(cfg):
    """The trainable network of a config, by the family that registered it."""
    family = get_family(cfg.family)
    if family.network is None:
        raise ValueError(f"codec family '{cfg.family}' has no trainable network")
    return family.network(cfg)


def load_network(path: Path | str):
    """The network a weights file holds: its stored config names the family, whose config class reads
    it and whose builder makes the network (one look-up)."""
    from .nn.weights_file import load_model  # torch is imported only when a network is loaded

    return load_model(Path(path), _network_from_dict)


def _network_from_dict(d: dict):
    family = _family_of_config(d)
    if family.network is None:
        raise ValueError(f"codec family '{family.name}' has no trainable network")
    return family.network(_config_of(family, d))


def families() -> list[Family]:
    """Every registered family, built-ins first (``model/codecs/__init__.py``), after importing the plugins."""
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


def load_plugins() -> None:
    """Import the plugin modules named in ``$DIFFARC_CODEC_PLUGINS`` and the entry points, once each."""
    specs = [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]
    for spec in specs:
        if spec not in _PLUGINS_LOADED:
            _import_plugin(spec)
            _PLUGINS_LOADED.add(spec)
    if ENTRY_POINT_GROUP not in _PLUGINS_LOADED:
        _PLUGINS_LOADED.add(ENTRY_POINT_GROUP)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()


def plugin_env() -> dict[str, str]:
    """``$DIFFARC_CODEC_PLUGINS`` with paths made absolute: what another process (a Ray worker) needs
    in its environment to register the same plugin families; empty when there are none."""
    specs = [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]
    specs = [str(Path(s).resolve()) if s.endswith(".py") else s for s in specs]
    return {PLUGINS_ENV: ",".join(specs)} if specs else {}


def _import_plugin(spec: str) -> None:
    if not spec.endswith(".py"):
        importlib.import_module(spec)
        return
    path = Path(spec).resolve()
    if not path.exists():
        raise ImportError(f"codec plugin {spec} (from ${PLUGINS_ENV}) does not exist")
    if any(getattr(m, "__file__", None) == str(path) for m in list(sys.modules.values())):
        return  # already imported under its module name: its families are registered
    module_name = f"diffarc_plugin_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)


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
    for fam in families():
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


def _claiming_family(weights: Weights) -> Family:
    fams = families()
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
