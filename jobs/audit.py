"""Audit a Parquet archive against its original shards: per image PSNR, MS-SSIM and bpp, no images kept.

    python jobs/audit.py 's3://bucket/corpus/shard-{000000..000999}.tar' --input s3://bucket/archive/ \\
        --output s3://bucket/audit/ [--steps 8 --gamma 0.8 --seed 0] [--shards ...] [--keys ...]

The job of ``decompress.py --audit ORIGINAL_SHARDS`` (``pipeline/decode/audit.py``), with the original shards
as its argument and out/audit as its default output; decompress's other flags apply. Writes
NAME.audit.parquet and NAME.audited.json per shard, then audit.parquet, and prints mean and worst
1 %. The manifest records the decompress.py arguments it ran as. Exit status as decompress.py's.
"""

from __future__ import annotations

import argparse
import sys

from jobs import decompress

DEFAULT_OUTPUT = "out/audit"


def build_parser() -> argparse.ArgumentParser:
    p = decompress.build_parser(prog="audit.py", description=__doc__.split("\n\n")[0])
    p.add_argument("originals", metavar="ORIGINAL_SHARDS",
                   help="the shards the archive was made from (same forms as compress --input)")
    p.set_defaults(output=DEFAULT_OUTPUT)
    for action in p._actions:
        if action.dest == "audit":
            action.help = argparse.SUPPRESS  # the argument above
        elif action.dest == "output":
            action.help = f"output folder or URL prefix (default {DEFAULT_OUTPUT})"
    return p


def main(argv: list[str] | None = None, on_event=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.audit:
        parser.error("the original shards are this job's argument, not --audit")
    rest = list(argv)
    rest.remove(args.originals)
    flags = decompress.DecompressFlags.from_args(args, audit=args.originals)
    return decompress.run(flags, ["--audit", args.originals, "--output", args.output, *rest], on_event)


if __name__ == "__main__":
    sys.exit(main())
