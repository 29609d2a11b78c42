"""Decoding in a child process that is allowed to die.

The entropy decoder is native code that trusts its input. ``model.guard`` refuses every hostile
string we know of; a crash we do not know of must still cost one row, not the worker and its shard.
So a decode worker never decodes in its own process: a child (``python -m pipeline.sandbox``) holds
the codecs and decodes, with its data segment capped (``Limits.memory_bytes``, RLIMIT_DATA: an
allocation beyond it fails as MemoryError instead of swapping the machine) and each call under a
deadline. When the child dies (a signal, the deadline), the batch is split in halves until the
bitstream that kills it is alone; it is tried once more in a fresh child and then becomes an error
row, while a fresh child carries on with the rest.

Protocol: length-prefixed pickles over the child's stdin/stdout, between two processes of this
code base (the child's own prints go to stderr).
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .faults import InfrastructureError

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = 8 << 30  # the child's RLIMIT_DATA; None: no cap (on GPUs, where CUDA maps more)
    seconds_per_image: float = 1800.0  # deadline of a call: this times its images
    threads: int = 1


class ChildDied(Exception):
    pass


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack(">Q", len(data)) + data)
    stream.flush()


def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(stream):
    (n,) = struct.unpack(">Q", _read_exact(stream, 8))
    return pickle.loads(_read_exact(stream, n))


class DecoderProcess:
    """A ``decoding.Decoder`` whose codecs run in a child process (see the module doc)."""

    def __init__(self, settings, limits: Limits = Limits(), device: str = "cpu"):
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
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        deadline = self.limits.seconds_per_image * len(blobs)
        try:
            _send(self.proc.stdin, (codec_id, blobs))
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
        return _recv(self.proc.stdout)

    def _death(self) -> str:
        code = self.proc.wait()
        what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        self.deaths.append(what)
        self.proc = None
        return what

    def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        # unbuffered: select() on our end must see every byte the child wrote
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.sandbox"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=str(REPO), bufsize=0)
        _send(self.proc.stdin, (self.settings, self.limits, self.device))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                _send(self.proc.stdin, None)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _peak_rss_bytes() -> int:
    """This process's own peak resident size (VmHWM: ru_maxrss would include its parent's, kept across exec)."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("VmHWM"))) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _serve() -> None:
    """The child: decode what the parent sends until it sends None."""
    proto_in, proto_out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # our prints (and libraries') must not corrupt the protocol
    settings, limits, device = _recv(proto_in)
    if limits.memory_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(limits.threads)
    from model import load_codec_for_id

    from .decoding import in_process

    codecs: dict = {}

    def get_codec(codec_id: str):
        if codec_id not in codecs:
            where = {"weights_dir": Path(settings.weights_dir)} if settings.weights_dir else {}
            codecs[codec_id] = load_codec_for_id(codec_id, device=device, **where)
            codecs[codec_id].max_pixels = settings.max_pixels
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(limits.threads)
        return codecs[codec_id]

    decode = in_process(get_codec, settings)
    while (msg := _recv(proto_in)) is not None:
        codec_id, blobs = msg
        try:
            images = decode(codec_id, blobs)
            reply = ("ok", [((img.mode, img.size, img.tobytes()) if img is not None else None, err)
                            for img, err in images])
        except Exception as exc:  # input errors are rows already (in_process): this is not the input's fault
            reply = ("infra", f"{type(exc).__name__}: {exc}")
        _send(proto_out, (*reply, _peak_rss_bytes()))


if __name__ == "__main__":
    _serve()
