"""Training: random crops of natural photos -> rate-distortion loss -> Adam with EMA weights.

The loop is one function, ``train``, that runs the same way in-process (CPU or one GPU) and as the
per-worker function of Ray Train's ``TorchTrainer`` (several GPUs or nodes).
"""

from __future__ import annotations

import copy
import glob
import io
import json
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, IterableDataset

from .config import CONFIGS
from .images import to_rgb8
from .networks import build_model
from .neural import load_model, save_weights

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class TrainConfig:
    config: str = "cdc-s"  # a name in model.config.CONFIGS
    data: list[str] = field(default_factory=list)  # image folders or WebDataset shard URLs
    out: str = "runs/cdc-s"
    lmbda: float = 0.01  # target rate weight (CDC: lmbda * bpp; hyperprior: compressai convention)
    lmbda_warmup: float | None = None  # smaller rate weight for the first warmup_steps
    warmup_steps: int = 0
    rho: float = 0.0  # LPIPS weight (CDC only)
    final_step_fraction: float = 0.0  # CDC: share of each batch trained at t = 1 (see diffusion.py)
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


# ----- data -------------------------------------------------------------------------------------
class RandomCrops(IterableDataset):
    """Endless random crops from image folders or WebDataset shards, as float tensors in [0, 1].

    Each photo is first downscaled by a random factor with antialiasing: the training photos are
    JPEGs, and downscaling hides the blocking that the codec would otherwise learn to reproduce.
    """

    def __init__(self, sources: list[str], crop: int, seed: int):
        self.files = sorted(f for s in sources if not _is_shard(s) for f in _image_files(s))
        self.shards = [s for s in sources if _is_shard(s)]
        if not self.files and not self.shards:
            raise FileNotFoundError(f"no training images found in {sources} (folders of {IMAGE_EXTENSIONS})")
        self.crop, self.seed = crop, seed

    def _images(self, rng: random.Random):
        if self.shards:
            import webdataset as wds

            while True:
                for sample in wds.WebDataset(self.shards, shardshuffle=len(self.shards), seed=rng.random()):
                    for key, value in sample.items():
                        if key.lower().lstrip(".").split(".")[-1] in ("jpg", "jpeg", "png", "webp"):
                            yield Image.open(io.BytesIO(value))
        while True:
            yield Image.open(rng.choice(self.files))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = random.Random(self.seed * 1000 + (info.id if info else 0) + os.getpid())
        for img in self._images(rng):
            try:
                rgb = to_rgb8(img)
            except Exception:
                continue  # a broken training image is skipped, not fatal
            yield self._crop(Image.fromarray(rgb), rng)

    def _crop(self, img: Image.Image, rng: random.Random) -> torch.Tensor:
        w, h = img.size
        short = min(w, h)
        target = rng.uniform(self.crop, max(self.crop, 0.75 * short))
        scale = target / short
        img = img.resize((max(self.crop, round(w * scale)), max(self.crop, round(h * scale))), Image.LANCZOS)
        w, h = img.size
        left, top = rng.randint(0, w - self.crop), rng.randint(0, h - self.crop)
        img = img.crop((left, top, left + self.crop, top + self.crop))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255


def _is_shard(source: str) -> bool:
    return source.endswith(".tar") or "://" in source or "{" in source


def _image_files(folder: str) -> list[str]:
    return [f for f in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
            if f.lower().endswith(IMAGE_EXTENSIONS)]


# ----- checkpoints ------------------------------------------------------------------------------
def _save_checkpoint(out: Path, model, ema, opt, aux_opt, step: int, elapsed: float) -> None:
    """Weights as safetensors; optimiser state through torch.save (loaded with weights_only=True)."""
    tmp = out / "ckpt.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"))
    torch.save({"opt": opt.state_dict(), "aux": aux_opt.state_dict()}, tmp / "optim.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed}))
    final = out / "ckpt"
    if final.exists():
        final.rename(out / "ckpt.old")
    tmp.rename(final)
    old = out / "ckpt.old"
    if old.exists():
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def _load_checkpoint(out: Path, model, ema, opt, aux_opt) -> tuple[int, float]:
    ckpt = out / "ckpt"
    if not (ckpt / "state.json").exists():
        return 0, 0.0
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    ema.load_state_dict(load_file(str(ckpt / "ema.safetensors")))
    optim = torch.load(ckpt / "optim.pt", weights_only=True)
    opt.load_state_dict(optim["opt"])
    aux_opt.load_state_dict(optim["aux"])
    state = json.loads((ckpt / "state.json").read_text())
    return state["step"], state["elapsed_s"]


# ----- the loop ---------------------------------------------------------------------------------
def _optimisers(model, cfg: TrainConfig):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=cfg.lr), torch.optim.Adam(aux, lr=cfg.aux_lr)


