"""The training run's settings: one small dataclass, saved as train_config.json in the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    config: str = "cdc-s"  # a family's named size (model.zoo.named_sizes: cdc-s, cdc-avif-s, ...)
    data: list[str] = field(default_factory=list)  # image folders or WebDataset shard URLs
    out: str = "runs/cdc-s"
    lmbda: float = 0.01  # target rate weight (CDC: lmbda * bpp; hyperprior: compressai convention)
    lmbda_warmup: float | None = None  # smaller rate weight for the first warmup_steps
    warmup_steps: int = 0
    rho: float = 0.0  # LPIPS weight (CDC, cdc-avif)
    adversarial: float = 0.0  # weight of a patch discriminator's generator loss (cdc-avif; training/adversarial.py)
    msssim: float = 0.0  # weight of 1 - MS-SSIM on the images (cdc-avif: a fidelity end judged beyond PSNR)
    critic_lr: float = 1e-4  # the discriminator's Adam rate
    critic_scales: int = 1  # discriminators at 1, 1/2, 1/4 ... of the image (1: one patch discriminator)
    final_step_fraction: float = 0.0  # diffusion codecs: share of each batch trained at t = 1
    lpips_weights: str | None = None  # default: ../shared/data/perceptual/lpips_alex.pth when present
    steps: int = 10_000
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-4
    # the last lr_decay_steps before ``steps`` lower the rate to final_lr (half a cosine); 0: constant.
    # Set on every step, so a resumed run follows the schedule whatever rate its optimiser state saved.
    lr_decay_steps: int = 0
    final_lr: float = 0.0
    aux_lr: float = 1e-3
    ema: float = 0.999
    clip: float = 1.0
    time_budget_min: float | None = None  # stop (and save) after this much wall time
    init_from: str | None = None  # a .safetensors to start from (e.g. committed weights)
    checkpoint_every: int = 200
    seed: int = 0
    workers: int = 1  # data-loading processes
    # keyword arguments of the network's training loss beyond the shared ones (cdc-avif: base_dropout,
    # final_gammas; see its network's forward)
    loss_options: dict = field(default_factory=dict)
    data_cache: str | None = None  # folder of prepared training samples, e.g. AVIF pairs (default OUT/pairs)
    # keyword arguments of the prepared samples' builder (cdc-avif: efforts, size, per_image; see
    # training/avif_pairs.build_pair_cache)
    data_options: dict = field(default_factory=dict)
    max_scale: float = 0.75  # photos are downscaled by at least 1/max_scale before cropping (where large enough)
    holdout_every: int = 0  # 1 in N training files by name hash is never read (0: read all)
