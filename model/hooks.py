"""What a codec family trains and how it is evaluated: hooks it hands the registry beside its registration.

The registry (``model.registry``) keeps these as data and calls none of them; the network builders are
``model.zoo``'s, the benchmarks ``model/evaluation``'s. A family's module sits below training and evaluation
(the layers in pyproject.toml), so it names none of their code: the training side registers what each
family trains on (``model/training/samples.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Networks:
    """A family's trainable networks (training hooks)."""

    config: type  # the config dataclass of its networks (stored in weights files and cards)
    build: Callable[[Any], Any]  # config -> trainable network (torch.nn.Module)
    sizes: dict[str, Any] = field(default_factory=dict)  # named configs ("cdc-s"): train --config, benchmarks
    wrap: Callable[..., Any] | None = None  # (network, name, sha256, device, **settings) -> its codec
    default_steps: int | None = None  # decoding steps when a weights card names none (export writes it)


@dataclass(frozen=True)
class Evaluation:
    """How a family is checked and benchmarked (evaluation hooks)."""

    # The classical format its bitstreams build on ("avif"): benchmarks compare against it.
    base_layer: str | None = None
    # Names the codec conformance suite (tests/codecs/test_codec_conformance.py) loads; WEIGHTS stands for a
    # tiny random weights file of the family whose cards it loads. Default: ("WEIGHTS",) for a family
    # with networks, none otherwise.
    examples: tuple[str, ...] = ()
