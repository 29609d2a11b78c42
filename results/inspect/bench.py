"""diffarc-info and diffarc-verify on a Kodak archive: CPU seconds (this process and its children) and
bytes read. Prints the figures (results/inspect/README.md holds one run).

    OMP_NUM_THREADS=1 python results/inspect/bench.py ../shared/data/kodak /tmp/inspect-bench

Builds, once, WORK/arc: the 24 Kodak PNGs in 4 shards of 6 with the default codec (cdc-avif-mse), and
the same photos as JPEG (quality 90) in 2 shards of 12 with --lossless (jpeg-xl rows), plus the manifest.
"""

from __future__ import annotations

import io
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from PIL import Image  # noqa: E402
from shardkit import write_shard  # noqa: E402

from jobs import compress  # noqa: E402
from model import load_codec  # noqa: E402
from pipeline.encode.encoding import EncodeSettings, compress_shard  # noqa: E402
from pipeline.encode.keeping import Policy  # noqa: E402
from pipeline.inspection.info import archive_info  # noqa: E402
from pipeline.inspection.listing import archive_files  # noqa: E402
from pipeline.inspection.verify import verify_archive  # noqa: E402
from pipeline.decode.decoding import DecodeSettings  # noqa: E402
from pipeline.io.storage import Storage  # noqa: E402
from pipeline.records.archive import tally  # noqa: E402
from pipeline.records.files import MANIFEST, CompressManifest  # noqa: E402


def build(kodak: Path, work: Path) -> None:
    pngs = sorted(kodak.glob("*.png"))
    codec, results = load_codec(compress.DEFAULT_CODEC), {}
    jpgs = []
    for p in pngs:
        buf = io.BytesIO()
        Image.open(p).convert("RGB").save(buf, "JPEG", quality=90)
        jpgs.append((p.stem, {"jpg": buf.getvalue()}))
    plan = [(f"png-{i}", [(p.stem, {"png": p.read_bytes()}) for p in pngs[i * 6:(i + 1) * 6]], False) for i in range(4)]
    plan += [(f"jpg-{i}", jpgs[i * 12:(i + 1) * 12], True) for i in range(2)]
    for name, samples, lossless in plan:
        tar = write_shard(work / "in" / f"{name}.tar", samples)
        results[name] = compress_shard(codec, str(tar), str(work / "arc"), EncodeSettings(policy=Policy(lossless=lossless)),
                                       Storage())
        print(f"built {name}: {results[name].rows} rows in {results[name].seconds:.0f} s", flush=True)
    CompressManifest(job="compress", codec=compress.DEFAULT_CODEC, codec_id=codec.codec_id,
                     **tally(list(results), results, {}, {})).write(str(work / "arc" / MANIFEST), Storage())


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measured(what: str, fn):
    c, t = cpu(), time.perf_counter()
    out = fn()
    print(f"{what}: {cpu() - c:.2f} CPU s, {time.perf_counter() - t:.2f} wall s", flush=True)
    return out


def main() -> None:
    kodak, work = Path(sys.argv[1]), Path(sys.argv[2])
    if not (work / "arc" / MANIFEST).exists():
        build(kodak, work)
    arc, storage = str(work / "arc"), Storage()
    info = measured("info", lambda: archive_info(arc, storage))
    s = info.summary()
    print(f"  {s['rows']} rows, {s['read']['bytes_read']} of {s['read']['file_bytes']} bytes read "
          f"({s['read']['bytes_read'] / s['read']['file_bytes']:.2%})")
    for p in s["paths"]:
        print(f"  {p['stored_as']}: {p['rows']} rows, {p['kept_bytes']} of {p['orig_bytes']} bytes, "
              f"bpp mean {p['bpp']['mean']:.3f}")
    files = archive_files(arc, storage)
    v = measured("verify (threads 1)", lambda: verify_archive(files, storage, threads=1))
    print(f"  {v.summary()['passed']}, {len(v.failures())} failed")
    v = measured("verify --decode --steps 1 (threads 1)",
                 lambda: verify_archive(files, storage, threads=1, decode_settings=DecodeSettings(options={"steps": 1})))
    print(f"  {v.summary()['passed']}, {len(v.failures())} failed")


if __name__ == "__main__":
    main()
