"""The on-disk records (``pipeline/records/files.py``): markers written before records were typed and
versioned still vouch for their shards, so existing archives, decodes and audits resume; a record
from a newer version, or one that is not a record, is refused with its file named."""

from __future__ import annotations

import hashlib
import json
import os
from string import Template

import pytest
from shardkit import plain_shards

from pipeline.decode.audit import Auditing, original_record
from pipeline.decode.decoding import DecodeSettings, Decoding
from pipeline.io.storage import Storage
from pipeline.records.archive import archived_shards, find_completed
from pipeline.records.files import AuditedMarker, DecodedMarker, DecompressManifest, ShardStats
from pipeline.records.markers import identity

# Captured from the code before ``records`` (16:11 on 2 Dec 2026, webp-q90 on two 48x32 photos); the
# files' own figures ($...) are filled in from the files this test makes.
OLD_STATS = Template("""{
  "batch_size": 16, "bitstream_bytes": 1640, "bytes_in": 20480, "codec_id": "webp-q90", "encode_seconds": 0.0218,
  "error_rows": [], "errors": 0, "finished": "2026-12-02T16:11:40Z", "image_bytes": 7255, "images_per_s": 7.46,
  "input": {"mtime": $input_mtime, "size": $input_size},
  "mean_bpp": 4.270833333333333, "name": "shard-000000", "ok": 2,
  "output": {"bytes": $parquet_bytes, "sha256": "$parquet_sha256", "url": "$parquet_url"},
  "parquet_bytes": $parquet_bytes, "rows": 2, "seconds": 0.2681, "shard": "$input_url",
  "started": "2026-12-02T16:11:40Z", "truncated": null, "worker": {"host": "vm", "pid": 5278}
}""")
OLD_SETTINGS = """{"batch_size": 16, "format": "webdataset", "keys_sha256": null, "max_pixels": 50000000,
  "max_row_group_bytes": 67108864, "options": {}}"""
OLD_DECODED = Template("""{
  "bytes_out": $out_bytes, "decoded": 2, "decoder": {"deaths": null, "peak_rss_bytes": null}, "errors": 0,
  "failed_rows": [], "finished": "2026-12-02T16:11:41Z",
  "input": {"bytes": $parquet_bytes, "sha256": "$parquet_sha256", "url": "$parquet_url"},
  "name": "shard-000000",
  "output": {"bytes": $out_bytes, "sha256": "$out_sha256", "url": "$out_url"},
  "reader": {"bytes_read": 14967, "peak_rss_bytes": 122408960}, "renamed": {}, "rows": 2, "seconds": 0.4876,
  "settings": """ + OLD_SETTINGS + """,
  "shard": "$parquet_url", "started": "2026-12-02T16:11:40Z", "worker": {"host": "vm", "pid": 5278}
}""")
OLD_AUDITED = Template("""{
  "decoder": {"deaths": null, "peak_rss_bytes": null}, "errors": 0, "finished": "2026-12-02T16:11:41Z",
  "input": {"bytes": $parquet_bytes, "sha256": "$parquet_sha256", "url": "$parquet_url"},
  "name": "shard-000000",
  "original": {"mtime": $input_mtime, "size": $input_size, "url": "$input_url"},
  "output": {"bytes": $out_bytes, "sha256": "$out_sha256", "url": "$out_url"},
  "reader": {"bytes_read": 14967, "peak_rss_bytes": 122281984}, "rows": 2, "seconds": 0.3925,
  "settings": """ + OLD_SETTINGS + """,
  "shard": "$parquet_url", "started": "2026-12-02T16:11:41Z", "worker": {"host": "vm", "pid": 5278}
}""")


def file_figures(prefix: str, path) -> dict:
    data = path.read_bytes()
    return {f"{prefix}_url": str(path), f"{prefix}_bytes": len(data), f"{prefix}_sha256": hashlib.sha256(data).hexdigest()}


def old_archive(tmp_path) -> tuple[dict, dict]:
    """An input shard and an archive shard whose stats file has the old layout; (figures, input by name)."""
    plain_shards(tmp_path / "in", n_shards=1, per_shard=2)
    shard = tmp_path / "in" / "shard-000000.tar"
    (tmp_path / "archive").mkdir()
    parquet = tmp_path / "archive" / "shard-000000.parquet"
    parquet.write_bytes(b"PAR1 the marker vouches for these bytes, whatever they hold PAR1")
    ident = identity(Storage().info(str(shard)))
    figures = {**file_figures("parquet", parquet), "input_url": str(shard), "input_size": ident["size"],
               "input_mtime": json.dumps(ident["mtime"])}
    (tmp_path / "archive" / "shard-000000.stats.json").write_text(OLD_STATS.substitute(figures))
    return figures, {"shard-000000": str(shard)}


