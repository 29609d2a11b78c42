"""Weights files by name, their sha256, and codec ids (``NAME@HASH``): the one place for all three.

A weights file is ``NAME.safetensors`` with its card ``NAME.json`` beside it; the card's ``family``
says which codec family loads it and its ``sha256`` is the file's. The card is not inside the hashed
file (that holds the tensors and the network's config), so card fields can be added without changing
any codec id. A diffusion decoder's card says what it was trained for (``objective_card``). A bitstream records the codec
id ``NAME@HASH`` (the first 8 hex digits of that sha256), so it is only decoded by those weights.

``WeightsResolver`` finds weights by name, in order:

1. folders: ``--weights-dir`` (or ``$DIFFARC_WEIGHTS_DIR``), else the package's ``model/weights/``;
2. a URL prefix (``--weights-url`` or ``$DIFFARC_WEIGHTS_URL``: ``s3://bucket/weights/``,
   ``https://host/weights/``), through a local cache (``$DIFFARC_CACHE``, default
   ``~/.cache/diffarc/weights``). A downloaded file is kept only when its sha256 is the card's
   (and the codec id's, when one is asked for); anything else is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .fetch import fetch_bytes, url_join

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HASH_CHARS = 8  # hex digits of the sha256 in a codec id
WEIGHTS_SUFFIX, CARD_SUFFIX = ".safetensors", ".json"
ENV_DIR, ENV_URL, ENV_CACHE = "DIFFARC_WEIGHTS_DIR", "DIFFARC_WEIGHTS_URL", "DIFFARC_CACHE"


class WeightsError(ValueError):
    """Weights that cannot be used: missing card, wrong hash, unreadable; the message says which file."""


# ----- codec ids ------------------------------------------------------------------------------
def make_codec_id(name: str, sha256: str | None) -> str:
    """``NAME@HASH`` for weights-bearing codecs, plain ``NAME`` for the others."""
    return f"{name}@{sha256[:HASH_CHARS]}" if sha256 else name


def split_codec_id(codec_id: str) -> tuple[str, str | None]:
    """``cdc-s-q2@3f9a1c07`` -> (``cdc-s-q2``, ``3f9a1c07``); ``webp-q75`` -> (``webp-q75``, None)."""
    name, _, short_hash = codec_id.partition("@")
    return name, short_hash or None


# ----- hashing --------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----- training objectives -------------------------------------------------------------------
RESTORATION, DIFFUSION = "restoration", "diffusion"


def objective_card(final_step_fraction: float, final_gammas=None, base_dropout: float | None = None) -> dict:
    """The card fields that say what a diffusion decoder was trained for, from its run's settings.

    ``objective`` is ``restoration`` when every sample sat at t = 1 (final_step_fraction 1: the
    one-step decode from gamma * noise only), else ``diffusion`` (the rest uniform over every noise
    level: a prior, as DiffC needs). ``objective_settings.base_dropout`` > 0: the network was also
    trained without the base, so it is an unconditional prior too."""
    settings = {"final_step_fraction": float(final_step_fraction),
                **({"final_gammas": [float(g) for g in final_gammas]} if final_gammas is not None else {}),
                **({"base_dropout": float(base_dropout)} if base_dropout is not None else {})}
    return {"objective": RESTORATION if final_step_fraction >= 1 else DIFFUSION, "objective_settings": settings}


# ----- weights files --------------------------------------------------------------------------
@dataclass(frozen=True)
class Weights:
    """A weights file on local disk and its card; ``sha256`` is the file's, computed when first asked."""

    name: str  # what it is found by: the file name without .safetensors
    path: Path
    card: dict

    @cached_property
    def sha256(self) -> str:
        return sha256_file(self.path)

    @property
    def family(self) -> str | None:
        return self.card.get("family")

    @property
    def objective(self) -> str | None:
        """``restoration`` or ``diffusion`` (``objective_card``); None where the card does not say."""
        return self.card.get("objective")

    @property
    def unconditional_prior(self) -> bool:
        """Trained over every noise level and, with base dropout, without the base too (the run's base
        dropout, else the network config's, which training uses unless told otherwise)."""
        dropout = self.card.get("objective_settings", {}).get("base_dropout",
                                                              self.card.get("config", {}).get("base_dropout", 0))
        return self.objective == DIFFUSION and dropout > 0

    @classmethod
    def open(cls, path: Path) -> "Weights":
        """A ``.safetensors`` file and the card beside it (a missing card: the family from the file)."""
        path = Path(path)
        card_path = path.with_suffix(CARD_SUFFIX)
        try:
            card = json.loads(card_path.read_text()) if card_path.exists() else _card_from_metadata(path)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{card_path}: unreadable card ({exc})") from None
        return cls(path.stem, path, card)


