"""Codec families that fail on purpose, loaded by naming this file in ``$DIFFARC_CODEC_PLUGINS``
(importing it registers them). Both store raw pixels.

``faulty`` fails the way native decoders do: the fault injector for the decoding sandbox
(tests/cluster_faults/test_sandbox.py). A payload beginning with

- ``SEGV`` makes decoding dereference address 0 (a real SIGSEGV, as a native decoder reading past
  its buffer does),
- ``HANG`` makes it spin forever (a decoder in a loop),
- ``HOG``  makes it allocate 64 GiB (a decoder trusting a giant size).

``stall-TOKEN`` hangs the encoder (tests/cluster_faults/test_stall.py): encoding an image of ``STALL_SIZE`` never
returns while the file ``hang_file(TOKEN)`` holds a count above 0, which each hang decrements (so a
count of 1 hangs once and lets the retry through). The file outlives the worker that hangs.
"""

from __future__ import annotations

import ctypes
import re
import tempfile
import threading
from pathlib import Path

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


STALL_SIZE = (21, 17)  # width, height of the images whose encoding hangs (both >= --min-side 16, so they are coded)
STALL_NAME = re.compile(r"^stall-([0-9a-f]+)$")


def hang_file(token: str) -> Path:
    """How many more encodes of codec ``stall-TOKEN`` hang (a number in a file all processes see)."""
    return Path(tempfile.gettempdir()) / f"diffarc-stall-{token}"


class Stall(Faulty):
    family = "stall"

    def __init__(self, name: str):
        self.name = name

    def _encode_rgb(self, rgbs):
        if any(rgb.shape[:2] == STALL_SIZE[::-1] for rgb in rgbs):
            path = hang_file(STALL_NAME.match(self.name).group(1))
            left = int(path.read_text()) if path.exists() else 0
            if left > 0:
                path.write_text(str(left - 1))
                threading.Event().wait()  # an encode that never ends
        return super()._encode_rgb(rgbs)


register_family(Family(
    name="stall", load=lambda request: Stall(request.name),
    parse=lambda n: ParsedName(None, {}) if STALL_NAME.match(n) else None,
    listing=lambda weights: [CodecInfo("stall-TOKEN", "stall", "test plugin: an encoder that hangs on demand")],
    description="test plugin family whose encoder hangs on demand",
))
