"""The networks and the diffusion maths: the hyperprior latent coder (``hyperprior_latent``), the conditional
U-Net (``unet``), the diffusion schedule and sampler (``diffusion``), the trainable models
(``networks``: CDC, hyperprior; ``restoration``: cdc-avif), the configs of their shared parts
(``config``; each family's own config sits in its module in ``model/codecs``), tiling helpers
(``tiling``), weights files (``weights_file``) and PSNR from an MSE (``psnr``). Nothing here knows the registry or a codec
(pyproject.toml's import contracts)."""
