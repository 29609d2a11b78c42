"""Reverse-channel coding (RCC) of one Gaussian sample: the model-independent half of DiffC.

The encoder knows q = N(mu_q, diag sigma^2); encoder and decoder share p = N(mu_p, diag sigma^2)
and a key. ``encode_sample`` returns a payload of about KL(q||p) bits plus a fixed cost per chunk,
and a sample x ~ q (up to a bias set by the candidate cap); ``decode_sample`` rebuilds the same
x, bit for bit, from the payload, mu_p, sigma and the key.

Method: the Poisson functional representation (PFR, Li & El Gamal 2018), truncated at
2^cap_bits candidates per chunk. With u = (mu_q - mu_p) / sigma and candidates
x_i = mu_p + sigma * eps_i, log q/p (x_i) = <u, eps_i> - |u|^2 / 2, so the encoder sends
argmin_i log T_i - <u, eps_i>, T_i the arrival times of a unit Poisson process. Ordered random
coding (method="orc": the sorted times of 2^cap_bits exponentials instead) is kept for comparison.
Measured (results/rcc): at equal candidates ORC codes 0.15-0.35 bit per chunk cheaper, but its
sample is 1.3-2.4x further from q (KL of the sample's law to q); matching PFR's bias costs it
about one more cap bit, i.e. twice the encode work, for about the same bits. So PFR is the default.
Chunking: see model/rcc/chunks.py; the payload: model/rcc/ans.py (format 2, constriction's ANS) and
model/rcc/coding.py (format 1, rANS over a Python big integer: older DiffC bitstreams); the shared
randomness: model/rcc/random.py.

Cost, bounded by the config: the encoder draws (dims rounded up to whole chunks) * 2^cap_bits
normals per sample, with no early stop (a Gaussian's density ratio is unbounded, so PFR can
never prove it is done early); the decoder draws one candidate per chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import ans, chunks, coding
from . import random as rng
from .coding import RCCError

__all__ = ["RCCConfig", "RCCError", "RCCResult", "chunk_dims", "decode_sample", "encode_sample", "kl_bits"]


@dataclass(frozen=True)
class RCCConfig:
    chunk_bits: float = 6.0  # target KL per chunk (bits): n = ceil(KL / chunk_bits) base chunks
    max_chunk_bits: float = 10.0  # halve chunks above this (sent as split flags)
    cap_bits: int = 12  # 2^cap_bits candidates per chunk: the bound on encode work (and the bias)
    seed: int = 0
    method: str = "pfr"  # "pfr" or "orc" (see the module docstring)
    check_bits: int = 8  # integrity bits per payload (0 when the container checks integrity)
    block_elems: int = 1 << 22  # normals drawn per batch: memory (~100 MB), not the format
    payload_format: int = ans.FORMAT  # 2: constriction's ANS (model/rcc/ans.py); 1: big-integer rANS (coding.py)

    def __post_init__(self):
        if not 1 <= self.cap_bits <= 30:
            raise ValueError(f"cap_bits must be in 1..30, got {self.cap_bits}")
        if not 0 < self.chunk_bits <= self.max_chunk_bits:
            raise ValueError("need 0 < chunk_bits <= max_chunk_bits")
        if self.method not in ("pfr", "orc"):
            raise ValueError(f"method must be 'pfr' or 'orc', got {self.method!r}")
        if not 0 <= self.check_bits <= 64 or self.block_elems < 1:
            raise ValueError("check_bits must be in 0..64 and block_elems positive")
        if self.payload_format not in PAYLOAD_CODERS:
            raise ValueError(f"payload_format must be one of {sorted(PAYLOAD_CODERS)}, got {self.payload_format}")


# payload format -> its coder module (PayloadWriter, PayloadReader)
PAYLOAD_CODERS = {coding.FORMAT: coding, ans.FORMAT: ans}


@dataclass(frozen=True)
class RCCResult:
    data: bytes  # the payload
    sample: torch.Tensor  # x, shaped and typed like mu_p; decode_sample returns the same tensor
    kl_bits: float  # KL(q || p) in bits
    chunk_bounds: np.ndarray  # chunk j is positions [bounds[j], bounds[j+1]) of the keyed order
    chunk_kl_bits: np.ndarray  # KL of each chunk, bits

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_kl_bits)


def kl_bits(mu_q, mu_p, sigma) -> float:
    """KL(N(mu_q, sigma^2) || N(mu_p, sigma^2)) in bits."""
    u = _standardised_shift(*_checked(mu_q, mu_p, sigma))
    return float((u * u).sum()) / (2 * math.log(2))


def chunk_dims(size: int, bounds: np.ndarray, key, cfg: RCCConfig = RCCConfig()) -> np.ndarray:
    """Row j: the flat indices of chunk j's dimensions, padded with -1."""
    return chunks.dims_matrix(_order(size, key, cfg), bounds)


