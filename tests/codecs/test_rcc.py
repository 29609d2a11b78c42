"""Reverse-channel coding on toy Gaussians: the decoder rebuilds the encoder's sample bit for bit
(any thread count, any batching), the sample has q's mean and covariance, the payload tracks the
KL, and bad payloads or inputs are refused with a clear error."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from model.rcc import random as rcc_random
from model.rcc import PAYLOAD_CODERS, RCCConfig, RCCError, chunk_dims, decode_sample, encode_sample, kl_bits
from model.threads import fixed_threads as threads

# The per-chunk cost above KL for the default config (cap_bits 12, chunk_bits 6), measured at
# 2.45-3.0 bits from 0.1 to 1 bit of KL per dimension (model/evaluation/benchmark_rcc.py); results/rcc/README.md states it.
CHUNK_OVERHEAD_BITS = 2.7


def toy(size: int, total_kl_bits: float, seed: int, dtype=torch.float32):
    """A random q and p over ``size`` dims with per-dim sigma and KL(q||p) = total_kl_bits."""
    g = torch.Generator().manual_seed(seed)
    mu_p = torch.randn(size, generator=g, dtype=torch.float64)
    sigma = 0.2 + torch.rand(size, generator=g, dtype=torch.float64)
    shift = torch.randn(size, generator=g, dtype=torch.float64)
    shift *= math.sqrt(2 * total_kl_bits * math.log(2)) / shift.norm()
    return (mu_p + sigma * shift).to(dtype), mu_p.to(dtype), sigma


def test_decoder_rebuilds_the_encoders_sample_bit_for_bit_under_1_and_2_threads():
    # 40,000 dims: above torch's 32,768-element grain, so 2 threads really split the work
    mu_q, mu_p, sigma = (t.view(4, 100, 100) for t in toy(40_000, 400.0, seed=1))
    cfg = RCCConfig(cap_bits=8)
    encoded = {}
    for n in (1, 2):
        with threads(n):
            encoded[n] = encode_sample(mu_q, mu_p, sigma, (7, 3), cfg)
    assert encoded[1].data == encoded[2].data  # the encoder's choice does not depend on threads
    for enc, dec in ((1, 2), (2, 1)):
        with threads(dec):
            decoded = decode_sample(encoded[enc].data, mu_p, sigma, (7, 3), cfg)
        assert decoded.dtype == torch.float32 and decoded.shape == mu_p.shape
        assert torch.equal(decoded, encoded[enc].sample)
    other_key = decode_sample(encoded[1].data, mu_p, sigma, (7, 4), cfg)
    assert not torch.equal(other_key, encoded[1].sample)  # the key matters


def test_candidates_depend_on_key_index_and_dim_alone():
    keys = rcc_random.row_keys(rcc_random.derive_key(5, (1, 2), rcc_random.STREAM_CANDIDATES), 4)
    with threads(1):
        block = rcc_random.standard_normals(keys, np.arange(40_000)[None, :], 9)
    with threads(2):
        again = rcc_random.standard_normals(keys, np.arange(40_000)[None, :], 9)
    picked = rcc_random.standard_normals(keys[[3, 0]], np.array([[39_999, 7], [12, 0]]), 4)
    assert torch.equal(block, again)
    assert torch.equal(picked[0], block[3, [39_999, 7], :4]) and torch.equal(picked[1], block[0, [12, 0], :4])
    assert abs(float(block.mean())) < 5 / math.sqrt(block.numel())
    assert abs(float(block.var()) - 1) < 5 * math.sqrt(2 / block.numel())


def test_batch_size_does_not_change_the_payload():
    mu_q, mu_p, sigma = toy(300, 60.0, seed=2)
    small = encode_sample(mu_q, mu_p, sigma, 1, RCCConfig(cap_bits=10, block_elems=5000))
    large = encode_sample(mu_q, mu_p, sigma, 1, RCCConfig(cap_bits=10))
    assert small.data == large.data and torch.equal(small.sample, large.sample)


@pytest.mark.parametrize("method", ["pfr", "orc"])
def test_decoded_samples_have_the_mean_and_covariance_of_q(method):
    """Blocks of 4 dims with 1 bit of KL each, 60 blocks per payload, 20 payloads: 1200 draws
    of z = (x - mu_q) / sigma, which is N(0, I) for an exact sample. Tolerances are 4 standard
    errors: 1/sqrt(S) for means and covariances, sqrt(2/S) for variances."""
    block, per_call, calls = 4, 60, 20
    g = torch.Generator().manual_seed(3)
    sigma = (0.3 + torch.rand(block, generator=g, dtype=torch.float64)).repeat(per_call)
    shift = torch.randn(block, generator=g, dtype=torch.float64)
    shift *= math.sqrt(2 * math.log(2)) / shift.norm()  # 1 bit per block
    cfg = RCCConfig(chunk_bits=2, max_chunk_bits=3, cap_bits=10, method=method)
    z = []
    for key in range(calls):
        mu_p = torch.randn(block * per_call, generator=g, dtype=torch.float64)
        mu_q = mu_p + sigma * shift.repeat(per_call)
        result = encode_sample(mu_q, mu_p, sigma, key, cfg)
        x = decode_sample(result.data, mu_p, sigma, key, cfg)
        z.append(((x - mu_q) / sigma).view(per_call, block))
    z, samples = torch.cat(z), per_call * calls
    assert float((z.mean(0)).abs().max()) < 4 / math.sqrt(samples)
    cov = torch.cov(z.T)
    assert float((cov.diagonal() - 1).abs().max()) < 4 * math.sqrt(2 / samples)
    assert float((cov - torch.diag(cov.diagonal())).abs().max()) < 4 / math.sqrt(samples)
    # the test has power: a decoder that ignored the payload (x ~ p) would be off by the shift
    assert float(shift.abs().max()) > 2 * 4 / math.sqrt(samples)


# format 2 (the default) at every density; format 1 (older DiffC bitstreams) at one
@pytest.mark.parametrize("total_kl, size, payload_format", [(1024, 1024, 2), (1024, 8192, 2), (2048, 2048, 2),
                                                            (1024, 1024, 1)])
def test_coded_size_tracks_kl_plus_a_fixed_cost_per_chunk(total_kl, size, payload_format):
    mu_q, mu_p, sigma = toy(size, total_kl, seed=size)
    result = encode_sample(mu_q, mu_p, sigma, 0, RCCConfig(payload_format=payload_format))
    header_bits = PAYLOAD_CODERS[payload_format].header_bits
    assert abs(result.kl_bits - total_kl) < 1e-3 * total_kl
    assert abs(result.kl_bits - kl_bits(mu_q, mu_p, sigma)) < 1e-6 * total_kl
    assert abs(result.chunk_kl_bits.sum() - result.kl_bits) < 1e-6 * total_kl
    expected = result.kl_bits + result.n_chunks * CHUNK_OVERHEAD_BITS + header_bits(result.n_chunks, size, 8)
    assert abs(8 * len(result.data) - expected) <= 0.1 * expected
    assert math.ceil(total_kl / 6) <= result.n_chunks <= 1.25 * math.ceil(total_kl / 6)
    # chunks are bounded: only a single dim may exceed max_chunk_bits
    sizes = np.diff(result.chunk_bounds)
    assert np.all((result.chunk_kl_bits <= 10.0) | (sizes == 1))


def test_chunks_are_halved_where_kl_concentrates():
    mu_q, mu_p, sigma = toy(600, 60.0, seed=4)
    mu_q[:20] = mu_p[:20] + 2.0 * sigma[:20].float()  # ~58 extra bits on 20 dims
    result = encode_sample(mu_q, mu_p, sigma, 9)
    sizes = np.diff(result.chunk_bounds)
    assert sizes.min() < sizes.max() and result.n_chunks > math.ceil(result.kl_bits / 6)  # halvings
    assert np.all((result.chunk_kl_bits <= 10.0) | (sizes == 1))
    dims = chunk_dims(600, result.chunk_bounds, 9)
    assert sorted(dims[dims >= 0].tolist()) == list(range(600))  # a partition of the dims
    assert torch.equal(decode_sample(result.data, mu_p, sigma, 9), result.sample)


@pytest.mark.parametrize("payload_format", sorted(PAYLOAD_CODERS))
def test_fixed_length_indices_when_they_are_cheaper(payload_format):
    coder = PAYLOAD_CODERS[payload_format]
    rng = np.random.default_rng(0)
    for indices, cheapest in ((rng.integers(0, 1 << 8, 300).tolist(), "fixed"), ([0, 1] * 150, "adaptive")):
        writer = coder.PayloadWriter(8)
        writer.count(len(indices), 1000)
        writer.flags([True, False, False])
        writer.indices(indices)
        data = writer.to_bytes(8)
        fixed_bits = 8 * len(indices) + 8 + 10 + 4  # 4: the three adaptive flags
        termination = coder.header_bits(1, 1, 0) - PAYLOAD_CODERS[1].header_bits(1, 1, 0)  # format 2: the ANS head
        assert len(data) * 8 <= fixed_bits + 16 + termination  # 16: the mode bit, byte rounding
        assert (len(data) * 8 < 0.5 * fixed_bits) == (cheapest == "adaptive")
        reader = coder.PayloadReader(data, 1000, 8, 8)
        assert reader.count(1000) == len(indices) and reader.flags(3).tolist() == [True, False, False]
        assert reader.indices(len(indices)).tolist() == indices
        reader.finish()


def test_format_2_costs_what_format_1_does_plus_the_ans_head():
    """The same symbols through constriction (adaptive counts frozen over blocks) against the exact big-integer
    coder: at most 32 bits more a payload, on payloads of 2 to 1000 chunks; and decoded bit for bit."""
    for size, total_kl in ((40, 6.0), (2000, 300.0), (5000, 4000.0)):
        mu_q, mu_p, sigma = toy(size, total_kl, seed=size)
        sizes = {}
        for payload_format in (1, 2):
            cfg = RCCConfig(chunk_bits=4, max_chunk_bits=6, cap_bits=8, payload_format=payload_format)
            result = encode_sample(mu_q, mu_p, sigma, 4, cfg)
            assert torch.equal(decode_sample(result.data, mu_p, sigma, 4, cfg), result.sample)
            sizes[payload_format] = 8 * len(result.data)
        assert sizes[1] <= sizes[2] <= sizes[1] + 32, (size, sizes)
        assert sizes[2] <= 2 * total_kl + 64  # entropy-coded: about KL + 2.5 bits a chunk of 4 bits of KL


@pytest.mark.parametrize("payload_format", sorted(PAYLOAD_CODERS))
def test_bad_payloads_are_refused_with_a_clear_error(payload_format):
    cfg = RCCConfig(cap_bits=10, check_bits=16, payload_format=payload_format)  # false acceptance 2^-16 per bad payload
    mu_q, mu_p, sigma = toy(2000, 300.0, seed=5)
    data = encode_sample(mu_q, mu_p, sigma, 1, cfg).data
    rng = np.random.default_rng(1)
    bad = [b"", b"\x00" + data[1:], data + b"\x07", data[:-1], data[: len(data) // 2], data[1:]]
    bad += [rng.integers(1, 256, n, dtype=np.uint8).tobytes() for n in (1, 5, 40, len(data), 500)]
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x10
    bad.append(bytes(flipped))
    for payload in bad:
        with pytest.raises(RCCError, match="RCC payload"):
            decode_sample(payload, mu_p, sigma, 1, cfg)
    with pytest.raises(RCCError, match="integrity|corrupt"):  # decoded with another cap
        decode_sample(data, mu_p, sigma, 1, RCCConfig(cap_bits=11, check_bits=16, payload_format=payload_format))
    with pytest.raises(RCCError, match="RCC payload"):  # decoded as the other format
        decode_sample(data, mu_p, sigma, 1, RCCConfig(cap_bits=10, check_bits=16, payload_format=3 - payload_format))


@pytest.mark.parametrize("payload_format", sorted(PAYLOAD_CODERS))
def test_oversized_garbage_is_refused_at_once(payload_format):
    start = time.perf_counter()
    with pytest.raises(RCCError, match="longer than any payload"):
        decode_sample(b"\xff" * 1_000_000, torch.zeros(100), 1.0, 0, RCCConfig(payload_format=payload_format))
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(4), torch.zeros(4), 0.0), "sigma"),
        ((torch.zeros(4), torch.zeros(5), 1.0), "shaped like"),
        ((torch.tensor([0.0, math.nan]), torch.zeros(2), 1.0), "finite"),
        ((torch.zeros(0), torch.zeros(0), 1.0), "non-empty"),
    ],
)
def test_bad_inputs_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        encode_sample(*args, 0)


def test_bad_configs_are_refused():
    for kwargs, field in (({"cap_bits": 0}, "cap_bits"), ({"chunk_bits": 12, "max_chunk_bits": 10}, "chunk_bits"),
                          ({"method": "mrc"}, "method"), ({"check_bits": 65}, "check_bits"),
                          ({"payload_format": 3}, "payload_format")):
        with pytest.raises(ValueError, match=field):
            RCCConfig(**kwargs)
    with pytest.raises(ValueError, match="key"):
        encode_sample(torch.ones(3), torch.zeros(3), 1.0, -1)


def test_the_payload_is_the_rans_state_pushed_one_symbol_at_a_time():
    """The encoder pushes runs of symbols by halves (model/rcc/coding.py ``_push``); the format is the
    state that pushing them one at a time gives, so both must agree exactly, across many leaves."""
    from model.rcc.coding import _push

    rng = np.random.default_rng(0)
    totals = rng.choice([2, 7, 1 << 10, 4099], size=3000)
    freqs = [int(rng.integers(1, t + 1)) for t in totals]
    intervals = [(int(rng.integers(0, t - f + 1)), f, int(t)) for f, t in zip(freqs, totals)]
    x = 0x1A5
    for start, freq, total in intervals:
        x = (x // freq) * total + start + x % freq
    assert x.bit_length() > 3000 and _push(intervals, 0x1A5) == x
