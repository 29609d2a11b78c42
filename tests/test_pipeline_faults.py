"""Faults: a worker process killed mid-shard, and a job interrupted then resumed. In both the
finished archive holds every input image exactly once."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest
from shardkit import archive_rows, plain_shards, stats

from jobs import compress


def assert_exactly_once(out, expected: dict[str, list[str]]) -> None:
    keys = Counter(r["key"] for r in archive_rows(out, columns=["key"]))
    assert keys == Counter(k for ks in expected.values() for k in ks)
    assert sorted(stats(out)) == sorted(expected)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]  # no temp files left


def test_worker_killed_mid_shard_is_redone_exactly_once(ray_local, tmp_path):
    # Large enough photos that a shard takes a while: the kill lands while the shard is running.
    expected = plain_shards(tmp_path / "in", n_shards=3, per_shard=24, size=(320, 240), fmt="JPEG")
    killed: dict = {}

    def kill_first_worker(event: dict) -> None:
        if not killed:
            killed.update(event)
            os.kill(event["pid"], signal.SIGKILL)  # the actor's worker process, mid-shard

    out = tmp_path / "archive"
    rc = compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q90",
                        "--batch-size", "2", "--actors", "2", "--no-progress"], on_event=kill_first_worker)
    assert rc == 0 and killed
    assert_exactly_once(out, expected)
    redone = [s for s in stats(out).values() if s["shard"] == killed["shard"]][0]
    assert redone["worker"]["pid"] != killed["pid"]  # the restarted actor did it again, whole


class Interrupt(Exception):
    pass


def test_interrupted_job_resumes_without_redoing_finished_shards(ray_local, tmp_path):
    expected = plain_shards(tmp_path / "in", n_shards=4, per_shard=6, size=(160, 120), fmt="JPEG")
    out = tmp_path / "archive"
    argv = ["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q90",
            "--batch-size", "2", "--actors", "1", "--no-progress"]

    def interrupt_after_first_shard(event: dict) -> None:
        if stats(out):
            raise Interrupt  # the driver dies mid-job: a shard may be half-encoded on the worker

    with pytest.raises(Interrupt):
        compress.main(argv, on_event=interrupt_after_first_shard)
    first = stats(out)
    assert 1 <= len(first) < 4 and not (out / "_manifest.json").exists()

    assert compress.main(argv) == 0
    assert_exactly_once(out, expected)
    after = stats(out)
    assert all(after[name] == s for name, s in first.items())  # finished shards were not redone
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["skipped"] == len(first) and manifest["counts"]["done"] == 4 - len(first)

    assert compress.main([*argv, "--overwrite"]) == 0
    assert_exactly_once(out, expected)
    assert all(stats(out)[name]["started"] >= s["finished"] for name, s in after.items())