def _order(size: int, key, cfg: RCCConfig) -> np.ndarray:
    return chunks.order(size, rng.derive_key(cfg.seed, key, rng.STREAM_PERMUTATION))


def _checked(mu_q, mu_p, sigma) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    mu_p = torch.as_tensor(mu_p).detach()
    if not mu_p.is_floating_point() or mu_p.numel() == 0:
        raise ValueError("mu_p must be a non-empty floating-point tensor")
    sigma = torch.broadcast_to(torch.as_tensor(sigma, dtype=torch.float64).detach(), mu_p.shape)
    if not bool(torch.isfinite(mu_p).all()) or not bool((sigma > 0).all() and torch.isfinite(sigma).all()):
        raise ValueError("mu_p must be finite, and sigma finite and positive")
    if mu_q is not None:
        mu_q = torch.as_tensor(mu_q).detach()
        if mu_q.shape != mu_p.shape or not bool(torch.isfinite(mu_q).all()):
            raise ValueError(f"mu_q must be finite and shaped like mu_p {tuple(mu_p.shape)}")
    return mu_q, mu_p, sigma


def _standardised_shift(mu_q, mu_p, sigma) -> torch.Tensor:
    return ((mu_q.double() - mu_p.double()) / sigma).flatten()


def _candidate_keys(n: int, key, cfg: RCCConfig) -> np.ndarray:
    return rng.row_keys(rng.derive_key(cfg.seed, key, rng.STREAM_CANDIDATES), n)


def _log_times(keys: np.ndarray, indices: np.ndarray, carry: np.ndarray, cfg: RCCConfig) -> torch.Tensor:
    """log T for candidates ``indices`` of each chunk; ``carry`` (updated) holds T before them.
    Encoder-only, so numpy: single-threaded small ops pay no thread wake-ups on a loaded host."""
    gaps = -np.log(rng.uniforms(keys, indices[None, :], 1).numpy()[:, :, 0])  # Exp(1)
    if cfg.method == "orc":  # the i-th of N sorted exponentials adds Exp(1) / (N - i)
        gaps /= (1 << cfg.cap_bits) - indices
    times = carry[:, None] + np.cumsum(gaps, axis=1)
    carry[:] = times[:, -1]
    return torch.from_numpy(np.log(times))


