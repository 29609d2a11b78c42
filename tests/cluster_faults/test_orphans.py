"""A worker's child processes die with it (pipeline/io/child.py): a plain process standing in for a
DecodeWorker starts the decoding process or the archive reader, which then gets stuck (a decoder
that never returns, a store that never answers, native code that holds the GIL); the parent is
killed with SIGKILL and the child must be gone within seconds. A child started on a thread that then
ends lives on while its parent does, and still decodes.

Not a Ray actor as the parent: Ray 2.60's raylet kills a dead worker's process group, children
included, so such a test would pass without ``pipeline.io.child``; that covers neither a raylet that
dies with its node nor a Ray that runs without per-worker process groups."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import DUMMY_AWS
from processes import kill_session, wait_gone

from pipeline.io.child import WATCH_S

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
DEATH_S = 30.0  # many watch periods, for a loaded machine: a child that outlives its worker would live for ever

SANDBOX_PARENT = """
import json, sys, threading, time
import numpy as np
from model import load_codec
from model.format import Container, pack
from pipeline.decode.decoding import DecodeSettings
from pipeline.decode.sandbox import DecoderProcess

decoder = DecoderProcess(DecodeSettings())
good = load_codec("faulty").encode([np.full((6, 8, 3), 7, np.uint8)])
errors = []
decode = lambda: errors.extend(err for _, err in decoder("faulty", good))
if sys.argv[1] == "thread":  # the child is started on a thread that then ends
    starter = threading.Thread(target=decode)
    starter.start()
    starter.join()
else:
    decode()
child = decoder.proc.pid
time.sleep(float(sys.argv[2]))
decode()  # the same child, still there
print(json.dumps({"child": child, "same_child": decoder.proc.pid == child, "errors": errors}), flush=True)
decoder("faulty", [pack(Container("faulty", 6, 8, "RGB", (b"HANG",)))])  # never returns
"""

READER_PARENT = """
import sys
from pipeline.decode.archive_rows import ArchiveRows, ReadRequest
from pipeline.io.storage import Storage
from pipeline.records.archive import RowGroups

storage = Storage(endpoint_url=sys.argv[1], retries=0, timeout_s=600)
list(ArchiveRows(ReadRequest("s3://stuck/a.parquet", storage, 4, None, RowGroups())))  # never returns
"""

SPINNER_PARENT = """
import json, time
from pipeline.io.child import recv, start_child
child = start_child("gil_spinner")
print(json.dumps({"child": child.pid, "said": recv(child.stdout)}), flush=True)
time.sleep(600)
"""


def start_parent(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, **DUMMY_AWS, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
           "DIFFARC_CODEC_PLUGINS": str(TESTS / "faulty_family.py")}
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            start_new_session=True)


def busy(proc: psutil.Process, cpu_s: float = 0.3, timeout: float = 120) -> None:
    """Wait until ``proc`` has burnt ``cpu_s`` more CPU seconds: it is in its loop."""
    start, deadline = sum(proc.cpu_times()[:2]), time.monotonic() + timeout
    while sum(proc.cpu_times()[:2]) - start < cpu_s:
        assert time.monotonic() < deadline, f"process {proc.pid} is not busy"
        time.sleep(0.05)


def killed_parent_takes_child(parent: subprocess.Popen, child: psutil.Process) -> float:
    """kill -9 ``parent``; seconds until ``child`` is gone (fails after DEATH_S)."""
    assert child.is_running() and child.ppid() == parent.pid
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    return wait_gone(child, DEATH_S)


@pytest.mark.parametrize("started_on", ["main", "thread"])
def test_a_hanging_decoder_dies_with_its_killed_worker(started_on):
    # started on the main thread the kernel ends the child (PR_SET_PDEATHSIG); on another thread, its
    # parent-watch thread does, and the starting thread's end (after 2 watch periods) must not
    parent = start_parent(SANDBOX_PARENT, started_on, str(2 * WATCH_S if started_on == "thread" else 0))
    try:
        report = json.loads(parent.stdout.readline())
        assert report["same_child"] and report["errors"] == [None, None]
        child = psutil.Process(report["child"])
        busy(child)  # inside the decoder that never returns
        assert killed_parent_takes_child(parent, child) < DEATH_S
    finally:
        kill_session(parent.pid)


def test_a_reader_waiting_on_a_silent_store_dies_with_its_killed_worker():
    with socket.create_server(("127.0.0.1", 0)) as store:  # accepts connections, never answers
        store.settimeout(30)
        parent = start_parent(READER_PARENT, f"http://127.0.0.1:{store.getsockname()[1]}")
        try:
            connection, _ = store.accept()  # the reader's first request: it now waits for the answer
            with connection:
                [child] = [c for c in psutil.Process(parent.pid).children() if "pipeline.decode.archive_rows" in c.cmdline()]
                assert killed_parent_takes_child(parent, child) < DEATH_S
        finally:
            kill_session(parent.pid)


def test_a_child_stuck_in_native_code_holding_the_gil_dies_with_its_killed_worker():
    parent = start_parent(SPINNER_PARENT)
    try:
        report = json.loads(parent.stdout.readline())
        assert report["said"] == "spinning"
        child = psutil.Process(report["child"])
        busy(child)
        assert killed_parent_takes_child(parent, child) < DEATH_S
    finally:
        kill_session(parent.pid)

