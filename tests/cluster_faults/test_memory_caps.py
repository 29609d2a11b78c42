"""Memory caps: a 60 MP PNG and a 30000x30000 PNG header are refused as error rows without being
decoded (the process's peak memory barely moves); batches close on bytes held, failed items included;
a tar member over the cap is skipped unread."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

from PIL import Image
from shardkit import image_bytes, photo, write_shard

from pipeline.encode.encoding import EncodeSettings, batches
from pipeline.io.shards import ShardReader
from pipeline.io.storage import Storage

REPO = Path(__file__).resolve().parents[2]
MB = 1 << 20


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (RGB): what a bomb looks like to Image.open."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


SHARD_SCRIPT = textwrap.dedent("""
    import json, sys
    from model import load_codec
    from pipeline.encode.encoding import EncodeSettings, compress_shard
    from pipeline.io.storage import Storage

    def status(field):  # VmHWM is this process's own peak; ru_maxrss would carry over the parent's
        return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith(field))) * 1024

    codec, settings = load_codec("webp-q80"), EncodeSettings()  # the jobs' defaults
    compress_shard(codec, sys.argv[1], sys.argv[3], settings, Storage())  # warm up: imports, threads
    baseline = status("VmRSS")
    stats = compress_shard(codec, sys.argv[2], sys.argv[3], settings, Storage())
    peak = status("VmHWM")
    print(json.dumps({"baseline": baseline, "peak": peak, "errors": stats.error_rows, "rows": stats.rows}))
""")


def test_a_60mp_png_and_a_30000_square_header_are_refused_in_bounded_memory(tmp_path):
    big = image_bytes(Image.new("RGB", (10000, 6000), (30, 60, 90)), "PNG")  # 60 MP, 180 MB as pixels
    shard = write_shard(tmp_path / "big.tar", [("p60mp", {"png": big}), ("h30000", {"png": png_header_only(30000, 30000)}),
                                               ("ok", {"png": image_bytes(photo(), "PNG")})])
    small = write_shard(tmp_path / "small.tar", [("warm", {"png": image_bytes(photo(), "PNG")})])
    proc = subprocess.run([sys.executable, "-c", SHARD_SCRIPT, str(small), str(shard), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = {e["key"]: e["error"] for e in result["errors"]}
    assert result["rows"] == 3 and sorted(errors) == ["h30000", "p60mp"]
    assert "6000 = 60000000 pixels, over the cap of 50000000" in errors["p60mp"]
    assert "over the cap" in errors["h30000"] or "decompression bomb" in errors["h30000"]
    assert result["peak"] - result["baseline"] < 100 * MB  # decoding the 60 MP image alone needs 180 MB


def test_batches_close_on_bytes_held_counting_failed_items(tmp_path):
    junk = [(f"junk{i:03d}", {"jpg": bytes([i]) * MB}) for i in range(40)]  # 1 MB each, not images
    good = [(f"good{i}", {"png": image_bytes(photo(seed=i), "PNG")}) for i in range(3)]
    shard = write_shard(tmp_path / "s.tar", junk[:20] + good + junk[20:])
    settings = EncodeSettings(batch_size=16, batch_bytes=4 * MB)
    held = [sum(item.nbytes() for item in batch) for batch in batches(ShardReader(str(shard), Storage()), settings)]
    assert sum(len(b) for b in batches(ShardReader(str(shard), Storage()), settings)) == 43
    assert max(held) <= settings.batch_bytes + MB + 2048  # the budget plus the item that reached it
    assert len(held) >= 10


def test_a_member_over_the_cap_is_skipped_unread(tmp_path):
    shard = write_shard(tmp_path / "s.tar", [("a", {"png": image_bytes(photo(), "PNG")}),
                                             ("huge", {"jpg": b"\xff" * (3 * MB), "json": b"{}"}),
                                             ("b", {"png": image_bytes(photo(seed=1), "PNG")})])
    reader = ShardReader(str(shard), Storage(), max_member_bytes=MB)
    samples = {s.key: s for s in reader}
    assert sorted(samples) == ["a", "b", "huge"] and samples["a"].problem is None and samples["b"].problem is None
    assert "member 'huge.jpg' is 3145728 bytes, over the cap of 1048576" in samples["huge"].problem
    assert "jpg" not in samples["huge"].members and reader.truncated is None
