"""The training losses, by family: from what a network's ``forward`` gives (its predictions and its
latent's likelihoods) to the loss a step minimises and the figures it logs.

The loop calls the network (``net(*batch, ...)``: under Ray Train that is DDP's wrapper, whose call is
what syncs the gradients) and then the family's objective on its outputs. LPIPS and the discriminator
are not the network's parameters, so scoring its outputs with them outside its ``forward`` changes
nothing DDP syncs.

- cdc: min(SNR, 5)-weighted x0 MSE + lmbda * bpp [+ rho * LPIPS(x0_pred, x0)];
- hyperprior: compressai's convention, lmbda * 255**2 * MSE + bpp;
- cdc-avif: min(SNR, 5)-weighted x0 MSE over the scaled residual [+ rho * LPIPS on the images]
  [+ msssim * (1 - MS-SSIM) on the images]
  [+ adversarial * a patch discriminator's generator loss on (decoded, base)]; no rate term (the rate
  is the AVIF base layer's), so it takes no lmbda.

A family from another package whose network trains registers its objective with ``register_objective``
from its own training code, as its samples (``samples.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import nn

from ..nn.config import DiffusionConfig
from ..nn.psnr import psnr_from_mse
from .adversarial import generator_loss


@dataclass(frozen=True)
class Terms:
    """What a step's loss weighs besides the network's outputs: the rate's weight (``lmbda``, the latent
    codecs'), LPIPS's (``rho``) and its network, the discriminator and its weight (``adversarial``),
    1 - MS-SSIM's (``msssim``)."""

    lmbda: float = 0.0
    rho: float = 0.0
    perceptual: nn.Module | None = None
    critic: nn.Module | None = None
    adversarial: float = 0.0
    msssim: float = 0.0


def estimated_bpp(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Rate estimate for training: -log2 likelihood summed over y and z, per image pixel."""
    return sum(-torch.log2(lk).sum() for lk in likelihoods.values()) / num_pixels


def snr_weighted_mse(pred: torch.Tensor, target: torch.Tensor, snr: torch.Tensor, d: DiffusionConfig) -> torch.Tensor:
    """Each image's MSE weighted by its SNR, clamped to [``snr_floor``, ``snr_clip``], over the batch."""
    weight = snr.clamp(min=d.snr_floor, max=d.snr_clip)
    return (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()


def latent_diffusion(cfg, out: dict, batch: tuple, terms: Terms) -> dict:
    """CDC's loss (``CDCModel.forward``'s outputs)."""
    x, x0, x0_pred = batch[0], out["x0"], out["x0_pred"]
    diffusion = snr_weighted_mse(x0_pred, x0, out["snr"], cfg.diffusion)
    bpp = estimated_bpp(out["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
    total = diffusion + terms.lmbda * bpp
    parts = {"diffusion": diffusion, "bpp": bpp, "mse": F.mse_loss(x0_pred, x0).detach() / 4}
    if terms.rho > 0:
        lp = terms.perceptual(x0_pred.clamp(-1, 1), x0).mean()
        total = total + terms.rho * lp
        parts["lpips"] = lp
    parts["loss"] = total
    return parts


def rate_distortion(cfg, out: dict, batch: tuple, terms: Terms) -> dict:
    """The hyperprior's loss (``HyperpriorModel.forward``'s outputs)."""
    x = batch[0]
    mse = F.mse_loss(out["x_hat"], x)
    bpp = estimated_bpp(out["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
    return {"loss": terms.lmbda * 255**2 * mse + bpp, "bpp": bpp, "mse": mse.detach(),
            "psnr": psnr_from_mse(max(mse.item(), 1e-10), peak=1.0)}


def restoration(cfg, out: dict, batch: tuple, terms: Terms) -> dict:
    """cdc-avif's loss (``AvifRestorationModel.forward``'s outputs). With a discriminator, the parts also
    hold ``real``, ``fake`` and ``cond`` (detached), for the discriminator's step."""
    x, x_pred, base, has_base = batch[0], out["x_pred"], out["base"], out["has_base"]
    mse = snr_weighted_mse(out["r0_pred"], out["r0"], out["snr"], cfg.diffusion)
    parts = {"loss": mse, "mse": mse.detach()}
    # figure of merit: PSNR gain over the base of the one-step deterministic decodes in the batch
    det = out["one_step"]
    if det.any():
        gain = ((base - x) ** 2).mean(dim=(1, 2, 3)) / ((x_pred - x) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-12)
        parts["gain_db"] = (10 * torch.log10(gain[det])).mean().detach()
    keep = has_base > 0  # the perceptual, structure and adversarial terms judge images restored from a base
    if terms.rho > 0 and terms.perceptual is not None and keep.any():
        lp = terms.perceptual(x_pred[keep].clamp(-1, 1), x[keep]).mean()
        parts["loss"] = mse + terms.rho * lp
        parts["lpips"] = lp.detach()
    if terms.msssim > 0 and keep.any():
        score = ms_ssim_of_images(x_pred[keep], x[keep])
        parts["loss"] = parts["loss"] + terms.msssim * (1 - score)
        parts["msssim"] = score.detach()
    if terms.critic is not None and terms.adversarial > 0 and keep.any():
        fake, cond = x_pred[keep].clamp(-1, 1), base[keep]
        adv = generator_loss(terms.critic, fake, cond)
        parts["loss"] = parts["loss"] + terms.adversarial * adv
        parts.update(adv=adv.detach(), real=x[keep], fake=fake.detach(), cond=cond)
    return parts


def ms_ssim_of_images(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of images in [-1, 1], differentiable (pytorch-msssim; ``evaluation.metrics.ms_ssim`` is the
    judges' numpy one), over 5 scales with a 7-tap window: its 11-tap default needs sides over 160 px and
    the training crops are 128."""
    return ms_ssim((pred.clamp(-1, 1) + 1) / 2, (target + 1) / 2, data_range=1.0, win_size=7)


# family name -> (network config, forward's outputs, the batch, Terms) -> the step's parts ("loss" among them)
_OBJECTIVES: dict[str, Callable] = {"cdc": latent_diffusion, "hyperprior": rate_distortion, "cdc-avif": restoration}


def register_objective(family: str, objective: Callable) -> None:
    """Train ``family``'s networks on ``objective(cfg, out, batch, terms)``: a dict with the step's ``loss``."""
    _OBJECTIVES[family] = objective


def objective_for(family: str) -> Callable:
    """The loss ``family``'s networks train on."""
    if family not in _OBJECTIVES:
        raise KeyError(f"no training objective for the family {family!r}: its training code registers one "
                       "(model.training.objectives.register_objective)")
    return _OBJECTIVES[family]
