"""The training run's settings: one small dataclass, saved as train_config.json in the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    config: str = "cdc-s"  # a name in model.nn.config.CONFIGS
    data: list[str] = field(default_factory=list)  # image folders or WebDataset shard URLs
    out: str = "runs/cdc-s"
    lmbda: float = 0.01  # target rate weight (CDC: lmbda * bpp; hyperprior: compressai convention)
    lmbda_warmup: float | None = None  # smaller rate weight for the first warmup_steps
    warmup_steps: int = 0
    rho: float = 0.0  # LPIPS weight (CDC only)
    final_step_fraction: float = 0.0  # diffusion codecs: share of each batch trained at t = 1
    lpips_weights: str | None = None  # default: ../shared/data/perceptual/lpips_alex.pth when present
    steps: int = 10_000
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-4
    aux_lr: float = 1e-3
    ema: float = 0.999
    clip: float = 1.0
    time_budget_min: float | None = None  # stop (and save) after this much wall time
    init_from: str | None = None  # a .safetensors to start from (e.g. committed weights)
    checkpoint_every: int = 200
    seed: int = 0
    workers: int = 1  # data-loading processes
    base_dropout: float | None = None  # cdc-avif: share of samples without the base (default: the config's)
    final_gammas: tuple[float, ...] | None = None  # cdc-avif: start-noise scales at t = 1 (0 alone: restoration)
    pair_cache: str | None = None  # cdc-avif: folder of the AVIF training-pair cache (default OUT/pairs)
    efforts: tuple[str, ...] = ("fast",)  # cdc-avif: base-layer efforts in the pair cache, in turn
    pair_size: int = 256  # cdc-avif: side of the cached pairs (training crops are cut from them)
    pairs_per_image: int = 4  # cdc-avif: cached pairs per training photo
    max_scale: float = 0.75  # largest downscale factor's inverse before cropping (0.5: by 2 at least)
    holdout_every: int = 0  # 1 in N training files by name hash is never read (0: read all)
