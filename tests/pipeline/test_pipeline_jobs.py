"""The compress and decompress jobs end to end on local files and a real local Ray."""

from __future__ import annotations

import io
import json
import secrets
import tarfile

import pyarrow.parquet as pq
import pytest
from PIL import Image
from shardkit import archive_rows, plain_shards, stats

from jobs import audit as audit_job
from jobs import compress, decompress
from pipeline.records.row import ROW_SCHEMA


SECRET = f"s3cr3t-{secrets.token_hex(8)}"


@pytest.fixture(scope="module")
def example_archive(ray_local, tmp_path_factory):
    """The example corpus archived with the job's defaults (but the output folder, and an endpoint
    URL with a password in it, which local paths never use and the manifest must not keep)."""
    out = tmp_path_factory.mktemp("example") / "archive"
    assert compress.main(["--output", str(out), "--endpoint-url", f"http://diffarc:{SECRET}@127.0.0.1:9",
                          "--no-progress"]) == 0
    return out


def test_compress_defaults_archive_the_example_corpus(example_archive, capsys):
    files = sorted(p.name for p in example_archive.iterdir())
    assert files == ["_manifest.json", "shard-000000.index.arrow", "shard-000000.parquet", "shard-000000.stats.json",
                     "shard-000001.index.arrow", "shard-000001.parquet", "shard-000001.stats.json"]
    table = pq.read_table(example_archive / "shard-000000.parquet")
    assert table.schema.equals(ROW_SCHEMA, check_metadata=False)
    rows = archive_rows(example_archive)
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12
    for r in rows:
        assert r["error"] is None and r["bitstream"] and r["codec_id"].startswith("cdc-avif-mse@")
        assert r["bpp"] == pytest.approx(len(r["bitstream"]) * 8 / (r["width"] * r["height"]))
        assert set(dict(r["metadata"])) == {"txt", "json"} and r["orig_sha256"] and r["encode_ms"] > 0
        assert dict(r["encode_settings"]) == {"quality": "30", "effort": "fast", "speed": "6",
                                              "subsampling": "4:2:0", "tune": "default"}  # as its bitstream says
    manifest = json.loads((example_archive / "_manifest.json").read_text())
    assert manifest["counts"] == {"shards": 2, "done": 2, "skipped": 0, "failed": 0, "rows": 12, "ok": 12, "errors": 0}
    assert manifest["versions"]["pyarrow"] and manifest["codec_id"].startswith("cdc-avif-mse@")
    # the encode options used, every one the codec declares: the codec's own defaults here
    assert manifest["options"] == {"quality": 30, "effort": "fast", "speed": None, "subsampling": None, "tune": None,
                                   "target_psnr": None, "max_bpp": None, "max_bytes": None, "gate": False}
    args = compress.build_parser().parse_args(manifest["argv"])  # the manifest's arguments parse again
    assert args.output == str(example_archive)
    assert SECRET not in json.dumps(manifest) and "http://127.0.0.1:9" in manifest["argv"]  # redacted, kept


