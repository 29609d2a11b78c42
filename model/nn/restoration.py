"""The cdc-avif network: a conditional denoiser that restores what the AVIF base layer removed.

The diffusion runs over the residual r = x - base, scaled by ``residual_scale`` (AVIF residuals are
small), so the network learns only what the base lost. It predicts r0 from (r_t, base, t, AVIF
quality); a zero output head means an untrained network returns the base exactly. With probability
``base_dropout`` in training the base is zeros and the quality a "no base" flag, so the same network
is also an unconditional prior over images (r = x then, scale 1).

Cost at full resolution stays low through a pixel-unshuffle stem: the first level already runs at
1/2 resolution. Images live in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import RestorationConfig
from .diffusion import alpha_bar, ddim_sample
from .unet import ChannelNorm, ResBlock, time_embedding

# r_N scales trained at t = 1: 0 is the one-step deterministic (MSE) decode, so it gets half
FINAL_STEP_GAMMAS = (0.0, 0.0, 0.8, 1.0)


class RestorationUNet(nn.Module):
    """(r_t, base, t, quality, has_base) -> predicted r0, in the scaled residual domain."""

    def __init__(self, cfg: RestorationConfig):
        super().__init__()
        self.cfg = cfg
        e, w = cfg.emb, cfg.widths
        # time and quality features, plus a has-base flag (base dropout makes an unconditional prior)
        self.embed = nn.Sequential(nn.Linear(2 * (e // 2) + 1 + cfg.settings_features, e), nn.SiLU(),
                                   nn.Linear(e, e))
        u, norm = cfg.unshuffle, cfg.norm == "layer"
        self.stem = nn.Conv2d(2 * 3 * u * u, w[0], 3, padding=1)  # pixel-unshuffled r_t and base
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        cin = w[0]
        for lvl, (ch, n) in enumerate(zip(w, cfg.blocks)):
            self.down.append(nn.ModuleList(ResBlock(cin if i == 0 else ch, ch, e, norm) for i in range(n)))
            cin = ch
            if lvl < len(w) - 1:
                self.downsample.append(nn.Conv2d(ch, w[lvl + 1], 3, stride=2, padding=1))
                cin = w[lvl + 1]
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for lvl in reversed(range(len(w) - 1)):
            self.upsample.append(nn.ConvTranspose2d(w[lvl + 1], w[lvl], 4, stride=2, padding=1))
            self.up.append(ResBlock(2 * w[lvl], w[lvl], e, norm))
        self.head = nn.Sequential(ChannelNorm(w[0]) if norm else nn.Identity(), nn.SiLU(),
                                  nn.Conv2d(w[0], 3 * u * u, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # untrained network = the AVIF base, exactly
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, r_t, base, t, quality, has_base, settings=None):
        """quality in [0, 100]; has_base a 0/1 float per image (0: base is zeros, quality ignored);
        settings: B x ``settings_features`` (``BaseSettings.features``), ignored when the config has none."""
        half = self.cfg.emb // 2
        parts = [time_embedding(t, half), time_embedding(quality / 100.0, half) * has_base[:, None],
                 has_base[:, None]]
        if self.cfg.settings_features:
            if settings is None:
                settings = torch.zeros(t.shape[0], self.cfg.settings_features, device=t.device)
            parts.append(settings.to(t.dtype) * has_base[:, None])
        emb = self.embed(torch.cat(parts, dim=1))
        u = self.cfg.unshuffle
        h = self.stem(F.pixel_unshuffle(torch.cat([r_t, base], dim=1), u))
        skips = []
        for lvl, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            if lvl < len(self.downsample):
                skips.append(h)
                h = self.downsample[lvl](h)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips)):
            h = block(torch.cat([upsample(h), skip], dim=1), emb)
        return F.pixel_shuffle(self.head(h), u)


class AvifRestorationModel(nn.Module):
    """The trainable model: the denoiser, a training step's outputs (``forward``) and ``restore``."""

    def __init__(self, cfg: RestorationConfig):
        super().__init__()
        self.cfg = cfg
        self.denoiser = RestorationUNet(cfg)

    @property
    def pad_multiple(self) -> int:
        """Input sides must be multiples of this (the stem divides by ``unshuffle``, each further level halves)."""
        return self.cfg.unshuffle * 2 ** (len(self.cfg.widths) - 1)

    @torch.no_grad()
    def restore(self, base, quality, r_start, steps: int, t_start: float = 1.0, settings=None, eta: float = 0.0,
                step_noise=None):
        """base + the residual DDIM decodes from ``r_start`` at ``t_start`` (images in [-1, 1]);
        ``eta`` > 0 adds ``step_noise(i)`` at each step (``ddim_sample``)."""
        has_base = torch.ones(base.shape[0], device=base.device)
        r0 = ddim_sample(lambda r_t, t: self.denoiser(r_t, base, t, quality, has_base, settings), r_start, steps,
                         self.cfg.diffusion, t_start=t_start, clip=None, eta=eta, step_noise=step_noise)
        return base + r0 / self.cfg.residual_scale

    def forward(self, x, base, quality, settings=None, final_step_fraction: float = 0.6,
                generator: torch.Generator | None = None, base_dropout: float | None = None,
                final_gammas: tuple[float, ...] = FINAL_STEP_GAMMAS) -> dict:
        """A training step's outputs, what its loss needs (``model.training.objectives``): the scaled
        residual ``r0`` and its prediction ``r0_pred`` from r_t at a random t, each image's ``snr`` there,
        the predicted image ``x_pred``, the ``base`` it was given (zeros where dropped), ``has_base`` (1 or
        0 per image) and ``one_step``, the images whose input was the one-step deterministic decode's.

        ``final_step_fraction`` of the batch sits at t = 1 with r_N = gamma * noise (gamma mostly 0:
        the one-step deterministic decode that the MSE model is judged by); the rest is spread over
        t, so multi-step and stochastic decodes (and DiffC's reverse process) are trained too.
        ``base_dropout`` overrides the config's; ``final_gammas`` = (0,) trains only the
        deterministic one-step decode (a restoration network). ``settings``: B x 3 features of the
        bases' encoder settings.
        """
        cfg, b, dev = self.cfg, x.shape[0], x.device
        uniform = lambda: torch.rand(b, generator=generator).to(dev)  # noqa: E731
        has_base = (uniform() >= (cfg.base_dropout if base_dropout is None else base_dropout)).float()
        base = base * has_base[:, None, None, None]
        scale = torch.where(has_base > 0, cfg.residual_scale, 1.0)[:, None, None, None]
        r0 = (x - base) * scale
        d = cfg.diffusion
        n = torch.randint(1, d.train_steps + 1, (b,), generator=generator).to(dev)
        final = uniform() < final_step_fraction
        t = torch.where(final, torch.full_like(n, d.train_steps), n).float() / d.train_steps
        ab = alpha_bar(t, d)[:, None, None, None]
        gammas = torch.tensor(final_gammas)[torch.randint(len(final_gammas), (b,), generator=generator)]
        noise_scale = torch.where(final.cpu(), gammas, torch.ones(b)).to(dev)
        noise = torch.randn(x.shape, generator=generator).to(dev) * noise_scale[:, None, None, None]
        # at t = 1 the input is exactly what decoding starts from, gamma * noise: alpha_bar(1) is
        # clamped above 0, and even sqrt(1e-6) * r0 leaks the answer when gamma = 0
        signal = torch.where(final[:, None, None, None], torch.zeros_like(ab), ab.sqrt())
        r0_pred = self.denoiser(signal * r0 + (1 - ab).sqrt() * noise, base, t, quality, has_base, settings)
        return {"r0": r0, "r0_pred": r0_pred, "snr": (ab / (1 - ab)).flatten(), "x_pred": base + r0_pred / scale,
                "base": base, "has_base": has_base, "one_step": final & (noise_scale == 0) & (has_base > 0)}