def _search(u: torch.Tensor, dims: np.ndarray, keys: np.ndarray, time_keys: np.ndarray, cfg: RCCConfig) -> np.ndarray:
    """The encoder: the PFR (or ORC) index of every chunk. Chunks are searched in groups of one size,
    so a halved chunk's candidates are not padded to the widest chunk's dims; each chunk's index does
    not depend on the grouping."""
    sizes = (dims >= 0).sum(axis=1)
    best = np.zeros(len(dims), dtype=np.int64)
    for width in np.unique(sizes):
        rows = np.flatnonzero(sizes == width)
        step = max(1, cfg.block_elems // int(width))
        for block in (rows[r0 : r0 + step] for r0 in range(0, len(rows), step)):
            best[block] = _search_rows(u, dims[block, :width], keys[block], time_keys[block], cfg)
    return best


def _search_rows(u: torch.Tensor, dims: np.ndarray, keys: np.ndarray, time_keys: np.ndarray,
                 cfg: RCCConfig) -> np.ndarray:
    """The best candidate of each chunk of one block (rows of ``dims`` all valid), in batches of
    about block_elems normals."""
    rows, width = dims.shape
    candidates = 1 << cfg.cap_bits
    shifts = u[torch.from_numpy(dims)][:, :, None]
    batch = max(1, min(candidates, cfg.block_elems // (rows * width)))
    carry = np.zeros(rows)
    best_score = torch.full((rows,), math.inf, dtype=torch.float64)
    best = np.zeros(rows, dtype=np.int64)
    for i0 in range(0, candidates, batch):
        indices = np.arange(i0, min(candidates, i0 + batch), dtype=np.int64)
        eps = rng.standard_normals(keys, indices[None, :], width)
        gain = torch.bmm(eps, shifts)[:, :, 0]  # log q/p up to a constant
        low, arg = (_log_times(time_keys, indices, carry, cfg) - gain).min(dim=1)
        better = (low < best_score).numpy()
        best_score = torch.minimum(low, best_score)
        best[better] = arg.numpy()[better] + i0
    return best


def _sample(indices: np.ndarray, dims: np.ndarray, keys: np.ndarray, mu_p, sigma) -> torch.Tensor:
    """x = mu_p + sigma * eps, eps the chosen candidates: the one path both sides take."""
    eps = rng.standard_normals(keys, indices[:, None], dims.shape[1])[:, 0, :]
    valid = dims >= 0
    flat = torch.empty(mu_p.numel(), dtype=torch.float64)
    flat[torch.from_numpy(dims[valid])] = eps[torch.from_numpy(valid)]
    return (mu_p.double() + sigma * flat.view(mu_p.shape)).to(mu_p.dtype)


def encode_sample(mu_q, mu_p, sigma, key: int | tuple[int, ...], cfg: RCCConfig = RCCConfig()) -> RCCResult:
    """Communicate one sample of N(mu_q, sigma^2) against the shared N(mu_p, sigma^2).
    ``key`` (with cfg.seed) names the shared randomness: use a fresh key per sample (e.g. the
    image and the diffusion step); sigma is a scalar or broadcasts to mu_p."""
    mu_q, mu_p, sigma = _checked(mu_q, mu_p, sigma)
    u = _standardised_shift(mu_q, mu_p, sigma)
    size = len(u)
    visit = _order(size, key, cfg)
    cumulative = np.concatenate([[0.0], np.cumsum((u * u).numpy()[visit] / (2 * math.log(2)))])
    n = min(size, max(1, math.ceil(cumulative[-1] / cfg.chunk_bits)))
    writer = PAYLOAD_CODERS[cfg.payload_format].PayloadWriter(cfg.cap_bits)
    writer.count(n, size)

    def halve(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        split = cumulative[starts + sizes] - cumulative[starts] > cfg.max_chunk_bits
        writer.flags(split)
        return split

    bounds = chunks.leaf_bounds(size, n, halve)
    dims, keys = chunks.dims_matrix(visit, bounds), _candidate_keys(len(bounds) - 1, key, cfg)
    time_keys = rng.row_keys(rng.derive_key(cfg.seed, key, rng.STREAM_TIMES), len(keys))
    indices = _search(u, dims, keys, time_keys, cfg)
    writer.indices(indices)
    sample = _sample(indices, dims, keys, mu_p, sigma)
    data = writer.to_bytes(cfg.check_bits)
    return RCCResult(data, sample, float(cumulative[-1]), bounds, np.diff(cumulative[bounds]))


def decode_sample(data: bytes, mu_p, sigma, key: int | tuple[int, ...], cfg: RCCConfig = RCCConfig()) -> torch.Tensor:
    """The sample ``encode_sample`` drew, from its payload; raises RCCError on a bad payload."""
    _, mu_p, sigma = _checked(None, mu_p, sigma)
    size = mu_p.numel()
    reader = PAYLOAD_CODERS[cfg.payload_format].PayloadReader(bytes(data), size, cfg.cap_bits, cfg.check_bits)
    n = reader.count(size)
    bounds = chunks.leaf_bounds(size, n, lambda starts, _sizes: reader.flags(len(starts)))
    indices = reader.indices(len(bounds) - 1)
    reader.finish()
    dims = chunks.dims_matrix(_order(size, key, cfg), bounds)
    return _sample(indices, dims, _candidate_keys(len(indices), key, cfg), mu_p, sigma)