def _card_from_metadata(path: Path) -> dict:
    """The minimal card a weights file implies: its family, from the config in its metadata."""
    from safetensors import safe_open  # light; no torch for the metadata alone

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        return {"family": json.loads(meta["config"])["family"]}
    except Exception as exc:
        raise WeightsError(f"{path}: no card beside it and no config in its metadata ({exc})") from None


def _default_cache() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "diffarc" / "weights")


@dataclass(frozen=True)
class WeightsResolver:
    """Where weights are looked up by name: local folders, then a URL prefix through a verified cache."""

    dirs: tuple[Path, ...] = (WEIGHTS_DIR,)
    url: str | None = None
    cache: Path = field(default_factory=_default_cache)
    endpoint_url: str | None = None  # S3-compatible store for s3:// URLs (default: the AWS chain's)

    @classmethod
    def from_env(cls, weights_dir: str | Path | None = None, weights_url: str | None = None,
                 endpoint_url: str | None = None) -> "WeightsResolver":
        """Arguments first, then ``$DIFFARC_WEIGHTS_DIR`` / ``$DIFFARC_WEIGHTS_URL``, then the package folder.
        An s3:// URL uses ``endpoint_url``, else ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``, else AWS."""
        folder = weights_dir or os.environ.get(ENV_DIR)
        url = weights_url or os.environ.get(ENV_URL) or None
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        return cls(dirs=(Path(folder),) if folder else (WEIGHTS_DIR,), url=url, endpoint_url=endpoint)

    def local(self) -> list[Weights]:
        """Every weights file with a card in the folders (not the URL), sorted by name."""
        found: dict[str, Weights] = {}
        for folder in self.dirs:
            for card_path in sorted(Path(folder).glob(f"*{CARD_SUFFIX}")):
                path = card_path.with_suffix(WEIGHTS_SUFFIX)
                if path.exists() and card_path.stem not in found:
                    found[card_path.stem] = Weights.open(path)
        return [found[k] for k in sorted(found)]

    def find(self, name: str, short_hash: str | None = None) -> Weights | None:
        """Weights called ``name`` (whose hash starts with ``short_hash`` when given), or None."""
        for folder in self.dirs:
            path = Path(folder) / f"{name}{WEIGHTS_SUFFIX}"
            if path.exists():
                return Weights.open(path)
        if self.url:
            return self._fetch(name, short_hash)
        return None

    def worker_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` in another process (a Ray worker) resolve the same way."""
        env = {ENV_DIR: str(Path(self.dirs[0]).resolve())} if tuple(self.dirs) != (WEIGHTS_DIR,) else {}
        if self.url:
            env[ENV_URL] = self.url
            env[ENV_CACHE] = str(Path(self.cache).resolve())
            if self.endpoint_url:
                env["AWS_ENDPOINT_URL_S3"] = self.endpoint_url
        return env

    def describe(self) -> str:
        """Where this resolver looks, for error messages."""
        where = ", ".join(str(d) for d in self.dirs)
        return where + (f", then {self.url}" if self.url else "")

    # ----- the URL cache -----------------------------------------------------------------------
    def _fetch(self, name: str, short_hash: str | None) -> Weights | None:
        card_url = url_join(self.url, name + CARD_SUFFIX)
        card_bytes = fetch_bytes(card_url, self.endpoint_url)
        if card_bytes is None:
            return None
        try:
            card = json.loads(card_bytes)
            expected = str(card["sha256"])
        except (ValueError, KeyError) as exc:
            raise WeightsError(f"{card_url}: not a weights card with a sha256 ({exc})") from None
        if short_hash and not expected.startswith(short_hash):
            raise WeightsError(f"{card_url} describes weights {expected[:HASH_CHARS]}, the codec id asks for "
                               f"{short_hash}: the bucket holds other weights of that name")
        folder = Path(self.cache) / expected
        path = folder / f"{name}{WEIGHTS_SUFFIX}"
        if not path.exists() or sha256_file(path) != expected:
            data = fetch_bytes(url_join(self.url, name + WEIGHTS_SUFFIX), self.endpoint_url)
            if data is None:
                raise WeightsError(f"{card_url} exists but {name}{WEIGHTS_SUFFIX} beside it does not")
            got = sha256_bytes(data)
            if got != expected:
                raise WeightsError(f"{url_join(self.url, name + WEIGHTS_SUFFIX)} has sha256 {got}, its card says "
                                   f"{expected}: refusing it (a damaged or replaced upload; re-upload the pair)")
            _write_atomic(path, data)
            _write_atomic(path.with_suffix(CARD_SUFFIX), card_bytes)
        return Weights(name, path, card)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
