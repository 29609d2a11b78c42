"""Processes a test started or kills: those of a session (what a test started with
``start_new_session=True``, found and killed by session id, never by name: other users' Ray
processes on this machine are not ours), one waited for until gone."""

from __future__ import annotations

import contextlib
import os
import time

import psutil


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
