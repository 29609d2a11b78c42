"""A codec family that fails the way native decoders do, on purpose: the fault injector for the
decoding sandbox (tests/test_sandbox.py). ``faulty`` stores raw pixels; a payload beginning with

- ``SEGV`` makes decoding dereference address 0 (a real SIGSEGV, as a native decoder reading past
  its buffer does),
- ``HANG`` makes it spin forever (a decoder in a loop),
- ``HOG``  makes it allocate 64 GiB (a decoder trusting a giant size).

Loaded by naming this file in ``$DIFFARC_CODEC_PLUGINS``; importing it registers the family.
"""

from __future__ import annotations

import ctypes

import numpy as np

from model import Codec, CodecInfo, Family, ParsedName, register_family
from model.format import BitstreamError


class Faulty(Codec):
    family = "faulty"
    name = "faulty"

    def _encode_rgb(self, rgbs):
        return [(rgb.tobytes(),) for rgb in rgbs]

    def _decode_containers(self, containers):
        out = []
        for c in containers:
            payload = c.strings[0]
            if payload.startswith(b"SEGV"):
                ctypes.string_at(0)
            if payload.startswith(b"HANG"):
                while True:
                    pass
            if payload.startswith(b"HOG"):
                np.ones(64 << 30, dtype=np.uint8)
            if len(payload) != c.height * c.width * 3:
                raise BitstreamError(f"faulty payload holds {len(payload)} bytes, header needs {c.height * c.width * 3}")
            out.append(np.frombuffer(payload, np.uint8).reshape(c.height, c.width, 3))
        return out


register_family(Family(
    name="faulty", load=lambda request: Faulty(), parse=lambda n: ParsedName(None, {}) if n == "faulty" else None,
    listing=lambda weights: [CodecInfo("faulty", "faulty", "test plugin: crashes on demand")],
    description="test plugin family that crashes, hangs or over-allocates on demand",
))
