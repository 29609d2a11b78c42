"""Single-file command line; exits non-zero with a one-line reason on bad input.

    python -m model encode IN.png OUT.cdc --codec cdc-s-q2 [--quality 40 ...]
    python -m model decode IN.cdc OUT.png [--steps 8] [--gamma 0.8] [--seed 0] [--preset realism]

Encode and decode flags are the options the registered codec families declare; each codec
accepts only its own.
    python -m model info IN.cdc
    python -m model list
    python -m model truncate IN.cdc OUT.cdc --step K | --bpp B    (progressive DiffC bitstreams)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.imagefiles.pixels import DEFAULT_MAX_PIXELS, ImageError, load_image

from .diffc.stream import split, truncate
from .format import BitstreamError, bits_per_pixel, unpack
from .options import add_option_flags, family_options, given_options
from .registry import list_codecs, load_codec, load_codec_for_id


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="compress an image file into a diffarc bitstream")
    enc.add_argument("input", type=Path)
    enc.add_argument("output", type=Path)
    enc.add_argument("--codec", required=True, help="registry name or .safetensors path (see `list`)")
    enc.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decompression-bomb cap")
    enc.add_argument("--device", default="cpu")
    add_option_flags(enc.add_argument_group("encode options (per codec family)"), family_options("encode"))
    dec = sub.add_parser("decode", help="rebuild an image from a bitstream")
    dec.add_argument("input", type=Path)
    dec.add_argument("output", type=Path, help="output image; format from the suffix (.png recommended)")
    dec.add_argument("--codec", default=None,
                     help="weights to decode with (default: the registered ones the bitstream names)")
    dec.add_argument("--device", default="cpu")
    dec.add_argument("--preset", default=None,
                     help="decode options the weights card names, e.g. realism (flags given beside it win)")
    add_option_flags(dec.add_argument_group("decode options (per codec family)"), family_options("decode"))
    info = sub.add_parser("info", help="print a bitstream's header")
    info.add_argument("input", type=Path)
    sub.add_parser("list", help="list the registered codecs")
    trunc = sub.add_parser("truncate", help="write a shorter valid bitstream: a progressive (DiffC) one's first steps")
    trunc.add_argument("input", type=Path)
    trunc.add_argument("output", type=Path)
    keep = trunc.add_mutually_exclusive_group(required=True)
    keep.add_argument("--step", type=int, help="keep the first K coded steps")
    keep.add_argument("--bpp", type=float, help="keep the most steps within B bits per pixel")
    return p


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def run(args) -> str:
    if args.command == "list":
        return "\n".join(f"{i.name:<22} {i.family:<11} {i.description}" for i in list_codecs())
    if args.command == "info":
        data = _read(args.input)
        c = unpack(data)
        try:  # the settings the bitstream records (cdc-avif: what rate control chose); needs its codec
            recorded = "".join(f"  {k} {v}" for k, v in load_codec_for_id(c.codec_id).describe(data).items())
        except Exception as exc:  # no weights here: the header alone
            recorded = f"  (settings not read: {exc})"
        return (f"codec {c.codec_id}  size {c.width}x{c.height}  mode {c.mode}  bytes {len(data)}  "
                f"bpp {bits_per_pixel(data, c.height, c.width):.4f}{recorded}")
    if args.command == "truncate":
        shorter = truncate(_read(args.input), step=args.step, bpp=args.bpp)
        args.output.write_bytes(shorter)
        c = unpack(shorter)
        return (f"{args.input} -> {args.output}: {len(shorter)} bytes, "
                f"{bits_per_pixel(shorter, c.height, c.width):.4f} bpp, {len(split(c)[2])} coded steps")
    if args.command == "encode":
        image = load_image(_read(args.input), max_pixels=args.max_pixels)
        codec = load_codec(args.codec, device=args.device)
        t0 = time.perf_counter()
        blob = codec.encode([image], **given_options(args, family_options("encode")))[0]
        args.output.write_bytes(blob)
        h, w = image.rgb.shape[:2]
        return (f"{args.input} -> {args.output}: {len(blob)} bytes, "
                f"{bits_per_pixel(blob, h, w):.4f} bpp, {time.perf_counter() - t0:.2f} s ({codec.codec_id})")
    data = _read(args.input)
    if args.codec:  # explicit weights: decode still refuses a mismatching codec id
        codec = load_codec(args.codec, device=args.device)
    else:
        codec = load_codec_for_id(unpack(data).codec_id, device=args.device)
    t0 = time.perf_counter()
    image = codec.decode([data], preset=args.preset, **given_options(args, family_options("decode")))[0]
    try:
        image.save(args.output)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot write {args.output}: {exc}") from None
    return f"{args.input} -> {args.output}: {image.width}x{image.height} {image.mode}, {time.perf_counter() - t0:.2f} s"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (BitstreamError, ImageError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {args.input if hasattr(args, 'input') else args.command}: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
