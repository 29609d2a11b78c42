"""One job per output prefix: a second job refuses naming the first; a killed job's lease is taken
over; --force takes a live one (and its holder notices); on S3 the create is conditional."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from processes import kill_session
from shardkit import archive_rows, plain_shards

from jobs import compress
from pipeline.io.storage import Storage
from pipeline.run.lease import LEASE, Lease, LeaseHeld

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from pipeline.io.storage import Storage
from pipeline.run.lease import Lease
lease = Lease(sys.argv[1], "holder", Storage(), refresh_s=0.3).acquire()
print("held", lease.job_id, flush=True)
while not lease.lost:
    time.sleep(0.1)
print("lost:", lease.lost, flush=True)
"""


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def start_holder(prefix: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(prefix)], env=env(), stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("held"), line
    return proc, line.split()[1]


@pytest.mark.slow
def test_a_second_concurrent_job_refuses_naming_the_first(ray_local, tmp_path, capsys):
    expected = plain_shards(tmp_path / "in", n_shards=2, per_shard=12, size=(320, 240), fmt="JPEG")
    out = tmp_path / "archive"
    argv = ["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q90", "--batch-size", "1",
            "--actors", "1", "--no-progress"]
    first = subprocess.Popen([sys.executable, str(REPO / "jobs" / "compress.py"), *argv], env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(out / LEASE)
        held = json.loads((out / LEASE).read_text())
        assert compress.main(argv) == 2
        err = capsys.readouterr().err
        assert f"in use by compress job {held['job_id']}" in err and f"pid {first.pid}" in err and "--force" in err
    finally:
        log = first.communicate(timeout=300)[0]
    assert first.returncode == 0, log[-3000:]
    assert Counter(r["key"] for r in archive_rows(out, columns=["key"])) == Counter(
        k for ks in expected.values() for k in ks)
    assert not (out / LEASE).exists()  # released at the end


def test_a_killed_jobs_lease_is_taken_over_and_force_takes_a_live_one(ray_local, tmp_path, capsys):
    plain_shards(tmp_path / "in", n_shards=1, per_shard=2)
    out = tmp_path / "archive"
    argv = ["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q80", "--no-progress"]

    dead, dead_id = start_holder(out)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    capsys.readouterr()
    assert compress.main(argv) == 0
    assert f"taking over {out / LEASE} from job {dead_id}: its process {dead.pid} on this host is gone" in (
        capsys.readouterr().out)

    live, live_id = start_holder(out)
    try:
        assert compress.main([*argv, "--overwrite"]) == 2
        assert f"job {live_id}" in capsys.readouterr().err
        assert compress.main([*argv, "--overwrite", "--force"]) == 0
        assert "--force" in capsys.readouterr().out
        assert live.stdout.readline().startswith("warning: lease lost: job ")  # the holder noticed
    finally:
        live.kill()
        live.wait()
    assert not (out / LEASE).exists()


def test_s3_lease_is_an_exclusive_create(s3_endpoint):
    import s3fs

    s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}).mkdir("leases")
    storage = Storage(endpoint_url=s3_endpoint)
    first = Lease("s3://leases/out", "compress", storage).acquire()
    with pytest.raises(LeaseHeld, match=f"in use by compress job {first.job_id}"):
        Lease("s3://leases/out", "decompress", storage).acquire()
    forced = Lease("s3://leases/out", "compress", storage).acquire(force=True)
    first.release()  # no longer ours: left alone
    assert json.loads(storage.read_bytes("s3://leases/out/" + LEASE))["job_id"] == forced.job_id
    forced.release()
    assert not storage.exists("s3://leases/out/" + LEASE)


@pytest.mark.slow
def test_sigterm_ends_the_job_and_releases_its_lease(tmp_path):
    plain_shards(tmp_path / "in", n_shards=2, per_shard=12, size=(320, 240), fmt="JPEG")
    out = tmp_path / "archive"
    job = subprocess.Popen([sys.executable, str(REPO / "jobs" / "compress.py"), "--input", str(tmp_path / "in"),
                            "--output", str(out), "--codec", "webp-q90", "--batch-size", "1", "--actors", "1",
                            "--no-progress"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        wait_for(out / LEASE)
        job.send_signal(signal.SIGTERM)  # what Kubernetes sends at activeDeadlineSeconds
        log = job.communicate(timeout=120)[0]
    finally:
        kill_session(job.pid)
    assert job.returncode in (signal.SIGTERM, 128 + signal.SIGTERM), log[-2000:]  # Ray's handler exits 15
    assert not (out / LEASE).exists()  # the next scheduled run starts without --force


class _ExitsWhenCollected:
    """Raises from ``__del__``: Python can only report that (as unraisable), as it does for an at-fork callback."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __del__(self):
        raise self.exc


def test_a_sigterm_swallowed_while_ray_starts_still_ends_the_job(monkeypatch):
    # ray.init forks; a SIGTERM handled in an at-fork callback raises SystemExit there, and Python drops it
    from pipeline.run.runner import exits_kept

    with pytest.raises(SystemExit) as caught:
        with exits_kept():
            _ExitsWhenCollected(SystemExit(143))
    assert caught.value.code == 143

    others = []
    monkeypatch.setattr(sys, "unraisablehook", others.append)
    with exits_kept():  # anything else still goes to the hook that was there, and nothing is raised
        _ExitsWhenCollected(ValueError("not an exit"))
    assert [type(u.exc_value) for u in others] == [ValueError]
    assert sys.unraisablehook == others.append
