"""The decoding sandbox: a real SIGSEGV, a decoder that never returns and one that allocates 64 GiB,
each inside the child process (tests/faulty_family.py injects them), cost one row or fail the call;
the rows around them decode, and the worker never dies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shardkit import photo

from model import load_codec
from model.format import Container, pack
from pipeline.decode.decoding import DecodeSettings
from pipeline.decode.sandbox import DecoderProcess, Limits
from pipeline.io.faults import InfrastructureError

FAULTY = Path(__file__).resolve().parents[1] / "faulty_family.py"


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.setenv("DIFFARC_CODEC_PLUGINS", str(FAULTY))  # the child inherits it
    return load_codec("faulty")


def test_a_crash_and_a_hang_cost_one_row_each(faulty):
    images = [photo(8, 6, seed=i) for i in range(5)]
    good = faulty.encode(images)
    segv, hang = (pack(Container("faulty", 6, 8, "RGB", (p,))) for p in (b"SEGV", b"HANG"))
    decoder = DecoderProcess(DecodeSettings(), Limits(memory_bytes=1 << 30, seconds_per_image=1.0))
    try:
        results = decoder("faulty", [good[0], segv, good[1], good[2], hang, good[3], good[4]])
    finally:
        decoder.close()
    errors = [err for _, err in results]
    assert [e is None for e in errors] == [True, False, True, True, False, True, True]
    assert "died on this bitstream (killed by SIGSEGV)" in errors[1]
    assert "died on this bitstream (no answer in 1s, killed)" in errors[4]
    decoded = [img for img, err in results if err is None]
    assert all(np.array_equal(np.asarray(d), np.asarray(i)) for d, i in zip(decoded, images))


def test_an_allocation_beyond_the_cap_fails_the_call_not_the_machine(faulty):
    hog = pack(Container("faulty", 6, 8, "RGB", (b"HOG",)))
    decoder = DecoderProcess(DecodeSettings(), Limits(memory_bytes=1 << 30))
    try:
        with pytest.raises(InfrastructureError, match="MemoryError"):
            decoder("faulty", [hog])
        assert decoder.peak_rss_bytes < 1 << 30  # the 64 GiB never existed
        [(img, err)] = decoder("faulty", faulty.encode([photo(8, 6)]))  # the same child goes on
        assert err is None and img.size == (8, 6)
    finally:
        decoder.close()
