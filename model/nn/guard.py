"""Hostile bitstreams: checks a neural codec's latent strings must pass before and while they are
entropy-decoded. A container's CRC proves the bytes are those written, not that the writer was honest.

- Every rANS string holds at least the coder's 8-byte final state, in whole 32-bit words.
- A string cannot be shorter than the information its symbols carry at the very least: under its
  CDF a symbol costs at least -log2(p_max) bits, and an rANS stream of n symbols is at least their
  information plus 31 bits long. So a valid string always passes, while a header edited to a larger
  size (more symbols than the string can carry) is refused before the decoder runs or allocates.
- The decoder (compressai's, native) never checks where its buffer ends. Each string is decoded twice,
  padded with two different patterns: a string cut short makes the decoder read the padding, the two
  results differ, and the string is refused. The padding keeps short over-reads inside our memory;
  the pipeline runs decoding in a process that may die, for over-reads that go further.

The image size is capped before any of this (``Codec.max_pixels``), so the symbol counts are bounded.
Used by the hyperprior latent coder (``hyperprior_latent.py``) and its codec shell (``codecs/latent_shell.py``).
"""

from __future__ import annotations

import math

import torch

from ..format import BitstreamError

MIN_STRING_BYTES = 8  # the rANS coder's final 64-bit state
PRECISION = 16  # compressai's CDF precision: frequencies out of 2**16
PADS = (b"\x00", b"\x55")  # no 0xF nibble: a padded bypass run cannot go on reading
PAD_BYTES = 4096


def check_strings(strings: tuple[bytes, ...], names: tuple[str, ...]) -> None:
    """Each latent string: at least the coder's final state, whole 32-bit words."""
    for name, s in zip(names, strings):
        if len(s) < MIN_STRING_BYTES or len(s) % 4:
            raise BitstreamError(f"{name} string of {len(s)} bytes cannot be an rANS stream "
                                 f"(at least {MIN_STRING_BYTES} bytes, in 4-byte words)")


def min_bits_per_index(entropy_model) -> torch.Tensor:
    """For each CDF of a compressai entropy model: the fewest bits any one symbol under it costs."""
    cdf, lengths = entropy_model._quantized_cdf.long(), entropy_model._cdf_length.long()
    freqs = cdf[:, 1:] - cdf[:, :-1]
    valid = torch.arange(freqs.shape[1])[None, :] < (lengths[:, None] - 1)
    max_freq = torch.where(valid, freqs, torch.zeros_like(freqs)).amax(dim=1).clamp(min=1)
    return PRECISION - torch.log2(max_freq.double())


def check_capacity(strings: list[bytes], min_bits: list[float], name: str) -> None:
    """Refuse a string too short for the least information its symbols carry (see the module doc)."""
    for i, (s, bits) in enumerate(zip(strings, min_bits)):
        if len(s) * 8 < bits + 31:
            raise BitstreamError(
                f"{name} string of {len(s)} bytes is too short for the image size in the header: its "
                f"symbols need at least {math.ceil((bits + 31) / 8)} bytes (edited size or cut string)"
                + (f" [item {i}]" if len(strings) > 1 else ""))


def decode_checked(decode, strings: list[bytes], name: str) -> torch.Tensor:
    """``decode(strings)`` done twice with differently padded strings; refuses strings cut short."""
    outs = [decode([s + pad * PAD_BYTES for s in strings]) for pad in PADS]
    differ = [i for i in range(len(strings)) if not torch.equal(outs[0][i], outs[1][i])]
    if differ:
        raise BitstreamError(f"{name} string ends early: decoding it needed bytes past its end"
                             + (f" [items {differ}]" if len(strings) > 1 else ""))
    return outs[0]
