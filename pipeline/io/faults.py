"""Two kinds of failure, handled in opposite ways.

- About the input (an image that does not load, a bitstream that does not decode): the row records the
  error and the shard goes on. Retrying would fail the same way.
- About the infrastructure (out of memory, I/O, a lost connection or actor, a timeout): never recorded
  in a row, since the input may be fine. It propagates; the shard is retried with backoff, and if it
  keeps failing it is left incomplete (no completion marker) with a message, so a rerun does it.

Out of memory is also answered sooner: ``batches.call_batched`` halves the batch and tries again.
"""

from __future__ import annotations

import gc
import os
import sys

PERMANENT_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
_TRANSIENT_WORDS = ("Throttl", "SlowDown", "Timeout", "Connection", "ServiceUnavailable", "InternalError")


class InfrastructureError(RuntimeError):
    """A fault of the machinery, found by our own checks (a short read, a lost decoder process)."""


class PermanentError(Exception):
    """An input problem that no retry fixes (not a tar archive, ...); the message says what."""


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA), or the CPU allocator's "can't allocate memory"."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in ("out of memory", "can't allocate memory"))


def is_infrastructure(exc: BaseException) -> bool:
    """Whether ``exc`` is about the machinery rather than the input (see the module doc)."""
    if is_out_of_memory(exc) or isinstance(exc, (InfrastructureError, OSError, ConnectionError, TimeoutError)):
        return True
    return type(exc).__module__.startswith(("ray.", "botocore.", "aiobotocore.", "aiohttp."))


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: infrastructure faults, throttling, 5xx; not a missing file."""
    if isinstance(exc, (PERMANENT_ERRORS, PermanentError)):
        return False
    if is_infrastructure(exc):
        return True
    name, text = type(exc).__name__, str(exc)
    return any(s in name or s in text for s in _TRANSIENT_WORDS)


def seconds_from_env(name: str, default: float) -> float:
    """A retry's wait in seconds from the environment variable ``name`` (0 or more), else ``default``:
    read where the job's driver builds its retry policy; tests set the waits short, since their faults
    come on cue, not by the clock."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    value = float(text)
    if not value >= 0:  # also NaN
        raise ValueError(f"${name}={text!r}: expected a number of seconds, 0 or more")
    return value


def release_memory() -> None:
    """Give freed memory back before a smaller retry (the CUDA cache holds on to it otherwise)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
