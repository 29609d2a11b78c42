"""Decode a Parquet archive on Ray actors into WebDataset shards or PNG files, or audit it.

    python jobs/decompress.py                                  # out/archive -> out/decoded/*.tar
    python jobs/decompress.py --input s3://bucket/archive/ --output s3://bucket/decoded/ \\
        --steps 8 --gamma 0.8 --seed 0 [--shards 'shard-00001*'] [--keys keys.txt] [--format png]
    python jobs/decompress.py --preset realism                 # decode options a weights card names
    python jobs/decompress.py --audit 's3://bucket/corpus/shard-{000000..000999}.tar' --output out/audit

Decoding writes NAME.tar per archive file (the samples as they came: same keys, in a safe form, same
member names; docs/archive.md) or NAME/KEY.png (decoded pixels; kept files and the
other members beside them as KEY.EXT), each committed in one piece, then NAME.decoded.json (the
shard's marker: rows, failed rows, the archive's error rows, original keys of renamed ones, image
members written under another name: a PNG beside one its format's writer refused). One row never
fails its shard. Rerunning skips shards decoded
before from the same archive bytes with the same settings. --audit decodes against the original
shards, writes NAME.audit.parquet (per image PSNR, MS-SSIM, bpp) and its marker NAME.audited.json per
shard without keeping decoded images (a rerun audits only the shards not audited before from the same
archive bytes, originals and settings), then audit.parquet over every shard, and prints mean and
worst 1 %. The decode options (the flags the codec families declare: steps, gamma, seed, ...) and
the batch size are recorded in _manifest.json: the same arguments reproduce a stochastic decode.
Rows whose codec has no matching weights here are refused.
Exit status: 0 ok, 1 when some shard failed or some row was not decoded now (unless --allow-errors;
rows that were error rows when archived are reported, not failures),
2 for a usage error, a refused codec or an output in use by another job.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections import Counter
from dataclasses import dataclass, replace

from model import runs_network
from model.evaluation.pricing import run_estimate
from model.options import add_option_flags, family_options, given_options, with_defaults
from pipeline.decode.audit import Auditing, summary_line
from pipeline.decode.decoding import FORMATS, Decoding, archive_name, codecs_for, resolved_options
from pipeline.decode.settings import DecodeSettings
from pipeline.io.batches import JOB_MAX_PIXELS
from pipeline.io.child import Limits
from pipeline.io.shards import expand_inputs, shard_name
from pipeline.io.storage import absolute, join, redact
from pipeline.records.archive import RowGroups, archived_shards
from pipeline.records.files import DECODED_SUFFIX, PARQUET_SUFFIX, STATS_SUFFIX, DecompressManifest, ShardStats
from pipeline.run.actors import DecodeWorker
from pipeline.run.job import Outcome, run_job
from pipeline.run.runner import RunSettings, add_common_args, fail, print_plan_for

MANIFEST_FAILED_ROWS = 1000  # failed rows listed in the manifest; every one is in its shard's marker


def build_parser(prog: str = "decompress.py", description: str = __doc__.split("\n\n")[0]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default="out/archive", help="archive folder or URL prefix (default out/archive)")
    p.add_argument("--output", default="out/decoded", help="output folder or URL prefix (default out/decoded)")
    p.add_argument("--shards", default=None, help="only archive shards whose name matches this glob, e.g. 'shard-0000[0-4]'")
    p.add_argument("--keys", default=None, help="only the keys listed in this file (one per line; path or URL)")
    p.add_argument("--format", choices=FORMATS, default="webdataset",
                   help="webdataset: NAME.tar per shard; png: NAME/KEY.png (default webdataset)")
    p.add_argument("--audit", default=None, metavar="ORIGINAL_SHARDS",
                   help="audit against these original shards (same forms as compress --input): "
                        "writes audit.parquet and prints a summary instead of keeping images")
    p.add_argument("--max-pixels", type=int, default=JOB_MAX_PIXELS,
                   help="pixel cap: a bitstream whose header is larger is an error row, refused before decoding; "
                        f"also caps originals in --audit (default {JOB_MAX_PIXELS})")
    p.add_argument("--max-row-group-mb", type=float, default=RowGroups.bytes / 2**20,
                   help="what the archive is held to, as compress's --row-group-mb: a row over this many MB of "
                        "bitstream and metadata, or a row group over twice that, is refused (error rows) before it "
                        f"is read (default {RowGroups.bytes / 2**20:g})")
    p.add_argument("--overwrite", action="store_true",
                   help="decode (or audit) every shard again, even those done before")
    p.add_argument("--decoder-memory-gb", type=float, default=Limits.memory_bytes / 2**30,
                   help="memory cap of each decoding process (RLIMIT_DATA; not applied on GPUs); a bitstream "
                        f"that needs more fails its shard, not the machine (default {Limits.memory_bytes / 2**30:g})")
    p.add_argument("--decode-timeout", type=float, default=Limits.seconds_per_image,
                   help="seconds per image before a decoding process is killed and the image becomes an "
                        f"error row (default {Limits.seconds_per_image:g})")
    p.add_argument("--allow-errors", action="store_true",
                   help="exit 0 even when rows were not decoded (they are still reported and listed)")
    p.add_argument("--preset", default=None,
                   help="decode options the weights card of every codec in the archive names, e.g. realism "
                        "(decode option flags given beside it win; they and the preset's values are recorded)")
    add_common_args(p, default_batch=8)
    add_option_flags(p.add_argument_group("decode options (each codec takes those its family declares)"),
                     family_options("decode"))  # after the job's own flags (model.options: the namespace)
    return p


def select_shards(archive: str, pattern: str | None, storage) -> dict[str, ShardStats]:
    """Stats of the complete archive files under ``archive`` (by name), filtered by ``pattern``;
    says which archive files are left out because their marker or Parquet file does not check out."""
    markers = archived_shards(archive, storage)
    for name, reason in sorted(markers.problems.items()):
        if pattern is None or fnmatch.fnmatchcase(name, pattern):
            print(f"skipping archive shard {name}: {reason}", file=sys.stderr)
    return {n: s for n, s in markers.found.items() if pattern is None or fnmatch.fnmatchcase(n, pattern)}


@dataclass(frozen=True)
class DecompressFlags:
    """The decompress job's flags, typed and fixed once parsed (``from_args``): the run's common ones,
    the decode settings they give (before the archive's codecs and the keys file are read), and what
    chooses the shards and the outcome."""

    run: RunSettings
    decode: DecodeSettings  # options: the option flags given; the keys, the preset's values and codec_options: ``run()``
    shards: str | None = None  # glob over archive shard names
    keys: str | None = None  # the keys file
    audit: str | None = None  # the original shards
    allow_errors: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, audit: str | None = None) -> "DecompressFlags":
        """From parsed flags (``build_parser``); ``audit``: the original shards where a job (audit.py)
        takes them otherwise than as ``--audit``. Local paths are made absolute (``RunSettings``)."""
        audit = audit or args.audit
        return cls(
            run=RunSettings.from_args(args),
            decode=DecodeSettings(
                options=given_options(args, family_options("decode")), batch_size=args.batch_size,
                format=args.format, max_pixels=args.max_pixels, weights_dir=args.weights_dir,
                limits=Limits(memory_bytes=int(args.decoder_memory_gb * 2**30), seconds_per_image=args.decode_timeout),
                row_groups=RowGroups(bytes=int(args.max_row_group_mb * 2**20)), preset=args.preset),
            shards=args.shards, keys=absolute(args.keys) if args.keys else None,
            audit=absolute(audit) if audit else None, allow_errors=args.allow_errors)


def main(argv: list[str] | None = None, on_event=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(DecompressFlags.from_args(build_parser().parse_args(argv)), argv, on_event)


def run(flags: DecompressFlags, argv: list[str], on_event=None) -> int:
    """The job for ``flags``; ``argv`` is what the manifest records (``build_parser`` reads it again)."""
    run_settings = flags.run
    storage = run_settings.storage()
    shards = select_shards(run_settings.input, flags.shards, storage)
    if not shards:
        return fail(f"no complete archive shards under {redact(run_settings.input)}"
                    f"{' matching ' + repr(flags.shards) if flags.shards else ''} (expected NAME{STATS_SUFFIX} files)")
    codecs, refusals = codecs_for(shards, run_settings.weights())
    if refusals:
        return fail("refusing to decode:\n  " + "\n  ".join(refusals) +
                    "\n  install the matching weights (or pass --weights-dir / --weights-url), or leave these shards out "
                    "with --shards")
    options = flags.decode.options
    if flags.decode.preset:
        try:
            options = {**preset_options(codecs, flags.decode.preset), **options}  # explicit: in the resume fingerprint
        except ValueError as exc:
            return fail(str(exc))
    settings = replace(flags.decode, options=options, codec_options=resolved_options(codecs, options))
    network = any(runs_network(c, "decode", settings.options_for(c)) for c in codecs.values())
    if run_settings.plan_for:
        return print_plan_for(run_settings, "decode", network)
    if flags.keys:
        keys = frozenset(k.strip() for k in storage.read_bytes(flags.keys).decode().splitlines() if k.strip())
        settings = replace(settings, keys=keys)
    work = Decoding()
    if flags.audit:
        try:
            originals = {shard_name(u): u for u in expand_inputs(flags.audit, storage)}
        except (FileNotFoundError, ValueError) as exc:
            return fail(str(exc))
        missing = sorted(set(shards) - set(originals))
        if missing:
            return fail(f"--audit: no original shard for {', '.join(missing[:5])} in {redact(flags.audit)}")
        work = Auditing(originals)
    job = Decompress(run_settings, shards, settings, work, network, flags.allow_errors)
    return run_job(job, storage, argv, on_event)


@dataclass(frozen=True)
class Decompress:
    """The decompress job's part of the run (``pipeline.run.job``): the archive shards, the decode
    settings, and what is done with each shard (``Decoding`` or ``Auditing``); a ``DecodeWorker`` per
    worker, a ``DecompressManifest``."""

    run: RunSettings
    shards: dict[str, ShardStats]
    settings: DecodeSettings
    work: Decoding | Auditing
    network: bool
    allow_errors: bool
    name = "decompress"
    stage = "decode"

    @property
    def label(self) -> str:
        return self.work.job

    @property
    def batch_deadline_s(self) -> float:
        # the sandbox takes up to 2 x batch x --decode-timeout to make a hanging image an error row
        return 2 * self.settings.limits.seconds_per_image * self.settings.batch_size

    @property
    def items(self) -> dict[str, str]:
        return {n: join(self.run.input, n + PARQUET_SUFFIX) for n in self.shards}

    def finished(self, storage) -> tuple[dict, dict]:
        return self.work.finished(self.run.output, self.shards, self.settings, storage)

    def redoing(self, name: str, reason: str) -> str:
        return f"{self.work.doing} {name} again: {reason}"

    def worker(self, res, storage, board: str):
        return DecodeWorker.options(**res.options()).remote(self.settings, res, storage, board)

    def submit(self, actor, url: str):
        return self.work.submit(actor, url, self.run.output, self.shards[archive_name(url)].output)

    def manifest(self, common: dict, outcome: Outcome, storage) -> DecompressManifest:
        finished = outcome.all_results()
        listed = rows_listed(finished)
        options_used = self.settings.codec_options.plain()
        manifest = DecompressManifest(
            **common,
            input=redact(self.run.input), output=redact(self.run.output),
            decode={**with_defaults(self.settings.options, family_options("decode")), **agreed(options_used),
                    "batch_size": self.settings.batch_size,
                    **({"preset": self.settings.preset} if self.settings.preset else {})},
            codec_options=options_used,
            codec_ids=dict(Counter(s.codec_id for s in self.shards.values())),
            counts={"shards": len(self.shards), "done": len(outcome.results), "skipped": len(outcome.skipped),
                    "failed": len(outcome.failures),
                    "rows": sum(r.rows for r in finished), "errors": sum(r.errors for r in finished)},
            timings={"shard_seconds": round(sum(r.seconds for r in outcome.results.values()), 3)},
            failures=[{"shard": redact(s), "error": e} for s, e in outcome.failures.items()],
            **{what: rows[:MANIFEST_FAILED_ROWS] for what, rows in listed.items()},
        )
        manifest.audit = self.work.conclude([archive_name(r.shard) for r in finished], self.run.output, storage)
        if manifest.audit is not None:
            print(summary_line(manifest.audit))
        return manifest

    def report(self, outcome: Outcome, manifest: DecompressManifest) -> int:
        res, display = outcome.resources, outcome.display
        listed = rows_listed(outcome.all_results())
        fallbacks, failed_rows = listed["fallbacks"], listed["failed_rows"]
        print(display.summary() + f"; output {redact(self.run.output)}")
        print(run_estimate(manifest.timings["shard_seconds"], res.cpus, res.gpus, display.bytes_out, written="written"))
        report_compress_errors(listed["compress_errors"])
        if fallbacks:
            print(f"{len(fallbacks)} image members were written under another name than their own (listed as fallbacks in "
                  f"each shard's NAME{DECODED_SUFFIX} and in _manifest.json), e.g. {fallbacks[0]['key']!r}: "
                  f"{fallbacks[0]['why']}", file=sys.stderr)
        report_rows(failed_rows, self.allow_errors)
        return 1 if failed_rows and not self.allow_errors else 0


def rows_listed(finished: list) -> dict[str, list[dict]]:
    """The rows the shards' markers list, each with its shard: not decoded now (``failed_rows``), error
    rows when archived (``compress_errors``), image members written under another name (``fallbacks``)."""
    return {what: [{"shard": archive_name(r.shard), **row} for r in finished for row in getattr(r, what, None) or []]
            for what in ("failed_rows", "compress_errors", "fallbacks")}


def report_compress_errors(rows: list[dict]) -> None:
    """The archive's own error rows (images compress could not code): restored as far as they were kept
    (the original file, the other members), reported, never a failure of this job."""
    if rows:
        print(f"{len(rows)} rows were error rows when archived (restored as they were kept; listed in each shard's "
              f"NAME{DECODED_SUFFIX} and in _manifest.json):", file=sys.stderr)
        for row in rows[:10]:
            print(f"  {row['shard']} {row['key']!r}: {row['error']}", file=sys.stderr)


def preset_options(codecs: dict, preset: str) -> dict:
    """The decode options that the weights cards of every codec of the archive name ``preset``;
    refused where a card lacks it (the message lists each card's presets) or two cards disagree."""
    named, refusals = {}, []
    for codec_id, codec in sorted(codecs.items()):
        try:
            named[codec_id] = codec.preset_options(preset)
        except ValueError as exc:
            refusals.append(str(exc))
    if refusals:
        raise ValueError(f"--preset {preset}: " + "; ".join(refusals) +
                         " (leave those shards out with --shards, or give the decode options as flags)")
    if len({repr(sorted(v.items())) for v in named.values()}) > 1:
        raise ValueError(f"--preset {preset} means different options for the codecs of this archive ("
                         + "; ".join(f"{cid}: {opts}" for cid, opts in named.items())
                         + "): decode their shards separately with --shards")
    return next(iter(named.values()))


def agreed(options_used: dict[str, dict]) -> dict:
    """The options every codec of the archive ran with alike (what ``decode`` records for them)."""
    common: dict = {}
    for name in {n for opts in options_used.values() for n in opts}:
        values = [opts[name] for opts in options_used.values() if name in opts]
        if all(v == values[0] for v in values):
            common[name] = values[0]
    return common


def report_rows(failed_rows: list[dict], allowed: bool) -> None:
    """The rows that were not decoded: how many, the first few, and where the full list is."""
    if not failed_rows:
        return
    print(f"{len(failed_rows)} rows were not decoded (every one is listed in its shard's NAME{DECODED_SUFFIX}"
          f"{' and in _manifest.json' if len(failed_rows) <= MANIFEST_FAILED_ROWS else ''}):", file=sys.stderr)
    for row in failed_rows[:10]:
        print(f"  {row['shard']} {row['key']!r}: {row['error']}", file=sys.stderr)
    if not allowed:
        print("exit status 1 because rows failed; pass --allow-errors to accept them", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
