"""Say what an archive holds, reading only its Parquet footers, small columns and markers (no bitstream).

    python jobs/info.py out/archive                      # rows by path and codec, bpp, errors, size, duplicates
    python jobs/info.py s3://bucket/archive/ --json      # the same for machines
    python jobs/info.py out/archive --keys 'cat-*'       # the keys that match a glob, one per line
    python jobs/info.py out/archive --duplicates dups.jsonl   # every file the archive holds more than once

docs/inspecting.md says what each figure means. Exit status: 0, 1 when some shard failed or does not
read (the summary, or with --keys stderr, says which and why), 2 for a usage error or a prefix that
holds no archive.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.inspection.info import archive_info, duplicates_jsonl, print_summary
from pipeline.io.storage import Storage, absolute, add_endpoint_flag, redact


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="info.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python jobs/info.py out/archive --duplicates dups.jsonl")
    p.add_argument("archive", metavar="ARCHIVE", help="the compress job's --output: a folder or URL prefix (s3://...)")
    p.add_argument("--keys", metavar="GLOB", default=None,
                   help="list the keys that match GLOB (fnmatch: '*' for all), one per line, instead of the summary")
    p.add_argument("--duplicates", metavar="FILE", default=None,
                   help="also write every original file held more than once, one JSON object per line: "
                        "{orig_sha256, orig_bytes, copies: [{shard, key}, ...]}")
    p.add_argument("--json", action="store_true", help="print JSON (the summary, or [{shard, key}] with --keys)")
    add_endpoint_flag(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    storage = Storage.from_env(args.endpoint_url)
    try:
        info = archive_info(absolute(args.archive), storage)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.duplicates:
        storage.write_bytes(absolute(args.duplicates), duplicates_jsonl(info.duplicates()))
    if args.keys is not None:
        keys = info.keys(args.keys)
        if args.json:
            print(json.dumps([{"shard": s, "key": k} for s, k in keys]))
        else:
            sys.stdout.writelines(f"{k}\n" for _, k in keys)
        for failed in info.failed_shards():  # their keys are not listed: say so, never drop them silently
            print(f"error: keys of {failed['shard']} not listed: {failed['error']}", file=sys.stderr)
        return 1 if info.failed_shards() else 0
    summary = info.summary()
    if args.duplicates:
        summary["duplicates"]["file"] = redact(args.duplicates)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 1 if summary["shards"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
