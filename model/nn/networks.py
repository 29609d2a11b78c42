"""The two trainable codecs: CDC and the Ballé 2018 hyperprior baseline.

Both expose the same four things, which is all the codec wrapper and the training job use:
``analysis(x)`` (image in [0, 1] -> y), ``latent`` (a ``LatentCoder``), ``reconstruct(y_hat, steps,
x_start)`` (-> image in [0, 1]) and ``loss(x, lmbda, rho, perceptual)`` for training.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from .config import CDCConfig, HyperpriorConfig
from .diffusion import ddim_sample, training_loss
from .latent import CompressionModel, LatentCoder, analysis_transform, synthesis_transform
from .psnr import psnr_from_mse
from .unet import ConditionalUNet


def bits_per_pixel(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Rate estimate for training: -log2 likelihood summed over y and z, per image pixel."""
    return sum(-torch.log2(lk).sum() for lk in likelihoods.values()) / num_pixels


class _LatentModel(CompressionModel):
    """What both codecs share: g_a, the latent coder, and forward() = loss() for DDP."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.g_a = analysis_transform(cfg.latent)
        self.latent = LatentCoder(cfg.latent)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        return self.g_a(x)

    def forward(self, x: torch.Tensor, lmbda: float, rho: float = 0.0, perceptual=None, **kw) -> dict:
        return self.loss(x, lmbda, rho, perceptual, **kw)  # forward() so that DDP syncs gradients


class CDCModel(_LatentModel):
    """Conditional diffusion codec: y_hat conditions a U-Net that denoises from x_N to x0."""

    stochastic_decoder = True

    def __init__(self, cfg: CDCConfig):
        super().__init__(cfg)
        self.unet = ConditionalUNet(cfg.unet, cfg.latent.latent_channels)

    def reconstruct(self, y_hat: torch.Tensor, steps: int, x_start: torch.Tensor) -> torch.Tensor:
        """DDIM decode in ``steps`` steps from x_N = ``x_start`` (zeros or gamma * noise)."""
        ctx = self.unet.context(y_hat)
        x0 = ddim_sample(lambda x_t, t: self.unet(x_t, t, ctx), x_start, steps, self.cfg.diffusion)
        return (x0 + 1) / 2

    def loss(self, x: torch.Tensor, lmbda: float, rho: float = 0.0, perceptual=None,
             final_step_fraction: float = 0.0) -> dict:
        """min(SNR, 5)-weighted x0 MSE  +  lmbda * bpp  [+ rho * LPIPS(x0_pred, x0)]."""
        y_hat, likelihoods = self.latent(self.g_a(x))
        ctx = self.unet.context(y_hat)
        x0 = x * 2 - 1
        diffusion, x0_pred = training_loss(lambda x_t, t: self.unet(x_t, t, ctx), x0, self.cfg.diffusion,
                                           final_step_fraction)
        bpp = bits_per_pixel(likelihoods, x.shape[0] * x.shape[2] * x.shape[3])
        total = diffusion + lmbda * bpp
        out = {"diffusion": diffusion, "bpp": bpp, "mse": F.mse_loss(x0_pred, x0).detach() / 4}
        if rho > 0:
            lp = perceptual(x0_pred.clamp(-1, 1), x0).mean()
            total = total + rho * lp
            out["lpips"] = lp
        out["loss"] = total
        return out


class HyperpriorModel(_LatentModel):
    """compressai's ScaleHyperprior architecture (Ballé 2018), with our exact latent coder."""

    stochastic_decoder = False

    def __init__(self, cfg: HyperpriorConfig):
        super().__init__(cfg)
        self.g_s = synthesis_transform(cfg.latent)

    def reconstruct(self, y_hat: torch.Tensor, steps: int, x_start: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat).clamp(0, 1)

    def loss(self, x: torch.Tensor, lmbda: float, rho: float = 0.0, perceptual=None, **_) -> dict:
        """compressai's convention: lmbda * 255**2 * MSE + bpp."""
        y_hat, likelihoods = self.latent(self.g_a(x))
        x_hat = self.g_s(y_hat)
        mse = F.mse_loss(x_hat, x)
        bpp = bits_per_pixel(likelihoods, x.shape[0] * x.shape[2] * x.shape[3])
        return {"loss": lmbda * 255**2 * mse + bpp, "bpp": bpp, "mse": mse.detach(),
                "psnr": psnr_from_mse(max(mse.item(), 1e-10), peak=1.0)}