def train(cfg: TrainConfig, report=None, wrap=None) -> dict:
    """Train until ``steps`` or the time budget; returns the last logged figures.

    ``report(metrics)`` is called at every log step and ``wrap(model)`` may wrap the model for
    data parallelism (Ray Train passes ``ray.train.report`` and ``ray.train.torch.prepare_model``).
    """
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(Path(cfg.init_from)) if cfg.init_from else build_model(CONFIGS[cfg.config])
    model = model.to(device, memory_format=torch.channels_last).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt, aux_opt = _optimisers(model, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    step, elapsed0 = _load_checkpoint(out, model, ema, opt, aux_opt)
    net = wrap(model) if wrap else model

    perceptual = None
    if cfg.rho > 0:
        from .metrics import load_lpips

        from .metrics import DEFAULT_LPIPS_PATH

        perceptual = load_lpips(cfg.lpips_weights or DEFAULT_LPIPS_PATH, device=device)

    loader = DataLoader(RandomCrops(cfg.data, cfg.crop, cfg.seed + step), batch_size=cfg.batch_size,
                        num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    batches = iter(loader)
    start = time.time()
    figures: dict = {}
    bar = tqdm(total=cfg.steps, initial=step, desc=Path(cfg.out).name, unit="step", dynamic_ncols=True)
    while step < cfg.steps:
        if cfg.time_budget_min and time.time() - start > cfg.time_budget_min * 60:
            bar.write(f"time budget of {cfg.time_budget_min} min reached at step {step}")
            break
        x = next(batches).to(device, memory_format=torch.channels_last)
        lmbda = cfg.lmbda_warmup if (cfg.lmbda_warmup is not None and step < cfg.warmup_steps) else cfg.lmbda
        parts = net(x, lmbda, cfg.rho, perceptual, final_step_fraction=cfg.final_step_fraction)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        aux_opt.zero_grad(set_to_none=True)
        model.aux_loss().backward()
        aux_opt.step()
        # EMA warm-up: early on the average would be mostly the random initialisation
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        step += 1
        figures = {k: float(v) for k, v in parts.items()}
        figures["psnr_est"] = -10 * math.log10(max(figures["mse"], 1e-10))
        bar.update(1)
        bar.set_postfix(loss=f"{figures['loss']:.4f}", bpp=f"{figures['bpp']:.3f}",
                        psnr=f"{figures['psnr_est']:.2f}", lmbda=lmbda)
        if report and step % 50 == 0:
            report({**figures, "step": step})
        if step % cfg.checkpoint_every == 0:
            _save_checkpoint(out, model, ema, opt, aux_opt, step, elapsed0 + time.time() - start)
    bar.close()
    _save_checkpoint(out, model, ema, opt, aux_opt, step, elapsed0 + time.time() - start)
    return {**figures, "step": step, "elapsed_s": elapsed0 + time.time() - start}


def export(cfg: TrainConfig, name: str, weights_dir: Path, extra_card: dict | None = None) -> Path:
    """Write the EMA weights of a run as ``weights_dir/NAME.safetensors`` with its card."""
    out = Path(cfg.out)
    state = json.loads((out / "ckpt" / "state.json").read_text())
    model = load_model(Path(cfg.init_from)) if cfg.init_from else build_model(CONFIGS[cfg.config])
    model.load_state_dict(load_file(str(out / "ckpt" / "ema.safetensors")))
    card = {
        "name": name,
        "description": f"{cfg.config}, lambda={cfg.lmbda}, rho={cfg.rho}",
        "lmbda": cfg.lmbda, "rho": cfg.rho, "steps_trained": state["step"],
        "wall_time_s": round(state["elapsed_s"]), "batch_size": cfg.batch_size, "crop": cfg.crop,
        "data": cfg.data, "hardware": _hardware(), "default_steps": 8,
        **(extra_card or {}),
    }
    path = Path(weights_dir) / f"{name}.safetensors"
    save_weights(model, path, card)
    return path


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.machine()} CPU x{os.cpu_count()}"