def test_a_stats_file_of_the_old_layout_still_marks_its_shard_complete(tmp_path):
    figures, inputs = old_archive(tmp_path)
    done, redo = find_completed(str(tmp_path / "archive"), inputs, Storage(), "webp-q90")
    assert redo == {} and list(done) == ["shard-000000"]
    stats = done["shard-000000"]
    assert (stats.rows, stats.codec_id, stats.record_version) == (2, "webp-q90", 1)
    assert stats.output == {"bytes": figures["parquet_bytes"], "sha256": figures["parquet_sha256"],
                            "url": figures["parquet_url"]}


def test_decode_and_audit_markers_of_the_old_layout_still_mark_their_shards_done(tmp_path):
    figures, inputs = old_archive(tmp_path)
    shards = archived_shards(str(tmp_path / "archive"), Storage()).found
    for kind, template, suffix, work in [("decoded", OLD_DECODED, "tar", Decoding()),
                                         ("audited", OLD_AUDITED, "audit.parquet", Auditing(inputs))]:
        out = tmp_path / kind
        out.mkdir()
        (out / f"shard-000000.{suffix}").write_bytes(f"what the {kind} marker vouches for".encode())
        marker = template.substitute({**figures, **file_figures("out", out / f"shard-000000.{suffix}")})
        (out / f"shard-000000.{kind}.json").write_text(marker)
        settings = DecodeSettings()
        done, redo = work.finished(str(out), shards, settings, Storage())
        # written before the settings held the options each codec ran with: redone once, saying why
        assert list(done) == [] and redo["shard-000000"].startswith(f"{kind} with other settings"), kind
        current = {**json.loads(marker), "settings": settings.fingerprint()}  # the rest of the old layout
        (out / f"shard-000000.{kind}.json").write_text(json.dumps(current))
        done, redo = work.finished(str(out), shards, settings, Storage())
        assert (list(done), redo) == (["shard-000000"], {}), kind
        assert done["shard-000000"].rows == 2
    assert original_record(inputs["shard-000000"], Storage()) == done["shard-000000"].original


def test_records_keep_the_old_keys_and_add_only_their_version(tmp_path):
    """What is written now is what was written before, plus ``record_version``: an older diffarc
    reading a new archive finds every key it knows."""
    figures, _ = old_archive(tmp_path)
    old = json.loads(OLD_STATS.substitute(figures))
    new = ShardStats.from_dict(old).to_dict()
    assert new == {**old, "record_version": 1}
    settings = json.loads(OLD_SETTINGS)
    for cls, template in [(DecodedMarker, OLD_DECODED), (AuditedMarker, OLD_AUDITED)]:
        old = json.loads(template.substitute({**figures, "out_url": "x", "out_bytes": 1, "out_sha256": "y"}))
        assert cls.from_dict(old).to_dict() == {**old, "record_version": 1}
        assert cls.from_dict(old).settings == settings
    assert "audit" not in DecompressManifest().to_dict()  # only an audit's manifest has one
    assert DecompressManifest(audit={"images": 2}).to_dict()["audit"] == {"images": 2}


def test_a_record_from_a_newer_version_or_not_a_record_is_named_and_its_shard_redone(tmp_path):
    _, inputs = old_archive(tmp_path)
    stats_file = tmp_path / "archive" / "shard-000000.stats.json"
    record = json.loads(stats_file.read_text())
    for text, why in [(json.dumps({**record, "record_version": 2}), "has record_version 2; this diffarc reads up to 1"),
                      ("[1, 2]", "holds a JSON list, not a ShardStats object")]:
        stats_file.write_text(text)
        done, redo = find_completed(str(tmp_path / "archive"), inputs, Storage(), "webp-q90")
        assert done == {}
        assert redo["shard-000000"].startswith(f"{stats_file} {why}"), redo
    os.remove(stats_file)


def test_workers_load_the_codec_the_driver_resolved_and_refuse_another():
    from model import load_codec
    from pipeline.run.actors import ResolvedCodec

    driver = load_codec("webp-q75").with_presets(quality=90)
    resolved = ResolvedCodec.of("webp-q75", driver, {"quality": 90})
    assert (resolved.codec_id, resolved.path) == ("webp-q90", None)
    assert resolved.load("cpu").codec_id == "webp-q90"  # by its id, with the options given
    with pytest.raises(ValueError, match="the worker loaded codec 'webp-q50', the job resolved 'webp-q90'"):
        ResolvedCodec("webp-q90", {"quality": 50}).load("cpu")
