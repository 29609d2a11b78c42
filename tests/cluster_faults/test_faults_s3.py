"""Network faults between the jobs and a real S3 API (moto's server behind a real TCP proxy that
resets connections): transient faults during reads and writes are retried away with 0 rows lost or
duplicated; a persistent fault leaves the shard incomplete (no marker), and a rerun finishes it."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import s3fs
from faultproxy import FaultProxy
from shardkit import plain_shards

from jobs import compress, decompress


@pytest.fixture
def proxy(s3_endpoint, monkeypatch):
    # The faults come every n-th request, not by the clock: the storage retries' backoff (0.5 s doubling,
    # nested per upload and per shard: tens of seconds at --retries 6) only waits here. Read on the driver.
    monkeypatch.setenv("DIFFARC_RETRY_BACKOFF_S", "0.02")
    p = FaultProxy(int(s3_endpoint.rsplit(":", 1)[1])).start()
    try:
        yield p
    finally:
        p.stop()


def upload_corpus(s3_endpoint, tmp_path, bucket: str, n_shards: int = 3) -> tuple[s3fs.S3FileSystem, dict]:
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, use_listings_cache=False)
    fs.mkdir(bucket)
    expected = plain_shards(tmp_path / "in", n_shards=n_shards, per_shard=5, size=(64, 48))
    for p in sorted((tmp_path / "in").iterdir()):
        fs.put(str(p), f"{bucket}/corpus/{p.name}")
    return fs, expected


def archived_keys(fs, prefix: str) -> Counter:
    import pyarrow.parquet as pq

    keys: Counter = Counter()
    for path in fs.glob(f"{prefix}/*.parquet"):
        with fs.open(path, "rb") as f:
            keys.update(pq.read_table(f, columns=["key"]).column("key").to_pylist())
    return keys


def test_transient_faults_on_reads_and_writes_lose_and_duplicate_nothing(s3_endpoint, proxy, tmp_path):
    fs, expected = upload_corpus(s3_endpoint, tmp_path, "transient")
    proxy.cut_every = 3  # a third of all requests, listing, reading and writing, are reset mid-way
    argv = ["--input", "s3://transient/corpus/", "--output", "s3://transient/archive", "--codec", "webp-q80",
            "--endpoint-url", proxy.url, "--retries", "6", "--no-progress"]
    assert compress.main(argv) == 0
    assert proxy.cuts["GET"] > 0 and proxy.cuts["PUT"] > 0, proxy.cuts  # faults hit reads and writes
    assert archived_keys(fs, "transient/archive") == Counter(k for ks in expected.values() for k in ks)

    decoded_before = sum(proxy.cuts.values())
    assert decompress.main(["--input", "s3://transient/archive", "--output", "s3://transient/decoded",
                            "--endpoint-url", proxy.url, "--retries", "6", "--no-progress"]) == 0
    assert sum(proxy.cuts.values()) > decoded_before
    import io
    import tarfile

    for name, keys in expected.items():
        with tarfile.open(fileobj=io.BytesIO(fs.cat(f"transient/decoded/{name}.tar"))) as tar:
            assert sorted(n[: -len(".png")] for n in tar.getnames() if n.endswith(".png")) == sorted(keys)


def test_persistent_write_fault_leaves_the_shard_incomplete_and_a_rerun_finishes(s3_endpoint, proxy, tmp_path):
    fs, expected = upload_corpus(s3_endpoint, tmp_path, "persistent", n_shards=2)
    proxy.refuse = re.compile(r"shard-000001\.parquet")  # every write of this one object is reset
    argv = ["--input", "s3://persistent/corpus/", "--output", "s3://persistent/archive", "--codec", "webp-q80",
            "--endpoint-url", proxy.url, "--retries", "1", "--no-progress"]
    assert compress.main(argv) == 1
    assert proxy.cuts["PUT"] > 0
    listed = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("persistent/archive"))
    assert "shard-000000.stats.json" in listed and "shard-000001.stats.json" not in listed  # not marked done
    manifest = json.loads(fs.cat("persistent/archive/_manifest.json"))
    assert [f["shard"].rsplit("/", 1)[-1] for f in manifest["failures"]] == ["shard-000001.tar"]

    proxy.refuse = None  # the fault clears: a rerun does only what is missing
    assert compress.main(argv) == 0
    manifest = json.loads(fs.cat("persistent/archive/_manifest.json"))
    assert manifest["counts"]["skipped"] == 1 and manifest["counts"]["done"] == 1
    assert archived_keys(fs, "persistent/archive") == Counter(k for ks in expected.values() for k in ks)
