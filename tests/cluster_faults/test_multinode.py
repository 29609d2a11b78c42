"""A two-node Ray cluster on this machine (two real `ray start`), one node killed (kill -9 of its
raylet and workers) while it runs a shard of compress or of decompress: the job finishes on the
other node, with every row archived (decoded) exactly once and every output verifying."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from conftest import free_port
from processes import kill_session, session_processes
from shardkit import archive_rows, plain_shards, stats

from jobs import compress, decompress
from model import load_codec
from pipeline.encode.encoding import EncodeSettings, compress_shard
from pipeline.io.storage import Storage

REPO = Path(__file__).resolve().parents[2]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def ray_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """`ray start --block` in its own session; returns once the node has joined the cluster."""
    with log.open("wb") as f:
        node = subprocess.Popen([*RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                                 *args], env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "Ray runtime started" in log.read_text() or node.poll() is not None, 90,
                   "node did not start")
        assert node.poll() is None, log.read_text()[-3000:]
    except AssertionError:
        kill_session(node.pid)
        raise
    return node


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """(address, client env, temp dir, log folder): a head node with 2 CPUs, shared by this module's tests."""
    logs = tmp_path_factory.mktemp("multinode")
    token = logs / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=str(REPO))
    temp_dir = tempfile.mkdtemp(prefix="diffarc-ray-")  # short: unix socket paths are limited to 107 bytes
    address = f"127.0.0.1:{free_port()}"
    node = ray_node(["--head", f"--port={address.split(':')[1]}", "--num-cpus=2", "--include-dashboard=false",
                     f"--temp-dir={temp_dir}"], env, logs / "head.log")
    try:
        yield address, env, temp_dir, logs
    finally:
        kill_session(node.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def two_nodes(head, tmp_path):
    """(address, client env, worker node process): the head and a fresh worker node with 1 CPU."""
    address, env, temp_dir, _ = head
    worker = ray_node([f"--address={address}", "--num-cpus=1", f"--temp-dir={temp_dir}"], env,
                      tmp_path / "worker.log")
    try:
        yield address, env, worker
    finally:
        kill_session(worker.pid)


def frozen_if(sid: int, running_there) -> bool:
    """Stop (SIGSTOP) every process of session ``sid``, then check ``running_there`` on their command
    lines: true, they stay stopped, so what was seen still holds when they are killed; else resume them."""
    procs = list(session_processes(sid))
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.suspend()
    if running_there(" ".join(session_processes(sid).values())):
        return True
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.resume()
    return False


def run_killing_node(script: str, argv: list[str], address: str, env: dict, worker, running_there) -> str:
    """Run a job on the cluster, kill -9 the worker node (its whole session) once
    ``running_there(command lines of the node's processes)`` is true of it frozen; returns the job's output."""
    job = subprocess.Popen([sys.executable, str(REPO / "jobs" / script), *argv], cwd=REPO,
                           env={**env, "RAY_ADDRESS": address}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    try:
        wait_until(lambda: running_there(" ".join(session_processes(worker.pid).values()))
                   and frozen_if(worker.pid, running_there), 120, "no shard ever ran on the worker node")
        kill_session(worker.pid)
        log = job.communicate(timeout=300)[0]
    finally:
        kill_session(job.pid)
    assert job.returncode == 0, log[-4000:]
    assert "retrying on a new worker" in log  # the shard on the lost node was given to another
    return log


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """(folder, shard name -> keys): shards long enough that a kill lands while one is running."""
    folder = tmp_path_factory.mktemp("multinode-in")
    # PNG photos: their webp rows are smaller than the files, so they take the codec path and are decoded
    return folder, plain_shards(folder, n_shards=6, per_shard=8, size=(320, 240), fmt="PNG")


def every_key(expected: dict[str, list[str]]) -> Counter:
    return Counter(k for ks in expected.values() for k in ks)


@pytest.mark.slow
def test_a_node_killed_mid_job_loses_nothing(ray_local, corpus, two_nodes, tmp_path):
    (src, expected), (address, env, worker) = corpus, two_nodes
    out = tmp_path / "archive"
    argv = ["--input", str(src), "--output", str(out), "--codec", "webp-q90", "--batch-size", "1",
            "--actors", "2", "--no-progress"]
    # One replica runs on the worker node (SPREAD); kill that node while the replica has a shard.
    run_killing_node("compress.py", argv, address, env, worker, lambda cmds: "CompressWorker.compress" in cmds)
    assert Counter(r["key"] for r in archive_rows(out, columns=["key"])) == every_key(expected)
    assert sorted(stats(out)) == sorted(expected)
    assert compress.main(argv) == 0  # every marker and Parquet file verifies
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(expected)


def decoded_keys(folder: Path) -> Counter:
    """The keys of the decoded images in every NAME.tar under ``folder``."""
    keys: Counter = Counter()
    for path in folder.glob("*.tar"):
        with tarfile.open(path) as tar:
            keys.update(name.removesuffix(".png") for name in tar.getnames() if name.endswith(".png"))
    return keys


@pytest.mark.slow
def test_a_node_killed_mid_decode_loses_nothing(ray_local, corpus, two_nodes, tmp_path):
    (src, expected), (address, env, worker) = corpus, two_nodes
    archive = tmp_path / "archive"
    codec = load_codec("webp-q90")
    for shard in sorted(src.glob("*.tar")):  # the archive, in this process: no cluster needed
        compress_shard(codec, str(shard), str(archive), EncodeSettings(), Storage())
    out = tmp_path / "decoded"
    argv = ["--input", str(archive), "--output", str(out), "--batch-size", "1", "--actors", "2", "--no-progress"]
    # Kill the node while its replica decodes a shard (through its decoding process, killed with it).
    run_killing_node("decompress.py", argv, address, env, worker,
                     lambda cmds: "DecodeWorker.decode" in cmds and "pipeline.decode.sandbox" in cmds)
    assert decoded_keys(out) == every_key(expected)
    assert sorted(p.name.removesuffix(".decoded.json") for p in out.glob("*.decoded.json")) == sorted(expected)
    assert decompress.main(argv) == 0  # every marker and decoded tar verifies
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(expected)
