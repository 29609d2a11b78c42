"""What each family's network trains on, registered here by the training side: a family's module (below
training in the layers) names no training code, and the contracts see every import.

Most networks train on random crops of the photos (``data.photo_crops``); cdc-avif's on (crop, its AVIF
decode) pairs (``avif_pairs.pair_crops``). A family from another package that trains on something else
registers its samples with ``register_samples`` from its own training code.
"""

from __future__ import annotations

from typing import Callable

from .avif_pairs import pair_crops
from .data import photo_crops

# family name -> (TrainConfig, seed) -> the dataset its network's training loss takes batches of
_SAMPLES: dict[str, Callable] = {"cdc-avif": pair_crops}


def register_samples(family: str, samples: Callable) -> None:
    """Train ``family``'s networks on ``samples(cfg, seed)`` (a torch dataset)."""
    _SAMPLES[family] = samples


def samples_for(family: str) -> Callable:
    """The samples ``family``'s networks train on: its registered ones, else photo crops."""
    return _SAMPLES.get(family, photo_crops)
