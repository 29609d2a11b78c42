"""The jobs against a real S3 API (moto's server on loopback): shards are streamed from S3,
Parquet is committed to S3, resume lists S3, decode and audit read it back."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow.parquet as pq
import s3fs

from jobs import compress, decompress


def test_s3_round_trip(s3_endpoint, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # the standard variable; the driver resolves it
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, use_listings_cache=False)
    fs.mkdir("corpus")
    fs.mkdir("archive")
    fs.put(f"{compress.DEFAULT_INPUT}/shard-000000.tar", "corpus/shards/shard-000000.tar")
    fs.put(f"{compress.DEFAULT_INPUT}/shard-000001.tar", "corpus/shards/shard-000001.tar")

    # --weights-url: the workers then get the endpoint from the environment too (jpeg needs no weights)
    argv = ["--input", "s3://corpus/shards/shard-{000000..000001}.tar", "--output", "s3://archive/run/",
            "--codec", "jpeg-q70", "--weights-url", "s3://archive/weights/", "--no-progress"]
    assert compress.main(argv) == 0
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("archive/run")) == [
        "_manifest.json", "shard-000000.index.arrow", "shard-000000.parquet", "shard-000000.stats.json",
        "shard-000001.index.arrow", "shard-000001.parquet", "shard-000001.stats.json"]
    with fs.open("archive/run/shard-000001.parquet", "rb") as f:
        rows = pq.read_table(f).to_pylist()
    assert len(rows) == 6 and all(r["error"] is None and r["shard"].startswith("s3://corpus/") for r in rows)
    manifest = json.loads(fs.cat("archive/run/_manifest.json"))
    assert manifest["counts"]["rows"] == 12 and manifest["input"] == argv[1]
    assert s3_endpoint not in json.dumps(manifest) and "s3://archive/weights/" in manifest["argv"]  # nothing from the env

    assert compress.main(argv) == 0  # resume: S3 listing finds both complete
    assert "0 shards done, 2 skipped" in capsys.readouterr().out

    assert decompress.main(["--input", "s3://archive/run", "--output", "s3://archive/decoded",
                            "--shards", "shard-000000", "--no-progress"]) == 0
    with tarfile.open(fileobj=io.BytesIO(fs.cat("archive/decoded/shard-000000.tar"))) as tar:
        assert len([n for n in tar.getnames() if n.endswith((".jpg", ".png"))]) == 6  # each image as it came

    assert decompress.main(["--input", "s3://archive/run", "--output", str(tmp_path / "audit"),
                            "--audit", "s3://corpus/shards/", "--no-progress"]) == 0
    audit = pq.read_table(tmp_path / "audit" / "audit.parquet").to_pylist()
    assert len(audit) == 12 and all(r["error"] is None and r["psnr"] > 25 for r in audit)
