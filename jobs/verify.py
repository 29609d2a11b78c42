"""Verify an archive without its originals: every shard file against its recorded sha256, every row
readable, every kept file against the original's sha256, every codec bitstream's container and header.

    python jobs/verify.py out/archive                   # the checks above; exit 1 lists what failed and why
    python jobs/verify.py s3://bucket/archive/ --decode  # also decode every codec row (slow: the network runs)
    python jobs/verify.py out/archive --json            # the summary as JSON

docs/inspecting.md says what each check proves. Exit status: 0 when every check passed (warnings,
such as "no checksum recorded" for archives written before checksums, do not fail), 1 when some
check failed, 2 for a usage error or a prefix that holds no archive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pipeline.decode.settings import DecodeSettings
from pipeline.inspection.listing import archive_files
from pipeline.inspection.verify import ShardVerdict, verify_archive
from pipeline.io.storage import Storage, absolute, add_endpoint_flag


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verify.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python jobs/verify.py out/archive --threads 8")
    p.add_argument("archive", metavar="ARCHIVE", help="the compress job's --output: a folder or URL prefix (s3://...)")
    p.add_argument("--decode", action="store_true",
                   help="also decode every codec row with its codec (default: container and header checks only)")
    p.add_argument("--steps", type=int, default=None, help="with --decode: diffusion steps (default: the codec's)")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="shards verified at once (default: up to 4)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no line per shard on stderr")
    add_endpoint_flag(p)
    p.add_argument("--weights-dir", default=None,
                   help="folder of codec weights (default: $DIFFARC_WEIGHTS_DIR, else the package's model/weights)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    storage, t0 = Storage.from_env(args.endpoint_url), time.perf_counter()
    try:
        files = archive_files(absolute(args.archive), storage)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(v: ShardVerdict, done: int, total: int) -> None:
        if not args.no_progress:
            print(f"[{done}/{total}] {v.name}: {v.rows} rows, {len(v.failures)} failed, {len(v.warnings)} warnings",
                  file=sys.stderr, flush=True)

    options = {"steps": args.steps} if args.steps is not None else {}
    decode = DecodeSettings(options=options, weights_dir=args.weights_dir) if args.decode else None
    result = verify_archive(files, storage, threads=args.threads, decode_settings=decode,
                            weights_dir=args.weights_dir, report=progress)
    summary = {**result.summary(), "seconds": round(time.perf_counter() - t0, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for p in result.warnings():
            print(f"warning: {p.line()}")
        for p in result.failures():
            print(f"FAILED {p.line()}")
        passed = ", ".join(f"{k} {n}" for k, n in summary["passed"].items())
        print(f"{'ok' if summary['ok'] else 'FAILED'}: {summary['archive']}: {summary['shards']} shards, "
              f"{summary['rows']} rows in {summary['seconds']} s; passed: {passed}; {len(summary['failures'])} failed, "
              f"{len(summary['warnings'])} warnings")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