def test_rerun_skips_complete_shards_and_refuses_another_codec(example_archive, capsys):
    before = stats(example_archive)
    assert compress.main(["--output", str(example_archive), "--no-progress"]) == 0
    assert stats(example_archive) == before  # nothing redone
    assert "0 shards done, 2 skipped" in capsys.readouterr().out
    assert compress.main(["--output", str(example_archive), "--codec", "jpeg-q50", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already holds shards archived with codec cdc-avif-mse@" in err and "--overwrite" in err


def test_decompress_to_webdataset_png_and_audit(example_archive, tmp_path, capsys):
    out = tmp_path / "decoded"
    assert decompress.main(["--input", str(example_archive), "--output", str(out), "--no-progress"]) == 0
    with tarfile.open(out / "shard-000001.tar") as tar:
        names = tar.getnames()
        img = Image.open(io.BytesIO(tar.extractfile("img0006.jpg").read()))
    assert sorted(names)[:3] == ["img0006.jpg", "img0006.json", "img0006.txt"] and len(names) == 18  # as it came
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (176, 224)
    manifest = json.loads((out / "_manifest.json").read_text())
    # every family's decode option is recorded (DiffC's denoiser, ...), as the archive's codec ran it: its
    # own steps (the card's default_steps), not "the codec's default"
    [(codec_id, used)] = manifest["codec_options"].items()
    assert codec_id.startswith("cdc-avif-mse@") and isinstance(used["steps"], int) and used["steps"] >= 1
    assert {k: manifest["decode"][k] for k in ("steps", "gamma", "seed", "batch_size")} == \
        {"steps": used["steps"], "gamma": 0.0, "seed": 0, "batch_size": 8}
    args = decompress.build_parser().parse_args(manifest["argv"])  # the recorded arguments redo this run
    assert (args.input, args.output) == (str(example_archive), str(out))

    keys = tmp_path / "keys.txt"
    keys.write_text("img0001\nimg0007\nnot-there\n")
    png_out = tmp_path / "png"
    assert decompress.main(["--input", str(example_archive), "--output", str(png_out), "--format", "png",
                            "--keys", str(keys), "--shards", "shard-00000[01]", "--no-progress"]) == 0
    assert sorted(p.relative_to(png_out).as_posix() for p in png_out.rglob("*.png")) == [
        "shard-000000/img0001.png", "shard-000001/img0007.png"]

    audit_out = tmp_path / "audit"
    capsys.readouterr()
    # jobs/audit.py: decompress.py --audit with the originals as its argument (test_decompress_resume runs the flag)
    assert audit_job.main([str(compress.DEFAULT_INPUT), "--input", str(example_archive), "--output", str(audit_out),
                           "--no-progress"]) == 0
    recorded = decompress.build_parser().parse_args(json.loads((audit_out / "_manifest.json").read_text())["argv"])
    assert (recorded.audit, recorded.output) == (str(compress.DEFAULT_INPUT), str(audit_out))
    printed = capsys.readouterr().out
    assert "PSNR mean" in printed and "worst 1%" in printed and "MS-SSIM mean" in printed
    audit = pq.read_table(audit_out / "audit.parquet").to_pylist()
    assert len(audit) == 12 and all(r["error"] is None for r in audit)
    assert all(25 < r["psnr"] < 60 and 0.8 < r["ms_ssim"] <= 1 for r in audit)
    archived_bpp = {r["key"]: r["bpp"] for r in archive_rows(example_archive, columns=["key", "bpp"])}
    assert {r["key"]: r["bpp"] for r in audit} == pytest.approx(archived_bpp)  # each row audited its own bitstream
    shards = sorted(p.name[: -len(".parquet")] for p in example_archive.glob("*.parquet"))
    per_shard = [f"{s}{suffix}" for s in shards for suffix in (".audit.parquet", ".audited.json")]
    assert shards  # images not kept: only the tables, their markers (resume) and the manifest
    assert sorted(p.name for p in audit_out.rglob("*")) == sorted(["_manifest.json", "audit.parquet", *per_shard])


def test_failing_shards_are_reported_after_the_rest_finish(ray_local, tmp_path, capsys):
    plain_shards(tmp_path / "in", n_shards=2, per_shard=3)
    (tmp_path / "in" / "shard-000002.tar").write_bytes(b"not a tar archive at all" * 100)
    out = tmp_path / "archive"
    rc = compress.main(["--input", str(tmp_path / "in" / "shard-{000000..000003}.tar"), "--output", str(out),
                        "--codec", "jpeg-q80", "--no-progress", "--retries", "1"])
    assert rc == 1
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["done"] == 2 and manifest["counts"]["failed"] == 2
    reasons = {f["shard"].rsplit("/", 1)[-1]: f["error"] for f in manifest["failures"]}
    assert "not a tar archive" in reasons["shard-000002.tar"]
    assert "FileNotFoundError" in reasons["shard-000003.tar"]
    assert sorted(stats(out)) == ["shard-000000", "shard-000001"]
    assert "FAILED" in capsys.readouterr().err
