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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model import load_codec, runs_network, split_codec_id
from model.evaluation.pricing import run_estimate
from model.options import add_option_flags, family_options, given_options
from pipeline.encode.encoding import EncodeSettings
from pipeline.encode.keeping import Policy
from pipeline.io.batches import JOB_MAX_PIXELS
from pipeline.io.shards import expand_inputs, shard_name
from pipeline.io.storage import join, redact
from pipeline.records.archive import RowGroups, find_completed, tally
from pipeline.records.files import MANIFEST, CompressManifest
from pipeline.records.paths import describe_paths
from pipeline.run.actors import CompressWorker, ResolvedCodec
from pipeline.run.job import Outcome, run_job
from pipeline.run.runner import RunSettings, add_common_args, fail, print_plan_for

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
    run = RunSettings.from_args(args)
    storage = run.storage()
    try:
        codec_options = given_options(args, family_options("encode"))
        # here first: a bad name or option fails now, with the list of known ones
        codec = load_codec(args.codec, resolver=run.weights()).with_presets(**codec_options)
        if run.plan_for:
            return print_plan_for(run, "encode", runs_network(codec, "encode"))
        shards = expand_inputs(run.input, storage)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        return fail(str(exc).strip("'\""))
    settings = EncodeSettings(batch_size=run.batch_size, max_pixels=args.max_pixels,
                              batch_bytes=int(args.batch_mb * 2**20), max_member_bytes=int(args.max_member_mb * 2**20),
                              row_groups=RowGroups(args.row_group_rows, int(args.row_group_mb * 2**20)),
                              policy=Policy(lossless=args.lossless, margin=args.keep_original_margin,
                                            min_side=args.min_side, allow_8bit=args.allow_8bit,
                                            allow_first_frame=args.allow_first_frame))
    job = Compress(run, args.codec, codec, ResolvedCodec.of(args.codec, codec, codec_options), settings, tuple(shards))
    return run_job(job, storage, argv, on_event)


@dataclass(frozen=True)
class Compress:
    """The compress job's part of the run (``pipeline.run.job``): the codec the driver checked, the
    encode settings from the flags, the input shards; a ``CompressWorker`` per worker, a
    ``CompressManifest``."""

    run: RunSettings
    codec_name: str  # as the user gave it
    codec: Any
    resolved: ResolvedCodec
    settings: EncodeSettings
    shards: tuple[str, ...]
    name = label = "compress"
    stage = "encode"
    batch_deadline_s = 0.0

    @property
    def items(self) -> dict[str, str]:
        return {shard_name(s): s for s in self.shards}

    @property
    def network(self) -> bool:
        return runs_network(self.codec, "encode")

    def finished(self, storage) -> tuple[dict, dict]:
        return find_completed(self.run.output, self.items, storage, self.codec.codec_id)

    def redoing(self, name: str, reason: str) -> str:
        return f"redoing {name}: {reason}"

    def worker(self, res, storage, board: str):
        return CompressWorker.options(**res.options()).remote(self.resolved, self.settings, res, storage, board)

    def submit(self, actor, shard: str):
        return actor.compress.remote(shard, self.run.output)

    def manifest(self, common: dict, outcome: Outcome, storage) -> CompressManifest:
        settings = self.settings
        return CompressManifest(
            **common,
            codec=self.codec_name,
            codec_id=self.codec.codec_id,
            weights_hash=split_codec_id(self.codec.codec_id)[1],
            options=self.codec.resolve_options("encode", {}),
            input=redact(self.run.input),
            output=redact(self.run.output),
            settings={"batch_size": settings.batch_size, "max_pixels": settings.max_pixels,
                      "batch_bytes": settings.batch_bytes, "max_member_bytes": settings.max_member_bytes,
                      "row_group_rows": settings.row_groups.rows, "row_group_bytes": settings.row_groups.bytes,
                      "policy": asdict(settings.policy)},
            **tally(list(self.shards), outcome.results, outcome.skipped, outcome.failures),
        )

    def report(self, outcome: Outcome, manifest: CompressManifest) -> int:
        res = outcome.resources
        print(outcome.display.summary() + f"; manifest {redact(join(self.run.output, MANIFEST))}")
        print(describe_paths(manifest.paths))
        print(run_estimate(manifest.timings["shard_seconds"], res.cpus, res.gpus, manifest.bytes["parquet"]))
        return 0


if __name__ == "__main__":
    sys.exit(main())
