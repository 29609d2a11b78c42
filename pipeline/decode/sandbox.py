"""Decoding in a child process that is allowed to die.

The entropy decoder is native code that trusts its input. ``model.guard`` refuses every hostile
string we know of; a crash we do not know of must still cost one row, not the worker and its shard.
So a decode worker never decodes in its own process: a child (``python -m pipeline.decode.sandbox``) holds
the codecs and decodes, with its data segment capped (``Limits.memory_bytes``, RLIMIT_DATA: an
allocation beyond it fails as MemoryError instead of swapping the machine) and each call under a
deadline. When the child dies (a signal, the deadline), the batch is split in halves until the
bitstream that kills it is alone; it is tried once more in a fresh child and then becomes an error
row, while a fresh child carries on with the rest. The child dies with its worker (``child``).

Protocol (``child``): the parent sends (settings, limits, device), answered ("ready",) once the child
has imported what it decodes with (a start-up, slow on a loaded machine, is no bitstream's: it has its
own deadline, ``START_S``), then (codec id, bitstreams) per call, answered ("ok", [(raw image | None,
error), ...], peak rss) or ("infra", message, peak rss), and None to end.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..io.child import Limits, child_streams, peak_rss_bytes, recv, send, start_child
from ..io.faults import InfrastructureError

if TYPE_CHECKING:  # the child imports what decodes only after it has set its thread limits
    from .settings import DecodeSettings


START_S = 600.0  # the most a child may take to start (a Python process and its imports)


class ChildDied(Exception):
    pass


class DecoderProcess:
    """A ``decoding.Decoder`` whose codecs run in a child process (see the module doc)."""

    def __init__(self, settings: DecodeSettings, limits: Limits = Limits(), device: str = "cpu"):
        self.settings, self.limits, self.device = settings, limits, device
        self.proc: subprocess.Popen | None = None
        self.peak_rss_bytes = 0  # the largest resident size any child reached
        self.deaths: list[str] = []

    def __call__(self, codec_id: str, blobs: list[bytes]) -> list[tuple]:
        try:
            return self._call(codec_id, blobs)
        except ChildDied as died:
            if len(blobs) > 1:
                half = len(blobs) // 2
                return self(codec_id, blobs[:half]) + self(codec_id, blobs[half:])
            try:
                return self._call(codec_id, blobs)  # once more, alone, in a fresh child
            except ChildDied:
                return [(None, f"decode failed: the decoder process died on this bitstream ({died})")]

    def _call(self, codec_id: str, blobs: list[bytes]) -> list[tuple]:
        deadline = self.limits.seconds_per_image * len(blobs)
        try:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            send(self.proc.stdin, (codec_id, blobs))
            reply = self._reply(deadline)
        except (EOFError, BrokenPipeError, OSError):
            raise ChildDied(self._death()) from None
        kind, payload, rss = reply
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if kind == "infra":
            raise InfrastructureError(f"decoder process: {payload}")
        from PIL import Image

        return [(Image.frombytes(*raw) if raw is not None else None, error) for raw, error in payload]

    def _reply(self, deadline: float):
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], deadline)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            self.deaths.append(f"no answer in {deadline:.0f}s, killed")
            raise ChildDied(self.deaths[-1])
        return recv(self.proc.stdout)

    def _death(self) -> str:
        code = self.proc.wait()
        what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        self.deaths.append(what)
        self.proc = None
        return what

    def _start(self) -> None:
        self.proc = start_child("pipeline.decode.sandbox")
        send(self.proc.stdin, (self.settings, self.limits, self.device))
        self._reply(START_S)  # ("ready",): the calls' deadlines count from here

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                send(self.proc.stdin, None)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _serve() -> None:
    """The child: decode what the parent sends until it sends None."""
    proto_in, proto_out = child_streams()
    settings, limits, device = recv(proto_in)
    if limits.memory_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(limits.threads)
    # imported only now: numpy and torch read the thread limits above when they load
    from model import load_codec_for_id

    from .decoding import in_process

    codecs: dict = {}

    def get_codec(codec_id: str):
        if codec_id not in codecs:
            where = {"weights_dir": Path(settings.weights_dir)} if settings.weights_dir else {}
            codecs[codec_id] = load_codec_for_id(codec_id, device=device, **where).with_max_pixels(settings.max_pixels)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(limits.threads)
        return codecs[codec_id]

    decode = in_process(get_codec, settings)
    send(proto_out, ("ready",))
    while (msg := recv(proto_in)) is not None:
        codec_id, blobs = msg
        try:
            images = decode(codec_id, blobs)
            reply = ("ok", [((img.mode, img.size, img.tobytes()) if img is not None else None, err)
                            for img, err in images])
        except Exception as exc:  # input errors are rows already (in_process): this is not the input's fault
            reply = ("infra", f"{type(exc).__name__}: {exc}")
        send(proto_out, (*reply, peak_rss_bytes()))


if __name__ == "__main__":
    _serve()
