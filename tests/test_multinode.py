"""A two-node Ray cluster on this machine (two real `ray start`), one node killed (kill -9 of its
raylet and workers) while it runs a shard: the job finishes on the other node, with every row
archived exactly once and every output verifying."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import free_port
from processes import kill_session, session_processes
from shardkit import archive_rows, plain_shards, stats

from jobs import compress

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture
def two_nodes(tmp_path):
    """(address, client env, worker node process): a head with 2 CPUs and a worker node with 1."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=str(REPO))
    temp_dir = tempfile.mkdtemp(prefix="diffarc-ray-")  # short: unix socket paths are limited to 107 bytes
    address = f"127.0.0.1:{free_port()}"
    head = ray_node(["--head", f"--port={address.split(':')[1]}", "--num-cpus=2", "--include-dashboard=false",
                     f"--temp-dir={temp_dir}"], env, tmp_path / "head.log")
    nodes = [head]
    try:
        worker = ray_node([f"--address={address}", "--num-cpus=1", f"--temp-dir={temp_dir}"], env,
                          tmp_path / "worker.log")
        nodes.append(worker)
        yield address, env, worker
    finally:
        for node in nodes:
            kill_session(node.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_a_node_killed_mid_job_loses_nothing(ray_local, two_nodes, tmp_path):
    address, env, worker = two_nodes
    expected = plain_shards(tmp_path / "in", n_shards=6, per_shard=8, size=(320, 240), fmt="JPEG")
    out = tmp_path / "archive"
    argv = ["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q90", "--batch-size", "1",
            "--actors", "2", "--no-progress"]
    job = subprocess.Popen([sys.executable, str(REPO / "jobs" / "compress.py"), *argv], cwd=REPO,
                           env={**env, "RAY_ADDRESS": address}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    try:
        # One replica runs on the worker node (SPREAD); kill that node while the replica has a shard.
        wait_until(lambda: "CompressWorker.compress" in " ".join(session_processes(worker.pid).values()), 120,
                   "no shard ever ran on the worker node")
        kill_session(worker.pid)
        log = job.communicate(timeout=300)[0]
    finally:
        kill_session(job.pid)
    assert job.returncode == 0, log[-4000:]
    assert "retrying on a new worker" in log  # the shard on the lost node was given to another
    assert Counter(r["key"] for r in archive_rows(out, columns=["key"])) == Counter(
        k for ks in expected.values() for k in ks)
    assert sorted(stats(out)) == sorted(expected)
    assert compress.main(argv) == 0  # every marker and Parquet file verifies
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(expected)
