"""Realism against fidelity on photos in no training set: AVIF, the MSE decoder and a prior under a
grid of decodes (``model.evaluation.realism_grid`` says what is measured and written).

    python jobs/realism.py --prior model/weights/cdc-avif-m-prior.safetensors --out results/realism   # or a path
    python jobs/realism.py --prior cdc-avif-m-prior --heldout-limit 12 --kodak-limit 8 --out results/realism
"""

from __future__ import annotations

import sys

from model.evaluation.inputs import load_images
from model.evaluation.realism_grid import build_parser, run
from pipeline.imagefiles.pixels import held_out


def chosen_images(args) -> list:
    """The held-out slice of --heldout (spread over its sorted names), then the first of --kodak."""
    images = load_images(args.heldout, args.heldout_limit, lambda n: held_out(n, args.heldout_every),
                         args.resize_max, spread=True)
    if args.kodak:
        images += load_images(args.kodak, args.kodak_limit, resize_max=args.resize_max)
    return images


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run(args, None if args.report_only else chosen_images(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
