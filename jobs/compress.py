"""Archive WebDataset shards as Parquet: one codec replica per Ray actor, one Parquet file per shard.

    python jobs/compress.py                                   # the example corpus -> out/archive
    python jobs/compress.py --input 's3://bucket/corpus/shard-{000000..000999}.tar' \\
        --output s3://bucket/archive/ --codec cdc-avif-m-mse [--quality 30] [--actors N] [--overwrite]
    python jobs/compress.py --plan-for 96:8                    # the workers it would start there, and why
    ray job submit --working-dir . -- python jobs/compress.py ...   # the same, on a cluster

Per shard the output holds NAME.parquet and NAME.stats.json (written last: the completion marker);
the job writes _manifest.json. Rerunning skips complete shards. Exit status: 0 when every shard is
archived (bad images are error rows, not failures), 1 when some shard failed after its retries,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from model import load_codec, runs_network, split_codec_id
from model.evaluation.pricing import run_estimate
from model.options import add_option_flags, family_options, given_options
from pipeline.encode.encoding import EncodeSettings
from pipeline.encode.keeping import Policy
from pipeline.io.batches import JOB_MAX_PIXELS
from pipeline.io.shards import expand_inputs, shard_name
from pipeline.io.storage import join, redact
from pipeline.records.archive import RowGroups, find_completed, now, tally
from pipeline.records.files import MANIFEST, CompressManifest
from pipeline.records.paths import describe_paths
from pipeline.run.actors import CompressWorker, ResolvedCodec
from pipeline.run.lease import LeaseHeld
from pipeline.run.runner import (absolute_paths, add_common_args, fail, manifest_base, output_lease, print_plan_for,
                                 ray_session,
                                 report_failures,
                                 resources_from, run_workers, storage_from, weights_from, write_manifest)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = str(REPO / "examples" / "corpus")


DEFAULT_CODEC = "cdc-avif-mse"  # AVIF base layer at effort fast (the cost model) + the network best at fast; rate by --quality

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compress.py", description=__doc__.split("\n\n")[0],
        epilog="Example: python jobs/compress.py --input 'data/shard-{000000..000009}.tar' --output out/archive "
               "--codec cdc-avif-mse --quality 30", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=DEFAULT_INPUT,
                   help="shards: a .tar path or URL, a folder/prefix of .tar files, a glob, or a brace pattern "
                        "like 's3://b/c/shard-{000000..000999}.tar' (default: the example corpus)")
    p.add_argument("--output", default="out/archive", help="output folder or URL prefix (default out/archive)")
    p.add_argument("--codec", default=DEFAULT_CODEC,
                   help="codec name (cdc-avif-mse, cdc-avif-mse-q20, jpeg-q90, webp-q75, avif-q60...) or a "
                        f"path to a .safetensors file; `python -m model list` shows them (default {DEFAULT_CODEC}, "
                        "the best measured on Kodak: results/kodak)")
    p.add_argument("--overwrite", action="store_true", help="redo every shard, even complete ones")
    p.add_argument("--max-pixels", type=int, default=JOB_MAX_PIXELS,
                   help=f"decompression-bomb cap: larger images become error rows (default {JOB_MAX_PIXELS})")
    p.add_argument("--batch-mb", type=float, default=EncodeSettings.batch_bytes / 2**20,
                   help="a batch also closes at this many MB held, counting every item, failed ones too "
                        f"(default {EncodeSettings.batch_bytes / 2**20:g})")
    p.add_argument("--max-member-mb", type=float, default=EncodeSettings.max_member_bytes / 2**20,
                   help="larger tar members are not read: their sample becomes an error row "
                        f"(default {EncodeSettings.max_member_bytes / 2**20:g})")
    k = p.add_argument_group("what is kept (docs/archive.md)")
    k.add_argument("--lossless", action="store_true",
                   help="keep every image losslessly: JPEGs recompressed by JPEG XL (the original file comes back byte "
                        "for byte), PNGs as JPEG XL pixels, others as their files; whichever is smaller than the file")
    k.add_argument("--keep-original-margin", type=fraction, default=Policy.margin, metavar="FRACTION",
                   help="keep the original file unless the coded row (bitstream and metadata) is at least this "
                        f"fraction smaller (default {Policy.margin:g}: any smaller)")
    k.add_argument("--min-side", type=int, default=Policy.min_side,
                   help=f"images with a side under this many pixels are kept losslessly (default {Policy.min_side})")
    k.add_argument("--allow-8bit", action="store_true",
                   help="code 16-bit images at 8 bits with the lossy codec (default: keep them losslessly); recorded per row")
    k.add_argument("--allow-first-frame", action="store_true",
                   help="code animations as their first frame (default: keep the file); recorded per row")
    p.add_argument("--row-group-rows", type=int, default=100, help="rows per Parquet row group (default 100)")
    p.add_argument("--row-group-mb", type=float, default=64, help="or this many MB of bitstreams; also the most one row may hold, a larger one is an error row "
                        "(default 64; decode such an archive with the same --max-row-group-mb)")
    add_common_args(p, default_batch=16)
    add_option_flags(p.add_argument_group("encode options (the codec's family must declare them)"),
                     family_options("encode"))  # after the job's own flags (model.options: the namespace)
    return p


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction, 0 or more and below 1")
    return value


def main(argv: list[str] | None = None, on_event=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    absolute_paths(args, "input", "output")
    storage = storage_from(args)
    try:
        codec_options = given_options(args, family_options("encode"))
        # here first: a bad name or option fails now, with the list of known ones
        codec = load_codec(args.codec, resolver=weights_from(args)).with_presets(**codec_options)
        if args.plan_for:
            return print_plan_for(args, "encode", runs_network(codec, "encode"))
        shards = expand_inputs(args.input, storage)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        return fail(str(exc).strip("'\""))
    settings = EncodeSettings(batch_size=args.batch_size, max_pixels=args.max_pixels,
                              batch_bytes=int(args.batch_mb * 2**20), max_member_bytes=int(args.max_member_mb * 2**20),
                              row_groups=RowGroups(args.row_group_rows, int(args.row_group_mb * 2**20)),
                              policy=Policy(lossless=args.lossless, margin=args.keep_original_margin,
                                            min_side=args.min_side, allow_8bit=args.allow_8bit,
                                            allow_first_frame=args.allow_first_frame))
    resolved = ResolvedCodec.of(args.codec, codec, codec_options)
    try:
        with output_lease(args, "compress", storage) as lease:
            return archive(args, argv, storage, shards, codec, resolved, settings, lease, on_event)
    except LeaseHeld as exc:
        return fail(str(exc))


def archive(args, argv: list[str], storage, shards: list[str], codec, resolved: ResolvedCodec,
            settings: EncodeSettings, lease, on_event) -> int:
    """The job once it holds the output prefix: skip what is complete, archive the rest, write the manifest."""
    names = {shard_name(s): s for s in shards}
    try:
        skipped, redo = ({}, {}) if args.overwrite else find_completed(args.output, names, storage, codec.codec_id)
    except ValueError as exc:
        return fail(str(exc))
    for name, reason in sorted(redo.items()):
        print(f"redoing {name}: {reason}", file=sys.stderr)
    todo = [s for n, s in names.items() if n not in skipped]
    started, t0 = now(), time.perf_counter()
    with ray_session():
        res = resources_from(args, "encode", runs_network(codec, "encode"))
        results, failures, display, placement = run_workers(
            "compress",
            lambda board: CompressWorker.options(**res.options()).remote(resolved, settings, res, storage, board),
            todo, lambda actor, shard: actor.compress.remote(shard, args.output),
            res, total=len(shards), skipped=len(skipped), progress=not args.no_progress, on_event=on_event)
    manifest = CompressManifest(
        **manifest_base("compress", argv, started, time.perf_counter() - t0, res, placement),
        codec=args.codec,
        codec_id=codec.codec_id,
        weights_hash=split_codec_id(codec.codec_id)[1],
        options=codec.resolve_options("encode", {}),
        input=redact(args.input),
        output=redact(args.output),
        settings={"batch_size": settings.batch_size, "max_pixels": settings.max_pixels,
                  "batch_bytes": settings.batch_bytes, "max_member_bytes": settings.max_member_bytes,
                  "row_group_rows": settings.row_groups.rows, "row_group_bytes": settings.row_groups.bytes,
                  "policy": asdict(settings.policy)},
        **tally(shards, results, skipped, failures),
    )
    written = write_manifest(join(args.output, MANIFEST), manifest, storage)
    print(display.summary() + f"; manifest {redact(join(args.output, MANIFEST))}")
    print(describe_paths(manifest.paths))
    print(run_estimate(manifest.timings["shard_seconds"], res.cpus, res.gpus, manifest.bytes["parquet"]))
    return report_failures(failures, lease) or (0 if written else 1)


if __name__ == "__main__":
    sys.exit(main())
