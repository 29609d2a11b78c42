"""Export a training run's latest checkpoint (its EMA weights) as registry weights, without training.

    # a snapshot of a run still going, to evaluate it mid-way (the card says the step it was taken at):
    python jobs/export_run.py runs/mse-long cdc-avif-mse-long-snap
    python -m jobs.evaluate ... --codecs cdc-avif-mse-long-snap-q{4,10,18,28,40} --weights-dir runs/mse-long/weights

The run's settings come from its train_config.json. The checkpoint is copied before it is read, so a save
in flight (a rename of the whole folder) is never read half written. The weights go to RUN/weights
unless --weights-dir says otherwise (not model/weights: a snapshot is not a shipped file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from model.codecs.avif_base import EFFORTS
from model.nn.weights_file import PRECISIONS
from model.training import TrainConfig, export

COPY_TRIES = 5  # a checkpoint replaced while it is copied is copied again


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a jobs/train.py --out folder")
    p.add_argument("name", help="the weights' name (NAME.safetensors and NAME.json)")
    p.add_argument("--weights-dir", default=None, help="where the weights go (default RUN/weights)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16",
                   help="fp16, or int8 per output channel (half the bytes)")
    p.add_argument("--default-effort", choices=tuple(EFFORTS), default=None,
                   help="cdc-avif: the base-layer effort the card sets as default")
    return p


def copy_checkpoint(run: Path, into: Path) -> int:
    """``run/ckpt`` without its optimiser state, copied whole even while the run saves a new one; its step."""
    for attempt in range(COPY_TRIES):
        try:
            shutil.copytree(run / "ckpt", into, ignore=shutil.ignore_patterns("optim.pt"), dirs_exist_ok=True)
            return json.loads((into / "state.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            shutil.rmtree(into, ignore_errors=True)
            if attempt == COPY_TRIES - 1:
                raise
            time.sleep(0.5)  # the run renames its new checkpoint into place: a moment


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = Path(args.run)
    for needed in (run / "train_config.json", run / "ckpt" / "state.json"):
        if not needed.is_file():
            print(f"error: {needed} not found: RUN must be a jobs/train.py --out folder that has saved a "
                  "checkpoint (every --checkpoint-every steps)", file=sys.stderr)
            return 2
    settings = json.loads((run / "train_config.json").read_text())
    weights_dir = Path(args.weights_dir) if args.weights_dir else run / "weights"
    card = {"default_effort": args.default_effort} if args.default_effort else {}
    with tempfile.TemporaryDirectory(prefix="diffarc-export-") as tmp:
        step = copy_checkpoint(run, Path(tmp) / "ckpt")
        path = export(TrainConfig(**{**settings, "out": tmp}), args.name, weights_dir, extra_card=card,
                      precision=args.precision)
    print(f"exported {path} (step {step} of {settings['steps']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
