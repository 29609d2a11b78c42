"""Train a codec family's network (cdc-avif, CDC, hyperprior) and optionally export it as registry weights.

    # CPU, in-process, 30-minute budget, resumable (rerun the same command to continue):
    python jobs/train.py --config cdc-s --data ../shared/data/train --out runs/cdc-s-q2 \\
        --lmbda 0.03 --lmbda-warmup 0 --warmup-steps 250 --final-step-fraction 0.5 \\
        --time-budget-min 30 --export cdc-s-q2

    # several GPUs or nodes through Ray Train (same loop, one worker per GPU):
    python jobs/train.py --config cdc-paper --data s3://bucket/train/shard-{000..099}.tar \\
        --num-workers 4 --use-gpu --out /mnt/runs/cdc-paper-q2

Checkpoints go to OUT/ckpt (weights as safetensors, optimiser state loadable with
torch.load(weights_only=True)); a rerun resumes from there. --init-from starts from committed weights.
Never train on Kodak: it is the evaluation set.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from model import named_sizes
from model.codecs.avif_base import EFFORTS
from model.weights import WEIGHTS_DIR
from model.training import TrainConfig, export, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--config", default=d.config, choices=sorted(named_sizes()), help="model size")
    p.add_argument("--data", nargs="+", required=True, help="image folders or WebDataset shard URLs")
    p.add_argument("--out", required=True, help="run folder (checkpoints, config)")
    p.add_argument("--lmbda", type=float, default=d.lmbda, help="target rate-distortion weight")
    p.add_argument("--lmbda-warmup", type=float, default=None, help="rate weight during warm-up")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--rho", type=float, default=d.rho, help="LPIPS weight (CDC; the paper's 0.9)")
    p.add_argument("--adversarial", type=float, default=d.adversarial,
                   help="cdc-avif: weight of a patch discriminator's loss (HiFiC-style realism decoder; "
                        "with --final-gammas 0 --final-step-fraction 1 --rho: a one-step realism decoder)")
    p.add_argument("--msssim", type=float, default=d.msssim,
                   help="cdc-avif: weight of 1 - MS-SSIM of the decoded image beside the MSE (a fidelity end "
                        "judged by structure too; SSIMULACRA2 and Butteraugli, which no loss uses, judge it)")
    p.add_argument("--critic-lr", type=float, default=d.critic_lr, help="the discriminator's learning rate")
    p.add_argument("--critic-scales", type=int, default=d.critic_scales,
                   help="with --adversarial: patch discriminators at this many scales (1, 1/2, 1/4 ...; "
                        "3 is HiFiC's and pix2pixHD's multi-scale discriminator)")
    p.add_argument("--final-step-fraction", type=float, default=d.final_step_fraction,
                   help="CDC: share of each batch at t = 1, where deterministic decoding starts")
    p.add_argument("--lpips-weights", default=None, help="complete LPIPS state dict (.pth)")
    p.add_argument("--steps", type=int, default=d.steps, help="total optimiser steps")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop", type=int, default=d.crop)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-decay-steps", type=int, default=d.lr_decay_steps,
                   help="the last N of --steps lower the learning rate to --final-lr (half a cosine; 0: constant)")
    p.add_argument("--final-lr", type=float, default=d.final_lr, help="the learning rate at the last step")
    p.add_argument("--ema", type=float, default=d.ema)
    p.add_argument("--clip", type=float, default=d.clip, help="gradient-norm clip")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop after this wall time")
    p.add_argument("--init-from", default=None, help="start from these weights (.safetensors)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--workers", type=int, default=d.workers, help="data-loading processes")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--base-dropout", type=float, default=None,
                   help="cdc-avif: share of samples trained without the base (default: the config's, 0.1)")
    p.add_argument("--final-gammas", type=lambda v: tuple(float(g) for g in v.split(",")), default=None,
                   help="cdc-avif: start-noise scales trained at t = 1, e.g. 0 (restoration only) or 0,0,0.8,1")
    p.add_argument("--pair-cache", default=None,
                   help="cdc-avif: folder for the AVIF training-pair cache, reused across runs (default OUT/pairs)")
    p.add_argument("--efforts", type=lambda v: tuple(v.split(",")), default=None,
                   help="cdc-avif: base-layer efforts of the training pairs in turn, comma-separated "
                        "(fast,medium,best; default fast)")
    p.add_argument("--pair-size", type=int, default=None, help="cdc-avif: side of the cached pairs (default 256)")
    p.add_argument("--pairs-per-image", type=int, default=None, help="cdc-avif: cached pairs per photo (default 4)")
    p.add_argument("--pair-qualities", type=lambda v: tuple(int(q) for q in v.split(",")), default=None,
                   metavar="LO,HI", help="cdc-avif: AVIF qualities of the cached pairs (default 5,75; a realism "
                                         "decoder for low rates: 1,16)")
    p.add_argument("--max-scale", type=float, default=d.max_scale,
                   help="photos are downscaled by at least 1/this before cropping, where large enough "
                        "(0.5: by 2, which removes the training JPEGs' own artefacts)")
    p.add_argument("--holdout-every", type=int, default=d.holdout_every,
                   help="never read 1 in N training files (by name hash), so evaluation can use them "
                        "(jobs/evaluate.py --held-out N); 0 reads all")
    p.add_argument("--default-steps", type=int, default=None,
                   help="decoding steps the exported card sets as default (default 8; cdc-avif 1)")
    p.add_argument("--default-effort", choices=tuple(EFFORTS), default=None,
                   help="cdc-avif: the base-layer effort the exported card sets as default (default fast)")
    p.add_argument("--export", metavar="NAME", help="write EMA weights as model/weights/NAME.safetensors")
    p.add_argument("--weights-dir", default=str(WEIGHTS_DIR), help="where --export writes")
    p.add_argument("--precision", choices=("fp16", "int8"), default="fp16",
                   help="how --export stores the weights: fp16, or int8 per output channel (half the bytes)")
    p.add_argument("--num-workers", type=int, default=0, help="Ray Train workers (0: train in-process)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per Ray Train worker")
    return p


LOSS_OPTIONS = ("base_dropout", "final_gammas")  # cdc-avif's loss keywords (TrainConfig.loss_options)
# cdc-avif's pair-cache keywords (TrainConfig.data_options): flag -> build_pair_cache argument
DATA_OPTIONS = {"efforts": "efforts", "pair_size": "size", "pairs_per_image": "per_image",
                "pair_qualities": "quality_range"}


def _config(args) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    loss = {k: v for k in LOSS_OPTIONS if (v := getattr(args, k)) is not None}
    data = {arg: v for flag, arg in DATA_OPTIONS.items() if (v := getattr(args, flag)) is not None}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names}, loss_options=loss,
                       data_cache=args.pair_cache, data_options=data)


def _ray_train(cfg: TrainConfig, num_workers: int, use_gpu: bool) -> dict:
    """The same loop under Ray Train; rank 0 writes checkpoints to the shared --out folder."""
    import ray.train
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer, prepare_model

    def loop(config: dict) -> None:
        c = TrainConfig(**config)
        if ray.train.get_context().get_world_rank() != 0:
            c.out = f"{c.out}/rank{ray.train.get_context().get_world_rank()}"
        train(c, report=ray.train.report, wrap=lambda m: prepare_model(m, move_to_device=False))

    trainer = TorchTrainer(loop, train_loop_config=vars(cfg),
                           scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu))
    return trainer.fit().metrics or {}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if any("kodak" in s.lower() for s in args.data):
        print("error: Kodak is the evaluation set; train on ../shared/data/train", file=sys.stderr)
        return 2
    cfg = _config(args)
    result = _ray_train(cfg, args.num_workers, args.use_gpu) if args.num_workers else train(cfg)
    print("done: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    if args.export:
        card = {k: v for k in ("default_steps", "default_effort") if (v := getattr(args, k)) is not None}
        path = export(cfg, args.export, Path(args.weights_dir), extra_card=card, precision=args.precision)
        print(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
