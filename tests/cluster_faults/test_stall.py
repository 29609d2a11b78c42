"""A worker that hangs on a shard without dying (an encode that never returns, tests/faulty_family.py's
``stall`` codec): the pool's stall watchdog (``--stall-timeout``) kills it and retries the shard; a
shard that hangs on every worker is left incomplete, and a rerun finishes it once the hang is gone."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import ray
from faulty_family import STALL_SIZE, hang_file
from shardkit import archive_rows, image_bytes, photo, plain_shards, stats, write_shard

from jobs import compress, decompress
from model import load_codec
from pipeline.encode.encoding import EncodeSettings, compress_shard
from pipeline.io.storage import Storage
from pipeline.records.files import ShardStats
from pipeline.run.plan import Node
from pipeline.run.pool import run_pool
from pipeline.run.progress import ProgressBoard, ProgressDisplay
from pipeline.run.runner import STALL_S as DEFAULT_STALL_S
from pipeline.run.runner import RunSettings, resources_from

FAULTY = Path(__file__).resolve().parents[1] / "faulty_family.py"
STALL_S = 5  # short, yet far longer than a batch takes here under load (a worker's start-up is not counted)
JOB_LIMIT_S = 300  # a job that outlives this hangs for good: the test fails instead of the suite hanging


@pytest.fixture
def stall_codec(monkeypatch):
    """(codec name, its hang file); the plugin reaches the Ray workers through $DIFFARC_CODEC_PLUGINS."""
    monkeypatch.setenv("DIFFARC_CODEC_PLUGINS", str(FAULTY))
    # A stalled worker is killed before its shard is handed on: the pool's backoff before the new worker
    # (5 s, long enough for Ray to declare a lost node dead) only waits here. Read on the driver.
    monkeypatch.setenv("DIFFARC_SHARD_BACKOFF_S", "0.1")
    token = uuid.uuid4().hex[:12]
    yield f"stall-{token}", hang_file(token)
    hang_file(token).unlink(missing_ok=True)


def corpus(folder: Path) -> tuple[dict[str, list[str]], str]:
    """Two plain shards and one whose third image (after a first batch of two) hangs the encoder;
    returns (shard name -> keys, the hanging shard's name)."""
    expected = plain_shards(folder, n_shards=2, per_shard=4)
    samples = [(f"h-{i}", {"png": image_bytes(photo(*(STALL_SIZE if i == 2 else (48, 32)), seed=i), "PNG")})
               for i in range(4)]
    write_shard(folder / "shard-hangs.tar", samples)
    expected["shard-hangs"] = [k for k, _ in samples]
    return expected, "shard-hangs"


def job_argv(src: Path, out: Path, codec: str) -> list[str]:
    return ["--input", str(src), "--output", str(out), "--codec", codec, "--batch-size", "2", "--actors", "2",
            "--retries", "1", "--stall-timeout", str(STALL_S), "--no-progress"]


def run_job(argv: list[str]) -> int:
    """``compress.main(argv)`` in a thread that the test stops waiting for after ``JOB_LIMIT_S``."""
    result: dict = {}

    def job() -> None:
        try:
            result["rc"] = compress.main(argv)
        except BaseException as exc:  # handed to the test's thread
            result["error"] = exc

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    thread.join(JOB_LIMIT_S)
    if "error" in result:
        raise result["error"]
    assert "rc" in result, f"the job still runs after {JOB_LIMIT_S}s: a hung shard was never given up"
    return result["rc"]


def assert_exactly_once(out: Path, expected: dict[str, list[str]]) -> None:
    assert Counter(r["key"] for r in archive_rows(out, columns=["key"])) == Counter(
        k for ks in expected.values() for k in ks)
    assert sorted(stats(out)) == sorted(expected)


def test_a_shard_that_hangs_once_is_retried_on_a_new_worker(ray_local, stall_codec, tmp_path, capsys):
    codec, hangs = stall_codec
    expected, hanging = corpus(tmp_path / "in")
    hangs.write_text("1")
    out = tmp_path / "archive"
    assert run_job(job_argv(tmp_path / "in", out, codec)) == 0
    assert hangs.read_text() == "0"  # the encoder did hang, once
    log = capsys.readouterr().out
    assert f"{hanging}.tar: it stalled (no progress for {STALL_S}s, --stall-timeout); retrying on a new worker" in log
    assert_exactly_once(out, expected)


def test_a_shard_that_always_hangs_is_left_incomplete_until_a_rerun(ray_local, stall_codec, tmp_path, capsys):
    codec, hangs = stall_codec
    expected, hanging = corpus(tmp_path / "in")
    hangs.write_text("100")
    out = tmp_path / "archive"
    argv = job_argv(tmp_path / "in", out, codec)
    assert run_job(argv) == 1
    assert hangs.read_text() == "98"  # hung on the first worker and on the one retry
    err = capsys.readouterr().err
    assert (f"FAILED {tmp_path / 'in' / hanging}.tar: it stalled (no progress for {STALL_S}s, --stall-timeout), "
            "on each of 2 workers (not marked done") in err
    assert sorted(stats(out)) == sorted(set(expected) - {hanging})  # the others are done
    assert not (out / f"{hanging}.parquet").exists()
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["failed"] == 1 and "stalled" in manifest["failures"][0]["error"]

    hangs.write_text("0")  # the hang is gone
    assert compress.main(argv) == 0
    assert_exactly_once(out, expected)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["done"] == 1 and manifest["counts"]["skipped"] == len(expected) - 1


@ray.remote(num_cpus=0)
class Ticker:
    """A worker whose shard posts ``beats`` progress events, ``gap_s`` apart."""

    def __init__(self, board: str):
        self.board = ray.get_actor(board)

    def ready(self) -> bool:
        return True

    def run(self, shard: str, beats: int, gap_s: float) -> ShardStats:
        for _ in range(beats):
            time.sleep(gap_s)
            self.board.post.remote({"shard": shard, "images": 1})
        return ShardStats(rows=beats)


def test_progress_keeps_a_long_shard_alive_and_silence_stalls_it(ray_local):
    board_name = f"test-board-{uuid.uuid4().hex[:8]}"
    board = ProgressBoard.options(name=board_name).remote()
    created: list = []

    def run(beats: int, gap_s: float) -> tuple[dict, dict]:
        worker = Ticker.remote(board_name)
        ray.get(worker.ready.remote())  # started: the clock measures the shard, not a cold start
        return run_pool(iter([worker]).__next__, 1, ["s"], lambda actor, shard: actor.run.remote(shard, beats, gap_s),
                        board, ProgressDisplay("test", 1, enabled=False), retries=0, stall_s=2.0, created=created)

    try:
        # 3 s in all, never 2 s without progress (a beat every 0.3 s leaves 1.7 s for an event to reach the driver)
        assert run(beats=10, gap_s=0.3) == ({"s": ShardStats(rows=10)}, {})
        stalled = "it stalled (no progress for 2s, --stall-timeout), on each of 1 workers"
        assert run(beats=1, gap_s=30) == ({}, {"s": stalled})
    finally:
        for actor in created + [board]:
            ray.kill(actor)


def test_stall_timeout_flag(capsys):
    def stall_s(*flags: str) -> float | None:
        run = RunSettings.from_args(compress.build_parser().parse_args(flags))
        return resources_from(run, "encode", False, nodes=[Node(2)]).stall_s

    assert stall_s() == DEFAULT_STALL_S and stall_s("--stall-timeout", "2.5") == 2.5
    assert stall_s("--stall-timeout", "0") is None  # off
    for bad in ("-1", "nan"):
        with pytest.raises(SystemExit):
            stall_s("--stall-timeout", bad)
        assert f"--stall-timeout: {bad!r}: expected a number of seconds, 0 or more" in capsys.readouterr().err


def test_decompress_stall_timeout_leaves_room_for_the_decoding_deadline(ray_local, tmp_path):
    """A hanging image is the decoding process's to catch (an error row): by default the watchdog
    waits that long (bisecting a batch of n takes up to 2 n deadlines) and then its own default."""
    write_shard(tmp_path / "in" / "shard-000000.tar", [("a", {"png": image_bytes(photo(), "PNG")})])
    compress_shard(load_codec("webp-q90"), str(tmp_path / "in" / "shard-000000.tar"), str(tmp_path / "archive"),
                   EncodeSettings(), Storage())
    out, events = tmp_path / "decoded", []
    assert decompress.main(["--input", str(tmp_path / "archive"), "--output", str(out), "--decode-timeout", "7",
                            "--batch-size", "3", "--actors", "1", "--no-progress"], on_event=events.append) == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["resources"]["stall_s"] == DEFAULT_STALL_S + 2 * 3 * 7
    # the watchdog sees a decode shard's progress: its events name the shard as the pool handed it out
    assert {e["shard"] for e in events} == {str(tmp_path / "archive" / "shard-000000.parquet")}
