"""Processes a test started or kills: those of a session (what a test started with
``start_new_session=True``, found and killed by session id, never by name: other users' Ray
processes on this machine are not ours), one waited for until gone, a worker killed mid-shard."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from typing import Callable

import psutil

from pipeline.records.archive import now


def session_processes(sid: int) -> dict[psutil.Process, str]:
    """The live processes of session ``sid`` with their command lines."""
    out = {}
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                out[proc] = " ".join(proc.cmdline())
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return out


def kill_session(sid: int) -> None:
    """kill -9 every process of session ``sid``."""
    procs = list(session_processes(sid))
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def wait_gone(proc: psutil.Process, timeout: float) -> float:
    """Seconds until ``proc`` has exited (a zombie counts: it holds no memory and no CPU, and an
    orphan's new parent may be slow to reap it); fails after ``timeout``."""
    start = time.monotonic()
    while True:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return time.monotonic() - start
        except psutil.NoSuchProcess:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"process {proc.pid} ({' '.join(proc.cmdline())}) outlived {timeout}s"
        time.sleep(0.05)


class MidShardKill:
    """A job's ``on_event``: kill -9 the worker on the first batch event of a shard with batches left,
    unless ``finished(shard)`` already (the event came late). The worker is frozen (SIGSTOP) first, so
    what is checked still holds when the kill lands; ``note(event)`` records more of that moment.
    ``killed`` is the event with the time (``at``) and the notes, once it happened."""

    def __init__(self, per_shard: int, finished: Callable[[str], bool], note: Callable[[dict], dict] = lambda e: {}):
        self.per_shard, self.finished, self.note = per_shard, finished, note
        self.seen: Counter = Counter()  # images reported per shard
        self.killed: dict = {}

    def __call__(self, event: dict) -> None:
        self.seen[event["shard"]] += event["images"]
        if self.killed or self.seen[event["shard"]] >= self.per_shard:
            return
        os.kill(event["pid"], signal.SIGSTOP)
        if self.finished(event["shard"]):
            os.kill(event["pid"], signal.SIGCONT)
            return
        self.killed.update(event, at=now(), **self.note(event))
        os.kill(event["pid"], signal.SIGKILL)
