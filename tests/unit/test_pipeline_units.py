"""Pipeline pieces without Ray: shard streaming, inputs, storage, Parquet writer, batching."""

from __future__ import annotations

import io
import tarfile

import pyarrow.parquet as pq
import pytest
from shardkit import image_bytes, photo, write_shard

from pipeline.decode.summaries import summarize
from pipeline.io.batches import call_batched
from pipeline.io.faults import PermanentError
from pipeline.io.shards import ShardReader, expand_inputs, shard_name
from pipeline.io.storage import Storage, redact
from pipeline.records.archive import ArchiveWriter, RowGroups
from pipeline.records.row import Row


def read_all(path) -> tuple[list, ShardReader]:
    reader = ShardReader(str(path), Storage())
    return list(reader), reader


def test_samples_group_consecutive_members_by_key(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [("x/0001", {"jpg": b"1", "json": b"{}"}), ("x/0002", {"png": b"2"})])
    samples, reader = read_all(shard)
    assert [(s.key, sorted(s.members)) for s in samples] == [("x/0001", ["jpg", "json"]), ("x/0002", ["png"])]
    assert reader.truncated is None and reader.bytes_read == shard.stat().st_size


@pytest.mark.parametrize("cut", ["mid_member", "mid_header", "no_end_block"])
def test_truncated_tar_keeps_what_came_before(tmp_path, cut):
    data = image_bytes(photo(), "PNG")
    shard = write_shard(tmp_path / "t.tar", [(f"k{i}", {"png": data, "txt": b"t"}) for i in range(3)])
    raw = shard.read_bytes()
    member = 512 + -(-len(data) // 512) * 512 + 1024  # one sample: png header+data, txt header+data
    end = {"mid_member": 2 * member + 700, "mid_header": 2 * member + 100, "no_end_block": 3 * member}[cut]
    shard.write_bytes(raw[:end])
    samples, reader = read_all(shard)
    # whole samples are kept intact; a sample cut inside its data is kept as a problem; a cut header is nothing
    whole = {"mid_member": 2, "mid_header": 2, "no_end_block": 3}[cut]
    assert [s.key for s in samples] == [f"k{i}" for i in range(whole)] + (["k2"] if cut == "mid_member" else [])
    assert all(s.problem is None and s.members == {"png": data, "txt": b"t"} for s in samples[:whole])
    assert reader.truncated and "truncated" in reader.truncated
    if cut == "mid_member":
        assert "truncated inside member 'k2.png'" in samples[2].problem


def test_not_a_tar_is_a_permanent_error_and_empty_shard_is_truncated(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"x" * 2000)
    with pytest.raises(PermanentError, match="not a tar"):
        read_all(tmp_path / "junk.tar")
    (tmp_path / "empty.tar").write_bytes(b"")
    samples, reader = read_all(tmp_path / "empty.tar")
    assert samples == [] and "no complete tar header" in reader.truncated


def test_expand_inputs_forms(tmp_path):
    for i in range(3):
        write_shard(tmp_path / f"shard-{i:06d}.tar", [("k", {"txt": b"x"})])
    s = Storage()
    assert len(expand_inputs(str(tmp_path), s)) == 3
    assert len(expand_inputs(str(tmp_path / "shard-00000[01].tar"), s)) == 2
    braced = expand_inputs(str(tmp_path / "shard-{000000..000004}.tar"), s)
    assert [shard_name(u) for u in braced] == [f"shard-{i:06d}" for i in range(5)]  # missing ones fail later
    with pytest.raises(FileNotFoundError, match="no input shards"):
        expand_inputs(str(tmp_path / "nothing-*.tar"), s)
    (tmp_path / "sub").mkdir()
    write_shard(tmp_path / "sub" / "shard-000000.tar", [("k", {"txt": b"x"})])
    with pytest.raises(ValueError, match="both be archived as 'shard-000000'"):
        expand_inputs(f"{{{tmp_path}/shard-000000.tar,{tmp_path}/sub/shard-000000.tar}}", s)


def test_retrying_retries_transient_errors_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("connection reset by peer")
        return "ok"

    storage = Storage(retries=4, backoff_s=0.001)
    assert storage.retrying(flaky, "flaky") == "ok" and len(calls) == 3
    calls.clear()

    def missing():
        calls.append(1)
        raise FileNotFoundError("gone")

    with pytest.raises(FileNotFoundError, match="gone"):
        storage.retrying(missing, "missing")
    assert len(calls) == 1


def test_retry_backoff_is_half_a_second_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv("DIFFARC_RETRY_BACKOFF_S", raising=False)
    assert Storage().backoff_s == Storage.from_env().backoff_s == 0.5
    monkeypatch.setenv("DIFFARC_RETRY_BACKOFF_S", "0.02")
    assert Storage().backoff_s == Storage.from_env(retries=6).backoff_s == 0.02
    assert Storage(backoff_s=1.0).backoff_s == 1.0  # given: as given
    for bad in ("-1", "nan", "soon"):
        monkeypatch.setenv("DIFFARC_RETRY_BACKOFF_S", bad)
        with pytest.raises(ValueError):
            Storage()


def test_atomic_output_leaves_nothing_behind_on_error(tmp_path):
    target = tmp_path / "out" / "f.bin"
    with pytest.raises(RuntimeError):
        with Storage().atomic_output(str(target)) as f:
            f.write(b"half")
            raise RuntimeError("crash")
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []
    Storage().write_bytes(str(target), b"whole")
    assert target.read_bytes() == b"whole" and len(list((tmp_path / "out").iterdir())) == 1


def test_archive_writer_row_groups_by_rows_and_bytes():
    def row(i, size):
        return Row(key=str(i), shard="s", codec_id="c", bitstream=b"x" * size, metadata=[("txt", b"t")])

    for limits, n, size, groups in [(RowGroups(rows=10), 25, 10, 3), (RowGroups(rows=100, bytes=1000), 10, 400, 4)]:
        buf = io.BytesIO()
        w = ArchiveWriter(buf, limits)
        for i in range(n):
            w.add(row(i, size))
        w.close()
        f = pq.ParquetFile(io.BytesIO(buf.getvalue()))
        assert f.metadata.num_rows == n and f.metadata.num_row_groups == groups


def test_call_batched_isolates_the_bad_input():
    def fn(xs):
        if "bad" in xs:
            raise ValueError("bad input")
        return [x.upper() for x in xs]

    out = call_batched(fn, ["a", "bad", "c"])
    assert [o for o, _, _ in out] == ["A", None, "C"]
    assert out[1][1] == "ValueError: bad input"


def test_summarize_and_redact():
    s = summarize([float(i) for i in range(1, 201)] + [None])
    assert s["n"] == 200 and s["mean"] == 100.5 and s["worst_1pct"] == 1.5
    assert summarize([1.0, 3.0], higher_is_better=False)["worst_1pct"] == 3.0
    assert redact("http://user:secret@minio:9000/x") == "http://minio:9000/x"


def test_tar_stream_mode_matches_tarfile(tmp_path):
    """Our writer's tars read back with plain tarfile (other WebDataset tools)."""
    from pipeline.io.shards import Sample, write_tar

    buf = io.BytesIO()
    write_tar(buf, [Sample("a", {"png": b"1", "txt": b"2"})])
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as t:
        assert t.getnames() == ["a.png", "a.txt"]
        assert [t.extractfile(n).read() for n in t.getnames()] == [b"1", b"2"]


def test_split_key_is_webdatasets_rule():
    from webdataset.tariterators import base_plus_ext

    from pipeline.io.shards import split_key

    for name in ["a/b/0001.jpg", "0001.seg.png", "x.y/z.tar.gz", "k.", "dir.v2/img.json"]:
        assert split_key(name) == base_plus_ext(name), name
    assert split_key("README") == ("README", "")


def test_make_shards_packs_a_folder_by_key(tmp_path):
    from jobs import make_shards

    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    for key in ["a", "b", "sub/c"]:
        (src / f"{key}.png").write_bytes(image_bytes(photo(), "PNG"))
        (src / f"{key}.txt").write_text(key)
    assert make_shards.main([str(src), "--output", str(tmp_path / "out"), "--shards", "2"]) == 0
    shards = sorted((tmp_path / "out").glob("shard-*.tar"))
    samples = [s for p in shards for s in ShardReader(str(p), Storage())]
    assert len(shards) == 2 and [s.key for s in samples] == ["a", "b", "sub/c"]
    assert all(sorted(s.members) == ["png", "txt"] for s in samples)
