"""Decode a Parquet archive on Ray actors into WebDataset shards or PNG files, or audit it.

    python jobs/decompress.py                                  # out/archive -> out/decoded/*.tar
    python jobs/decompress.py --input s3://bucket/archive/ --output s3://bucket/decoded/ \\
        --steps 8 --gamma 0.8 --seed 0 [--shards 'shard-00001*'] [--keys keys.txt] [--format png]
    python jobs/decompress.py --audit 's3://bucket/corpus/shard-{000000..000999}.tar' --output out/audit

Decoding writes NAME.tar per archive file (same keys: the decoded image as .png plus the carried
metadata members) or NAME/KEY.png. --audit decodes against the original shards and writes
audit.parquet (per image PSNR, MS-SSIM, bpp) without keeping decoded images, then prints mean and
worst 1 %. The decode options (the flags the codec families declare: steps, gamma, seed, ...) and
the batch size are recorded in _manifest.json: the same arguments reproduce a stochastic decode. Rows whose codec has no matching weights here are refused.
Exit status: 0 ok, 1 when some shard failed, 2 for a usage error or a refused codec.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from model import load_codec_for_id  # noqa: E402
from model.options import add_option_flags, family_options, given_options, with_defaults  # noqa: E402
from pipeline.actors import DecodeWorker  # noqa: E402
from pipeline.archive import MANIFEST, PARQUET_SUFFIX, STATS_SUFFIX, archived_shards, now, write_json  # noqa: E402
from pipeline.cli import (add_common_args, fail, manifest_base, ray_session, resources_from,  # noqa: E402
                          run_workers, storage_from)
from pipeline.decoding import FORMATS, DecodeSettings  # noqa: E402
from pipeline.encoding import DEFAULT_MAX_PIXELS  # noqa: E402
from pipeline.metrics import summarize  # noqa: E402
from pipeline.shards import expand_inputs, shard_name  # noqa: E402
from pipeline.storage import join, redact  # noqa: E402

AUDIT_FILE = "audit.parquet"
AUDIT_SCHEMA = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("codec_id", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("bpp", pa.float64()), ("psnr", pa.float64()), ("ms_ssim", pa.float64()),
    ("error", pa.string()),
])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="decompress.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default="out/archive", help="archive folder or URL prefix (default out/archive)")
    p.add_argument("--output", default="out/decoded", help="output folder or URL prefix (default out/decoded)")
    p.add_argument("--shards", default=None, help="only archive shards whose name matches this glob, e.g. 'shard-0000[0-4]'")
    p.add_argument("--keys", default=None, help="only the keys listed in this file (one per line; path or URL)")
    p.add_argument("--format", choices=FORMATS, default="webdataset",
                   help="webdataset: NAME.tar per shard; png: NAME/KEY.png (default webdataset)")
    p.add_argument("--audit", default=None, metavar="ORIGINAL_SHARDS",
                   help="audit against these original shards (same forms as compress --input): "
                        "writes audit.parquet and prints a summary instead of keeping images")
    p.add_argument("--weights-dir", default=None, help="where to look for codec weights (default: model/weights)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="pixel cap for originals in --audit")
    add_option_flags(p.add_argument_group("decode options (each codec takes those its family declares)"),
                     family_options("decode"))
    add_common_args(p, default_batch=8)
    return p


def select_shards(archive: str, pattern: str | None, storage) -> dict[str, dict]:
    """Stats of the complete archive files under ``archive`` (by name), filtered by ``pattern``;
    says which archive files are left out because their marker or Parquet file does not check out."""
    markers = archived_shards(archive, storage)
    for name, reason in sorted(markers.problems.items()):
        if pattern is None or fnmatch.fnmatchcase(name, pattern):
            print(f"skipping archive shard {name}: {reason}", file=sys.stderr)
    return {n: s for n, s in markers.found.items() if pattern is None or fnmatch.fnmatchcase(n, pattern)}


def refused_codecs(shards: dict[str, dict], weights_dir: str | None) -> list[str]:
    """One message per codec id in the selected shards that has no matching weights here."""
    kw = {"weights_dir": Path(weights_dir)} if weights_dir else {}
    by_codec: dict[str, list[str]] = {}
    for name, stats in shards.items():
        by_codec.setdefault(stats["codec_id"], []).append(name)
    messages = []
    for codec_id, names in sorted(by_codec.items()):
        try:
            load_codec_for_id(codec_id, **kw)
        except Exception as exc:
            rows = sum(shards[n]["rows"] for n in names)
            messages.append(f"{rows} rows in {len(names)} shard(s) ({', '.join(sorted(names)[:5])}"
                            f"{', ...' if len(names) > 5 else ''}) need codec '{codec_id}': {exc}")
    return messages


def main(argv: list[str] | None = None, on_event=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    storage = storage_from(args)
    shards = select_shards(args.input, args.shards, storage)
    if not shards:
        return fail(f"no complete archive shards under {redact(args.input)}"
                    f"{' matching ' + repr(args.shards) if args.shards else ''} (expected NAME{STATS_SUFFIX} files)")
    refusals = refused_codecs(shards, args.weights_dir)
    if refusals:
        return fail("refusing to decode:\n  " + "\n  ".join(refusals) +
                    "\n  install the matching weights (or pass --weights-dir), or leave these shards out with --shards")
    keys = None
    if args.keys:
        keys = frozenset(k.strip() for k in storage.read_bytes(args.keys).decode().splitlines() if k.strip())
    options = given_options(args, family_options("decode"))
    settings = DecodeSettings(options=options, batch_size=args.batch_size,
                              format=args.format, keys=keys, max_pixels=args.max_pixels, weights_dir=args.weights_dir)
    parquets = {n: join(args.input, n + PARQUET_SUFFIX) for n in shards}
    if args.audit:
        try:
            originals = {shard_name(u): u for u in expand_inputs(args.audit, storage)}
        except (FileNotFoundError, ValueError) as exc:
            return fail(str(exc))
        missing = sorted(set(parquets) - set(originals))
        if missing:
            return fail(f"--audit: no original shard for {', '.join(missing[:5])} in {redact(args.audit)}")
        call = lambda actor, url: actor.audit.remote(url, originals[url.rsplit("/", 1)[-1][: -len(PARQUET_SUFFIX)]])  # noqa: E731
    else:
        call = lambda actor, url: actor.decode.remote(url, args.output)  # noqa: E731
    started, t0 = now(), time.perf_counter()
    with ray_session():
        res = resources_from(args)
        results, failures, display = run_workers(
            "audit" if args.audit else "decompress",
            lambda board: DecodeWorker.options(**res.options()).remote(settings, res, storage, board),
            list(parquets.values()), call, res, total=len(parquets), skipped=0,
            progress=not args.no_progress, on_event=on_event)
    manifest = {
        **manifest_base("decompress", argv, started, time.perf_counter() - t0, res),
        "input": redact(args.input), "output": redact(args.output),
        "decode": {**with_defaults(options, family_options("decode")), "batch_size": args.batch_size},
        "codec_ids": dict(Counter(s["codec_id"] for s in shards.values())),
        "counts": {"shards": len(parquets), "done": len(results), "failed": len(failures),
                   "rows": sum(r["rows"] for r in results.values()),
                   "errors": sum(r["errors"] for r in results.values())},
        "timings": {"shard_seconds": round(sum(r["seconds"] for r in results.values()), 3)},
        "failures": [{"shard": redact(s), "error": e} for s, e in failures.items()],
    }
    if args.audit:
        manifest["audit"] = write_audit(results, args.output, storage)
        print_audit(manifest["audit"])
    write_json(join(args.output, MANIFEST), manifest, storage)
    print(display.summary() + f"; output {redact(args.output)}")
    for shard, reason in failures.items():
        print(f"FAILED {redact(shard)}: {reason} (not marked done: rerun the same command to retry it)",
              file=sys.stderr)
    return 1 if failures else 0


def write_audit(results: dict, output: str, storage) -> dict:
    rows = [m for r in results.values() for m in r["metrics"]]
    with storage.atomic_output(join(output, AUDIT_FILE)) as f:
        pq.write_table(pa.Table.from_pylist(rows, schema=AUDIT_SCHEMA), f, compression="zstd")
    return {"file": redact(join(output, AUDIT_FILE)), "images": len(rows),
            "errors": sum(r["error"] is not None for r in rows),
            "psnr_db": summarize([r["psnr"] for r in rows]),
            "ms_ssim": summarize([r["ms_ssim"] for r in rows]),
            "bpp": summarize([r["bpp"] for r in rows if r["error"] is None], higher_is_better=False)}


def print_audit(audit: dict) -> None:
    def fmt(name: str, s: dict, unit: str = "") -> str:
        if not s["n"]:
            return f"{name} n/a"
        return f"{name} mean {s['mean']:.4g}{unit}, worst 1% {s['worst_1pct']:.4g}{unit} (n={s['n']})"

    print(f"audit: {audit['images']} images, {audit['errors']} errors; "
          + "; ".join([fmt("PSNR", audit["psnr_db"], " dB"), fmt("MS-SSIM", audit["ms_ssim"]), fmt("bpp", audit["bpp"])])
          + f"; per image: {audit['file']}")


if __name__ == "__main__":
    sys.exit(main())
