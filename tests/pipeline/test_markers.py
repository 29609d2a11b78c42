"""Completion markers: resume trusts a shard only when its Parquet file matches the marker and its
input is unchanged; a truncated marker is named and the shard redone; reading markers is linear."""

from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest
import s3fs
from faultproxy import FaultProxy
from shardkit import archive_rows, image_bytes, photo, plain_shards, stats, write_shard

from jobs import compress
from pipeline.run.lease import LEASE

ARGS = ["--codec", "webp-q80", "--batch-size", "4", "--no-progress"]


@pytest.fixture
def archived(ray_local, tmp_path):
    expected = plain_shards(tmp_path / "in", n_shards=4, per_shard=3)
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "archive"), *ARGS]
    assert compress.main(argv) == 0
    return tmp_path / "archive", argv, expected


def test_damaged_outputs_truncated_markers_and_changed_inputs_are_redone(archived, tmp_path, capsys):
    out, argv, expected = archived
    before = stats(out)
    flipped = bytearray((out / "shard-000000.parquet").read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # same size, one byte corrupt: only the sha256 can tell
    (out / "shard-000000.parquet").write_bytes(bytes(flipped))
    cut = (out / "shard-000001.parquet").read_bytes()
    (out / "shard-000001.parquet").write_bytes(cut[: len(cut) // 2])
    marker = (out / "shard-000002.stats.json").read_text()
    (out / "shard-000002.stats.json").write_text(marker[: len(marker) // 3])
    changed = {"s3-0000": {"png": image_bytes(photo(seed=99), "PNG")}, "s3-new": {"png": image_bytes(photo(), "PNG")}}
    write_shard(tmp_path / "in" / "shard-000003.tar", list(changed.items()))  # new content, same name
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*.stats.json")}
    capsys.readouterr()

    assert compress.main(argv) == 0
    err = capsys.readouterr().err
    assert f"redoing shard-000000: {out / 'shard-000000.parquet'} does not match the sha256 in its marker" in err
    assert f"redoing shard-000001: {out / 'shard-000001.parquet'} is {len(cut) // 2} bytes, the marker says" in err
    assert f"{out / 'shard-000002.stats.json'} is not valid JSON" in err  # the file is named
    assert "redoing shard-000003" in err and "changed since it was archived" in err
    after = stats(out)
    assert sorted(after) == sorted(before) == sorted(n[: -len(".stats.json")] for n in written) and all(
        (out / name).stat().st_mtime_ns != mtime for name, mtime in written.items())  # all four rewritten
    keys = Counter(r["key"] for r in archive_rows(out, columns=["key"]))
    assert keys == Counter([*expected["shard-000000"], *expected["shard-000001"], *expected["shard-000002"],
                            *changed])
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["done"] == 4 and manifest["counts"]["skipped"] == 0

    assert compress.main(argv) == 0  # and now every marker checks out
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == 4


def test_s3_markers_check_etags_and_reading_them_is_linear(s3_endpoint, tmp_path, capsys):
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, use_listings_cache=False)
    fs.mkdir("markers")
    proxy = FaultProxy(int(s3_endpoint.rsplit(":", 1)[1])).start()  # no faults: it counts requests
    try:
        requests, argvs = {}, {}
        for n in (2, 6):
            plain_shards(tmp_path / f"in{n}", n_shards=n, per_shard=2, size=(32, 32))
            fs.put(str(tmp_path / f"in{n}") + "/", f"markers/in{n}/", recursive=True)
            argv = ["--input", f"s3://markers/in{n}/", "--output", f"s3://markers/out{n}", "--endpoint-url",
                    proxy.url, *ARGS]
            argvs[n] = argv
            assert compress.main(argv) == 0
            counts = []
            for _ in range(2):  # the fewer of two all-skipped reruns: a client's retry under load is no request of ours
                start = len(proxy.paths)
                assert compress.main(argv) == 0  # all skipped
                # the lease's requests are left out: it is refreshed every 30 s, so they count how slow the run was
                counts.append(sum(LEASE not in path for path in proxy.paths[start:]))
            requests[n] = min(counts)
        per_shard = (requests[6] - requests[2]) / 4
        assert 1 <= per_shard <= 3  # a stats read and an input HEAD per shard (plus the listings, manifest...)
        assert requests[2] <= 2 * per_shard + 12

        data = bytearray(fs.cat("markers/out2/shard-000001.parquet"))
        data[len(data) // 2] ^= 0xFF
        fs.pipe("markers/out2/shard-000001.parquet", bytes(data))  # same size, new content: a new ETag
        same = fs.cat("markers/out2/shard-000000.parquet")
        multipart_put(boto3.client("s3", endpoint_url=s3_endpoint), "markers", "out2/shard-000000.parquet", same)
        assert fs.cat("markers/out2/shard-000000.parquet") == same and fs.info("markers/out2/shard-000000.parquet")[
            "ETag"].strip('"').endswith("-1")  # the same bytes, written again as one part
        capsys.readouterr()
        assert compress.main(argvs[2]) == 0
        err = capsys.readouterr().err
        assert "redoing shard-000001: s3://markers/out2/shard-000001.parquet was replaced (ETag changed)" in err
        assert "redoing shard-000000: s3://markers/out2/shard-000000.parquet was replaced (ETag changed)" in err
    finally:
        proxy.stop()


def multipart_put(client, bucket: str, key: str, data: bytes) -> None:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=data)
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
