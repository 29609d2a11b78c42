"""The two trainable codecs: CDC and the Ballé 2018 hyperprior baseline.

Both expose the same four things, which is all the codec wrapper and the training job use:
``analysis(x)`` (image in [0, 1] -> y), ``latent`` (a ``LatentCoder``), ``reconstruct(y_hat, steps,
x_start)`` (-> image in [0, 1]) and ``forward(x)``, what the training loss needs (the latent's
likelihoods and the prediction; the losses are the training side's, ``model.training.objectives``).
"""

from __future__ import annotations


import torch

from .config import CDCConfig, HyperpriorConfig
from .diffusion import ddim_sample, training_prediction
from .hyperprior_latent import CompressionModel, LatentCoder, analysis_transform, synthesis_transform
from .unet import ConditionalUNet


class _LatentModel(CompressionModel):
    """What both codecs share: g_a and the latent coder."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.g_a = analysis_transform(cfg.latent)
        self.latent = LatentCoder(cfg.latent)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        return self.g_a(x)


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

    def forward(self, x: torch.Tensor, final_step_fraction: float = 0.0) -> dict:
        """A training step's outputs: the latent's ``likelihoods``, the target ``x0`` (``x`` in [-1, 1]),
        ``x0_pred`` from x_t at a random t and each image's ``snr`` there (``diffusion.training_prediction``)."""
        y_hat, likelihoods = self.latent(self.g_a(x))
        ctx = self.unet.context(y_hat)
        x0 = x * 2 - 1
        x0_pred, snr = training_prediction(lambda x_t, t: self.unet(x_t, t, ctx), x0, self.cfg.diffusion,
                                           final_step_fraction)
        return {"likelihoods": likelihoods, "x0": x0, "x0_pred": x0_pred, "snr": snr}


class HyperpriorModel(_LatentModel):
    """compressai's ScaleHyperprior architecture (Ballé 2018), with our exact latent coder."""

    stochastic_decoder = False

    def __init__(self, cfg: HyperpriorConfig):
        super().__init__(cfg)
        self.g_s = synthesis_transform(cfg.latent)

    def reconstruct(self, y_hat: torch.Tensor, steps: int, x_start: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat).clamp(0, 1)

    def forward(self, x: torch.Tensor, **_) -> dict:
        """A training step's outputs (compressai's): the reconstruction ``x_hat`` and the latent's
        ``likelihoods``; what a diffusion's step takes (``final_step_fraction``) means nothing here."""
        y_hat, likelihoods = self.latent(self.g_a(x))
        return {"x_hat": self.g_s(y_hat), "likelihoods": likelihoods}
