"""Faults: a worker process killed mid-shard, and a job interrupted then resumed. In both the
finished archive holds every input image exactly once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from processes import MidShardKill
from shardkit import archive_rows, plain_shards, stats

from jobs import compress
from pipeline.io.shards import shard_name


def assert_exactly_once(out, expected: dict[str, list[str]]) -> None:
    keys = Counter(r["key"] for r in archive_rows(out, columns=["key"]))
    assert keys == Counter(k for ks in expected.values() for k in ks)
    assert sorted(stats(out)) == sorted(expected)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]  # no temp files left


def test_worker_killed_mid_shard_is_redone_exactly_once(ray_local, tmp_path):
    per_shard = 24
    expected = plain_shards(tmp_path / "in", n_shards=3, per_shard=per_shard, size=(320, 240), fmt="JPEG")
    out = tmp_path / "archive"

    def finished(shard: str) -> bool:
        return (out / f"{shard_name(shard)}.stats.json").exists()

    def temps(event: dict) -> dict:
        return {"temps": [p.name for p in out.glob(f"{shard_name(event['shard'])}.parquet.tmp-*")]}

    kill = MidShardKill(per_shard, finished, temps)
    rc = compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q90",
                        "--batch-size", "2", "--actors", "2", "--no-progress"], on_event=kill)
    killed = kill.killed
    assert rc == 0 and killed
    assert killed["temps"]  # the killed worker was writing the shard's Parquet file: the kill was mid-shard
    assert_exactly_once(out, expected)
    [redone] = [s for s in stats(out).values() if s["shard"] == killed["shard"]]
    assert redone["worker"]["pid"] != killed["pid"] and redone["started"] >= killed["at"]  # redone whole, afresh


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
    redone = stats(out)
    assert all(redone[name]["worker"]["pid"] != s["worker"]["pid"] for name, s in after.items())  # by new workers
    assert json.loads((out / "_manifest.json").read_text())["counts"]["done"] == 4
