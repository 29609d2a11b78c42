"""The networks: the hyperprior latent coder (``latent``), the conditional U-Net (``unet``), the
diffusion schedule and sampler (``diffusion``), the trainable models (``networks``), their configs
(``config``), tiling helpers (``tiling``) and weights files (``weights_file``)."""
