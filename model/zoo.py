"""Networks by family, in the manner of CompressAI's zoo beside its registry: configs, builders, random
and in-memory codecs. Each family's ``Networks`` hooks (``model.hooks``) say how; the registry keeps them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .codec import Codec
from .hooks import Networks
from .nn.config import dataclass_from_dict
from .registry import Family, families, get_family


def networks_of(family: Family) -> Networks:
    if family.networks is None:
        raise ValueError(f"codec family '{family.name}' has no trainable network")
    return family.networks


def codec_from_network(network, name: str, device: str = "cpu", **settings) -> Codec:
    """The codec of an in-memory network (training, tests, benchmarks), by the family its config names;
    its id hashes the weights as they would be saved. ``settings`` go to the codec (tile, overlap...)."""
    from .nn.weights_file import released_sha256  # torch is imported only when a network exists

    family = get_family(network.cfg.family)
    wrap = family.networks.wrap if family.networks is not None else None
    if wrap is None:
        raise ValueError(f"codec family '{family.name}' cannot wrap an in-memory network (no Networks.wrap)")
    return wrap(network, name, released_sha256(network), device, **settings)


def _family_of_config(d: dict) -> Family:
    try:
        return get_family(d.get("family"))
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def _config_of(family: Family, d: dict):
    if family.networks is None:
        raise ValueError(f"codec family '{family.name}' has no config")
    try:
        return dataclass_from_dict(family.networks.config, d)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {family.name} config: {exc}") from None


def named_sizes() -> dict[str, Any]:
    """Every family's named network configs (``cdc-s``, ``cdc-avif-tiny``, ...), by name."""
    return {name: cfg for fam in families() if fam.networks for name, cfg in fam.networks.sizes.items()}


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
    return networks_of(get_family(cfg.family)).build(cfg)


def load_network(path: Path | str):
    """The network a weights file holds: its stored config names the family, whose config class reads
    it and whose builder makes the network (one look-up)."""
    from .nn.weights_file import load_model  # torch is imported only when a network is loaded

    return load_model(Path(path), _network_from_dict)


def _network_from_dict(d: dict):
    family = _family_of_config(d)
    return networks_of(family).build(_config_of(family, d))
