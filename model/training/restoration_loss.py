"""Training the AVIF base-layer denoiser: x0 loss over the scaled residual, base dropout, EMA.

Each sample is a (photo crop, AVIF decode, quality) triple from the pair cache. A share of each
batch (``final_step_fraction``) sits at t = 1 with r_N = gamma * noise, gamma mostly 0: that is the
one-step deterministic decode, the distortion end the MSE model is judged by. The rest is spread
over t, so multi-step and stochastic decodes (and DiffC, which needs the whole reverse process)
are trained too. ``base_dropout`` of the samples lose their base: the unconditional prior.
"""

from __future__ import annotations

import torch

from ..nn.diffusion import alpha_bar
from ..nn.restoration import RestorationConfig

FINAL_STEP_GAMMAS = (0.0, 0.0, 0.8, 1.0)  # r_N scales trained at t = 1; 0 is the MSE decode


def restoration_loss(net, x, base, quality, cfg: RestorationConfig, base_dropout: float = 0.1,
                     final_step_fraction: float = 0.6, perceptual=None, rho: float = 0.0,
                     final_gammas: tuple[float, ...] = FINAL_STEP_GAMMAS,
                     generator: torch.Generator | None = None) -> dict:
    """min(SNR, 5)-weighted x0 MSE in the scaled residual domain [+ rho * LPIPS on images]."""
    b, dev = x.shape[0], x.device
    rand = lambda *s: torch.rand(*s, generator=generator).to(dev)  # noqa: E731
    has_base = (rand(b) >= base_dropout).float()
    base = base * has_base[:, None, None, None]
    scale = torch.where(has_base > 0, cfg.residual_scale, 1.0)[:, None, None, None]
    r0 = (x - base) * scale

    d = cfg.diffusion
    n = torch.randint(1, d.train_steps + 1, (b,), generator=generator).to(dev)
    final = rand(b) < final_step_fraction
    n = torch.where(final, torch.full_like(n, d.train_steps), n)
    t = n.float() / d.train_steps
    ab = alpha_bar(t, d)[:, None, None, None]
    gammas = torch.tensor(final_gammas)[torch.randint(len(final_gammas), (b,), generator=generator)]
    noise_scale = torch.where(final.cpu(), gammas, torch.ones(b)).to(dev)[:, None, None, None]
    noise = torch.randn(x.shape, generator=generator).to(dev) * noise_scale
    r_t = ab.sqrt() * r0 + (1 - ab).sqrt() * noise
    r0_pred = net(r_t, base, t, quality, has_base)

    snr = (ab / (1 - ab)).flatten()
    weight = snr.clamp(min=d.snr_floor, max=d.snr_clip)
    per_image = ((r0_pred - r0) ** 2).mean(dim=(1, 2, 3))
    loss = (weight * per_image).mean()
    x_pred = base + r0_pred / scale
    # figure of merit: image-space MSE of the one-step deterministic decodes in this batch
    mse_x = ((x_pred - x) ** 2).mean(dim=(1, 2, 3)) / 4  # [-1, 1] -> [0, 1] units
    det = final & (noise_scale.flatten() == 0) & (has_base > 0)
    base_mse = ((base - x) ** 2).mean(dim=(1, 2, 3)) / 4
    parts = {"mse": (weight * per_image).mean().detach(),
             "det_mse": mse_x[det].mean().detach() if det.any() else torch.tensor(float("nan")),
             "det_base_mse": base_mse[det].mean().detach() if det.any() else torch.tensor(float("nan"))}
    if rho > 0 and perceptual is not None:
        keep = has_base > 0
        lp = perceptual(x_pred[keep].clamp(-1, 1), x[keep]).mean()
        loss = loss + rho * lp
        parts["lpips"] = lp.detach()
    parts["loss"] = loss
    return parts
