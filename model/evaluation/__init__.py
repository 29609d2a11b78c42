"""Evaluation as a library: what is measured (``sweep``: codec names, option sweeps, RD points),
``metrics`` (PSNR, MS-SSIM, LPIPS), ``rd`` (averages, curves, BD-rate via ``bdrate``), ``results``
(JSON, CSV, card figures), ``report`` (RD plots, gallery, summary table), ``inputs`` (image
folders or shards) and ``benchmark`` (codec speed). ``jobs/evaluate.py`` is the script over it."""
