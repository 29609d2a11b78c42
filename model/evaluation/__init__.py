"""Evaluation as a library: what is measured (``sweep``: codec names, option sweeps, RD points),
``metrics`` (PSNR, MS-SSIM, LPIPS per network), ``rd`` (averages, curves, BD-rate via ``bdrate``),
``anchor`` (each point against the anchor at the same bpp), ``results`` (JSON, CSV, markdown,
card figures), ``report`` (RD plots, gallery, summary tables), ``inputs`` (image folders or shards),
``benchmark`` (codec speed; ``benchmark_avif``: cdc-avif against AVIF itself; ``network_cost``: MACs, seconds;
``target_psnr``: rate control against one fixed quality) and
``extra`` (the judges of pyproject's ``eval`` extra, and the plots, imported only where used).
``jobs/evaluate.py`` is the script over it."""
