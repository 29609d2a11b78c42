"""A worker's child process (``sandbox``'s decoder, ``archive_rows``' reader): started, spoken to,
and dying with the worker.

Protocol: length-prefixed pickles over the child's stdin/stdout, between two processes of this code
base (the child's own prints go to stderr).

A worker can die by kill -9 (the stall watchdog, a node kill, Ray) while its child decodes a hostile
image for up to ``--decode-timeout`` or waits on a stuck read; re-parented, the child would go on
holding memory and a CPU. So each child calls ``child_streams`` first thing, which makes it die with
its parent in two ways, because neither covers every case alone:

- a daemon thread exits the process once ``os.getppid()`` is no longer the worker's pid (checked
  every ``WATCH_S``), whichever thread started the child; but it needs the GIL, which native code
  may hold (compressai's rANS decoder does, so a decoder looping there would never let it run);
- ``PR_SET_PDEATHSIG`` (Linux) has the kernel kill the child, GIL or not; but it fires when the
  *thread* that started the child ends, so it is set only when that was the parent's main thread,
  which ends only with its process (where Ray runs a synchronous actor's methods).

(A live raylet of Ray 2.60 also kills a dead worker's process group; this does not count on it:
the raylet may die with its node, and per-worker process groups are a Ray setting.)
"""

from __future__ import annotations

import ctypes
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root: children import this code base
PARENT_PID = "DIFFARC_PARENT_PID"  # the worker's pid, as the child must keep seeing it
PARENT_MAIN_THREAD = "DIFFARC_PARENT_MAIN_THREAD"  # "1": started from the worker's main thread
WATCH_S = 1.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Limits:
    """What a decoding child may use (``sandbox``)."""

    memory_bytes: int | None = 8 << 30  # the child's RLIMIT_DATA; None: no cap (on GPUs, where CUDA maps more)
    seconds_per_image: float = 1800.0  # deadline of a call: this times its images
    threads: int = 1


def start_child(module: str, **env: str) -> subprocess.Popen:
    """``python -m MODULE`` of this code base, spoken to through its stdin and stdout (``send``, ``recv``)."""
    env = {**os.environ, **env, PARENT_PID: str(os.getpid()),
           PARENT_MAIN_THREAD: "1" if threading.current_thread() is threading.main_thread() else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # unbuffered: select() on the parent's end must see every byte the child wrote
    return subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, cwd=str(REPO), bufsize=0)


def end_child(proc: subprocess.Popen) -> None:
    """Kill ``proc`` if it still runs (its reader stopped listening), reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()


def send(stream, obj) -> None:
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


def recv(stream):
    (n,) = struct.unpack(">Q", _read_exact(stream, 8))
    return pickle.loads(_read_exact(stream, n))


# -- in the child ---------------------------------------------------------------------------------


def child_streams():
    """First thing in a child: die with the parent (the module doc), then (protocol in, protocol out);
    from here on the child's own prints, and its libraries', go to stderr."""
    die_with_parent()
    proto_in, proto_out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints must not corrupt the protocol
    return proto_in, proto_out


def die_with_parent() -> None:
    """End this process when its parent (``start_child``'s caller; else the parent at this call) is gone."""
    parent = int(os.environ.pop(PARENT_PID, os.getppid()))
    if os.environ.pop(PARENT_MAIN_THREAD, "0") == "1" and sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the watch began
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def status_bytes(field: str) -> int | None:
    """A size from /proc/self/status (``VmHWM``, ``VmData``, ...) in bytes, or None without /proc."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith(field + ":"))) * 1024
    except (OSError, StopIteration):
        return None


def peak_rss_bytes() -> int:
    """This process's own peak resident size (VmHWM: ru_maxrss would include its parent's, kept across exec)."""
    peak = status_bytes("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
