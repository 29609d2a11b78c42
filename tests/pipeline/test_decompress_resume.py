"""The decode job resumes per shard (markers with the archive's identity and the settings), commits
each shard's output in one piece, reports every row it could not decode and exits 1 for them unless
--allow-errors. An audit resumes per shard too (markers also with the original shard's identity)."""

from __future__ import annotations

import json
import tarfile
from collections import Counter

import pyarrow.parquet as pq
import pytest
from shardkit import image_bytes, photo, plain_shards, rewrite_archive_shard, write_shard

from jobs import compress, decompress


@pytest.fixture
def archive(ray_local, tmp_path):
    expected = plain_shards(tmp_path / "in", n_shards=3, per_shard=4)
    out = tmp_path / "archive"
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "webp-q80",
                          "--no-progress"]) == 0
    return out, expected


def markers(folder, suffix: str = ".decoded.json") -> dict[str, dict]:
    return {p.name[: -len(suffix)]: json.loads(p.read_text()) for p in folder.glob("*" + suffix)}


def tar_keys(folder) -> Counter:
    keys: Counter = Counter()
    for p in folder.glob("*.tar"):
        with tarfile.open(p) as tar:
            keys.update(n[: -len(".png")] for n in tar.getnames() if n.endswith(".png"))
    return keys


class Interrupt(Exception):
    pass


def test_interrupted_decode_resumes_per_shard_and_redoes_what_changed(archive, tmp_path, capsys):
    src, expected = archive
    out = tmp_path / "decoded"
    argv = ["--input", str(src), "--output", str(out), "--actors", "1", "--batch-size", "2", "--no-progress"]

    def interrupt_after_first_shard(event: dict) -> None:
        if markers(out):
            raise Interrupt  # the driver dies mid-job

    with pytest.raises(Interrupt):
        decompress.main(argv, on_event=interrupt_after_first_shard)
    first = markers(out)
    assert 1 <= len(first) < 3 and not (out / "_manifest.json").exists()

    assert decompress.main(argv) == 0
    assert tar_keys(out) == Counter(k for ks in expected.values() for k in ks)
    after = markers(out)
    assert all(after[n] == m for n, m in first.items())  # finished shards were not decoded again
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == len(first)

    whole = (out / "shard-000000.tar").stat().st_size
    (out / "shard-000000.tar").write_bytes((out / "shard-000000.tar").read_bytes()[:-1024])  # damaged
    keys = tmp_path / "keys.txt"
    keys.write_text("s1-0001\n")
    capsys.readouterr()
    assert decompress.main(argv) == 0
    assert (f"decoding shard-000000 again: {out / 'shard-000000.tar'} is {whole - 1024} bytes, the marker says "
            f"{whole}") in capsys.readouterr().err
    assert decompress.main([*argv, "--keys", str(keys)]) == 0  # other settings: every shard again
    err = capsys.readouterr().err
    assert err.count("again: decoded with other settings") == 3
    assert tar_keys(out) == Counter(["s1-0001"])

    png_out = tmp_path / "png"
    png_argv = ["--input", str(src), "--output", str(png_out), "--format", "png", "--no-progress"]
    assert decompress.main(png_argv) == 0
    (png_out / "shard-000002" / "s2-0003.png").unlink()
    capsys.readouterr()
    assert decompress.main(png_argv) == 0
    assert "decoding shard-000002 again: " in (err := capsys.readouterr().err) and "(1 files missing" in err
    assert len(list(png_out.rglob("*.png"))) == 12 and not list(png_out.glob("*.tmp-*"))


def test_rows_that_fail_are_reported_and_fail_the_job_unless_allowed(archive, tmp_path, capsys):
    src, _ = archive

    def break_one(rows):
        rows[1]["bitstream"] = rows[1]["bitstream"][:-3] + b"\x00\x00\x00"  # a bad checksum
        return rows

    bad_key = rewrite_archive_shard(src, "shard-000001", break_one)[1]["key"]
    out = tmp_path / "decoded"
    argv = ["--input", str(src), "--output", str(out), "--no-progress"]
    assert decompress.main(argv) == 1
    err = capsys.readouterr().err
    assert "1 rows were not decoded" in err and f"shard-000001 '{bad_key}': decode failed" in err
    assert "--allow-errors" in err
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [(r["shard"], r["key"]) for r in manifest["failed_rows"]] == [("shard-000001", bad_key)]
    assert markers(out)["shard-000001"]["failed_rows"][0]["key"] == bad_key
    assert sum(tar_keys(out).values()) == 11  # every other row decoded

    assert decompress.main([*argv, "--allow-errors"]) == 0  # resumed: nothing to redo, rows accepted
    assert "1 rows were not decoded" in capsys.readouterr().err


def test_an_interrupted_audit_resumes_per_shard_and_its_table_holds_each_row_once(archive, tmp_path, capsys):
    src, expected = archive
    argv = ["--input", str(src), "--audit", str(tmp_path / "in"), "--actors", "1", "--batch-size", "2",
            "--no-progress"]
    assert decompress.main([*argv, "--output", str(tmp_path / "clean")]) == 0  # uninterrupted, for comparison
    clean = sorted(pq.read_table(tmp_path / "clean" / "audit.parquet").to_pylist(), key=lambda r: r["key"])
    assert len(clean) == 12 and all(r["error"] is None and r["psnr"] > 20 for r in clean)
    out = tmp_path / "audit"
    argv += ["--output", str(out)]

    def interrupt_after_first_shard(event: dict) -> None:
        if markers(out, ".audited.json"):
            raise Interrupt  # the driver dies mid-job

    with pytest.raises(Interrupt):
        decompress.main(argv, on_event=interrupt_after_first_shard)
    first = markers(out, ".audited.json")
    assert 1 <= len(first) < 3 and not (out / "audit.parquet").exists()

    assert decompress.main(argv) == 0
    after = markers(out, ".audited.json")
    assert sorted(after) == sorted(expected) and all(after[n] == m for n, m in first.items())  # not audited again
    manifest = json.loads((out / "_manifest.json").read_text())["counts"]
    assert (manifest["skipped"], manifest["done"]) == (len(first), 3 - len(first))
    table = sorted(pq.read_table(out / "audit.parquet").to_pylist(), key=lambda r: r["key"])
    assert table == clean  # each key once, the same metrics as the uninterrupted audit

    changed = [(k, {"png": image_bytes(photo(seed=99), "PNG")}) for k in expected["shard-000002"]]
    write_shard(tmp_path / "in" / "shard-000002.tar", changed)  # same keys, other pixels
    cut = (out / "shard-000000.audit.parquet").read_bytes()
    (out / "shard-000000.audit.parquet").write_bytes(cut[: len(cut) // 2])
    capsys.readouterr()
    assert decompress.main(argv) == 0
    err = capsys.readouterr().err
    assert "auditing shard-000002 again: the original shard changed since it was audited" in err
    assert "auditing shard-000000 again: " in err and "bytes, the marker says" in err
    assert "auditing shard-000001 again" not in err and markers(out, ".audited.json")["shard-000001"] == after["shard-000001"]
    table = pq.read_table(out / "audit.parquet").to_pylist()
    assert Counter(r["key"] for r in table) == Counter(r["key"] for r in clean)
    errors = {r["key"]: r["error"] for r in table if r["error"] is not None}
    assert errors == {k: "original image differs from the archived one (sha256 mismatch)" for k in expected["shard-000002"]}
