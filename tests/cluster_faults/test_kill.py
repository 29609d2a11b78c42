"""kill -9 of the driver mid-job and of a worker process mid-shard, for compress and for decompress,
each followed by a rerun: every input row appears exactly once and every output verifies (a further
rerun finds every shard complete)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pytest
from processes import MidShardKill, kill_session, session_processes
from shardkit import archive_rows, plain_shards, stats

from jobs import compress, decompress
from pipeline.decode.decoding import archive_name
from pipeline.records.files import DECODED_SUFFIX

REPO = Path(__file__).resolve().parents[2]
OUR_WORKERS = ("CompressWorker", "DecodeWorker", "pipeline.decode.sandbox")


def kill_driver_mid_job(script: str, argv: list[str], started, timeout: float = 180) -> None:
    """Run a job as its own process (it starts its own Ray), kill -9 it once ``started()`` is true,
    wait for its workers to notice and exit, then remove what is left of its Ray (agents that
    outlive their raylet would leak on this test machine)."""
    driver = subprocess.Popen([sys.executable, str(REPO / "jobs" / script), *argv], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not started():
            assert driver.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job did not get going"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 60
        while any(w in cmd for cmd in session_processes(driver.pid).values() for w in OUR_WORKERS):
            assert time.monotonic() < deadline, "workers of the killed driver kept running"
            time.sleep(0.5)
    finally:
        kill_session(driver.pid)


def expected_keys(expected: dict[str, list[str]]) -> Counter:
    return Counter(k for ks in expected.values() for k in ks)


def tar_keys(folder: Path) -> Counter:
    keys: Counter = Counter()
    for p in sorted(folder.glob("*.tar")):
        with tarfile.open(p) as tar:
            # each image comes back under its own extension (the corpus' JPEGs as .jpg members)
            keys.update(n.rsplit(".", 1)[0] for n in tar.getnames() if n.endswith((".jpg", ".png")))
    return keys


def decoded_markers(folder: Path) -> list[Path]:
    return list(folder.glob("*.decoded.json"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill") / "in"
    # PNG photos: their webp rows are smaller than the files, so they take the codec path and are decoded
    return folder, plain_shards(folder, n_shards=4, per_shard=10, size=(320, 240), fmt="PNG")


def compress_argv(src: Path, out: Path) -> list[str]:
    return ["--input", str(src), "--output", str(out), "--codec", "webp-q90", "--batch-size", "1",
            "--actors", "1", "--no-progress"]


@pytest.mark.slow
def test_compress_driver_killed_then_rerun_exactly_once(ray_local, corpus, tmp_path, capsys):
    src, expected = corpus
    out = tmp_path / "archive"
    kill_driver_mid_job("compress.py", compress_argv(src, out), lambda: 0 < len(stats(out)))
    assert len(stats(out)) < len(expected)  # killed mid-job
    assert compress.main(compress_argv(src, out)) == 0  # takes over the dead driver's lease
    assert "its process" in capsys.readouterr().out
    assert Counter(r["key"] for r in archive_rows(out, columns=["key"])) == expected_keys(expected)
    assert compress.main(compress_argv(src, out)) == 0  # every marker and Parquet file verifies
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(expected)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def archive(ray_local, corpus, tmp_path_factory):
    src, expected = corpus
    out = tmp_path_factory.mktemp("kill") / "archive"
    assert compress.main(compress_argv(src, out)) == 0
    return out, expected


@pytest.mark.slow
def test_decompress_driver_killed_then_rerun_exactly_once(archive, tmp_path):
    src, expected = archive
    out = tmp_path / "decoded"
    argv = ["--input", str(src), "--output", str(out), "--actors", "1", "--batch-size", "2", "--no-progress"]
    kill_driver_mid_job("decompress.py", argv, lambda: 0 < len(decoded_markers(out)))
    assert len(decoded_markers(out)) < len(expected)
    assert decompress.main(argv) == 0
    assert tar_keys(out) == expected_keys(expected)
    assert decompress.main(argv) == 0  # every output verifies against its marker
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(expected)


@pytest.mark.slow
def test_decode_worker_killed_mid_shard_is_redone_exactly_once(archive, tmp_path):
    src, expected = archive
    out = tmp_path / "decoded"

    def finished(shard: str) -> bool:
        return (out / f"{archive_name(shard)}{DECODED_SUFFIX}").exists()

    kill = MidShardKill(len(next(iter(expected.values()))), finished)
    argv = ["--input", str(src), "--output", str(out), "--actors", "2", "--batch-size", "1", "--no-progress"]
    assert decompress.main(argv, on_event=kill) == 0 and kill.killed
    assert tar_keys(out) == expected_keys(expected)
    [marker] = [json.loads(p.read_text()) for p in decoded_markers(out)
                if json.loads(p.read_text())["shard"] == kill.killed["shard"]]
    # killed before it finished the shard: redone whole, afresh, by the restarted worker
    assert marker["worker"]["pid"] != kill.killed["pid"] and marker["started"] >= kill.killed["at"]
    assert decompress.main(argv) == 0
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(expected)
