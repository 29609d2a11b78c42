"""Image quality metrics on 8-bit RGB: PSNR, MS-SSIM, SSIMULACRA2 and LPIPS.

All take uint8 arrays of shape H x W x 3 (decoded images go through ``np.asarray(img.convert("RGB"))``).

MS-SSIM needs at least 161 pixels on the short side (5 scales of an 11-tap window); below that
``ms_ssim`` returns NaN rather than a single-scale SSIM, so an average never mixes two metrics.

LPIPS: ``load_lpips`` returns the frozen ``lpips.LPIPS`` module itself, so training can call it
as a differentiable loss on tensors in [-1, 1]; ``lpips_distance`` wraps it for uint8 arrays.
Evaluations measure every network of ``LPIPS_NETS`` whose weights they find (``lpips_weight_files``):
a network no training loss used is the evidence a perceptual claim needs.

Butteraugli and SSIMULACRA (``TOOL_METRICS``) come from libjxl's tools (Debian's libjxl-devtools:
``butteraugli_main``, ``ssimulacra_main``), run on temporary PNG files. No training loss here uses
them, so they judge perceptual claims; ``usable_tool_metrics`` skips a metric whose tool is missing
with a message naming the package. Lower is better for both. SSIMULACRA2 (``ssimulacra2``, measured
with them as metric ``ssimulacra2``, ``SCORE_NAMES``) is a score: higher is better.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..nn.psnr import psnr_from_mse
from .extra import import_extra

MS_SSIM_MIN_SIDE = 161  # pytorch-msssim asserts short side > (win_size - 1) * 2**4


def default_lpips_path(net: str = "alex") -> Path | None:
    """``../shared/data/perceptual/lpips_{net}.pth`` beside the repository, if it is there."""
    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "perceptual" / f"lpips_{net}.pth"
    return path if path.exists() else None


DEFAULT_LPIPS_PATH = default_lpips_path()
DEFAULT_PERCEPTUAL_DIR = DEFAULT_LPIPS_PATH.parent if DEFAULT_LPIPS_PATH else None

LPIPS_NETS = ("alex", "squeeze")


def lpips_column(net: str) -> str:
    """The result column of an LPIPS network: ``lpips`` stays alex's (older results), others ``lpips_<net>``."""
    return "lpips" if net == "alex" else f"lpips_{net}"


LPIPS_COLUMNS = tuple(lpips_column(n) for n in LPIPS_NETS)
LPIPS_NAMES = {lpips_column(n): f"LPIPS-{n}" for n in LPIPS_NETS}  # column -> label in tables and plots


# metric -> (tool, result columns); butteraugli: the max-norm distance and the 3-norm (an average)
TOOL_METRICS = {"butteraugli": ("butteraugli_main", ("butteraugli", "butteraugli_p3")),
                "ssimulacra": ("ssimulacra_main", ("ssimulacra",))}
TOOL_COLUMNS = tuple(c for _, cols in TOOL_METRICS.values() for c in cols)
TOOL_NAMES = {"butteraugli": "Butteraugli", "butteraugli_p3": "Butteraugli-3n", "ssimulacra": "SSIMULACRA"}
PERCEPTUAL_COLUMNS = (*LPIPS_COLUMNS, *TOOL_COLUMNS)  # lower is better: compared as ratios
# Judges measured in this process, asked for like the tools (--metrics): scores, higher is better, so
# never compared as ratios; BD-rate takes any monotonic axis as it is.
SCORE_NAMES = {"ssimulacra2": "SSIMULACRA2"}
SCORE_COLUMNS = tuple(SCORE_NAMES)
PERCEPTUAL_NAMES = {**LPIPS_NAMES, **TOOL_NAMES}


def usable_tool_metrics(names) -> tuple[list[str], list[str]]:
    """(the ``TOOL_METRICS`` of ``names`` whose tool is on PATH, a message for each that is not)."""
    usable, skipped = [], []
    for name in names:
        if name in SCORE_NAMES or shutil.which(TOOL_METRICS[name][0]):
            usable.append(name)
        else:
            skipped.append(f"{name} skipped: {TOOL_METRICS[name][0]} not found "
                           f"(apt-get install libjxl-devtools puts it in /usr/bin)")
    return usable, skipped


def tool_values(names, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every ``TOOL_COLUMNS`` and ``SCORE_COLUMNS`` column: measured for the metrics in ``names``
    (reference ``a``), else NaN."""
    out = dict.fromkeys((*TOOL_COLUMNS, *SCORE_COLUMNS), math.nan)
    if "ssimulacra2" in names:
        out["ssimulacra2"] = ssimulacra2(a, b)
    names = [n for n in names if n in TOOL_METRICS]
    if not names:
        return out
    from PIL import Image

    a, b = _check_pair(a, b)
    with tempfile.TemporaryDirectory(prefix="diffarc-metric-") as tmp:
        ref, dist = Path(tmp) / "reference.png", Path(tmp) / "distorted.png"
        Image.fromarray(a).save(ref, compress_level=1)
        Image.fromarray(b).save(dist, compress_level=1)
        for name in names:
            tool, columns = TOOL_METRICS[name]
            extra = ["--pnorm", "3"] if name == "butteraugli" else []
            run = subprocess.run([tool, str(ref), str(dist), *extra], capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise RuntimeError(f"{tool} failed ({run.returncode}): {run.stderr.strip()[-300:]}")
            out.update(zip(columns, _parse_tool(name, run.stdout)))
    return out


def _parse_tool(name: str, stdout: str) -> list[float]:
    """butteraugli_main prints the max-norm distance, then "3-norm: X"; ssimulacra_main one number."""
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    if name == "butteraugli":
        return [float(lines[0]), float(next(x for x in lines if x.startswith("3-norm:")).split(":")[1])]
    return [float(lines[-1])]


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"metrics take uint8 arrays, got {a.dtype} and {b.dtype} (convert to 8-bit RGB first)")
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"metrics take two H x W x 3 arrays of one shape, got {a.shape} and {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels, peak 255; ``inf`` for identical images."""
    a, b = _check_pair(a, b)
    return psnr_from_mse(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def _to_tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]  # a copy: inputs may be read-only


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data range 255, mean over RGB); NaN below 161 px on the short side."""
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    with torch.no_grad():
        return float(_ms_ssim(_to_tensor(a), _to_tensor(b), data_range=255.0))


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    """SSIMULACRA2 of ``b`` against reference ``a`` (the pure-Python ``ssimulacra2`` package; 100 for
    identical images, higher is better, about 90 visually lossless, 70 high and 50 medium quality).
    No training loss here uses it, so it can judge fidelity and perceptual claims."""
    import io

    from PIL import Image

    compute_ssimulacra2 = import_extra("ssimulacra2").compute_ssimulacra2

    a, b = _check_pair(a, b)
    files = []
    for im in (a, b):  # the package reads images through PIL.Image.open: in-memory PNGs, no temp files
        f = io.BytesIO()
        Image.fromarray(im).save(f, "PNG", compress_level=0)
        f.seek(0)
        files.append(f)
    return float(compute_ssimulacra2(*files))


def load_lpips(weights_path: str | Path | None = None, net: str = "alex", device: str = "cpu"):
    """A frozen LPIPS module; call it as ``model(x, y)`` on N x 3 x H x W tensors in [-1, 1].

    With ``weights_path`` (a complete ``lpips.LPIPS`` state dict) nothing is downloaded;
    without it the lpips package downloads the ImageNet backbone from torchvision.
    """
    import warnings

    import torch

    lpips = import_extra("lpips")

    with warnings.catch_warnings():  # lpips 0.1.4 calls torchvision with its deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        if weights_path is None:
            model = lpips.LPIPS(net=net, verbose=False)
        else:
            path = Path(weights_path)
            if not path.exists():
                raise FileNotFoundError(
                    f"LPIPS weights not found at {path} (pass the path to lpips_{net}.pth, "
                    f"e.g. ../shared/data/perceptual/lpips_{net}.pth)"
                )
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)


def lpips_distance(model, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS between two uint8 images with a module from ``load_lpips``; 0 for identical images."""
    import torch

    a, b = _check_pair(a, b)
    device = next(model.parameters()).device
    x, y = (_to_tensor(im).to(device) / 127.5 - 1.0 for im in (a, b))
    with torch.no_grad():
        return float(model(x, y).mean())


def lpips_weight_files(source: str | Path | None, nets: list[str] | None = None) -> dict[str, Path]:
    """Net -> weights file. ``source`` is a folder of ``lpips_<net>.pth`` files, or one file (alex's).

    Without ``nets``: every network of ``LPIPS_NETS`` whose file is there. A network asked for by
    name must be known and its file present.
    """
    if source is None:
        return {}
    source = Path(source)
    files = {"alex": source} if source.is_file() else {n: source / f"lpips_{n}.pth" for n in LPIPS_NETS}
    if nets is None:
        return {n: p for n, p in files.items() if p.exists()}
    unknown = [n for n in nets if n not in LPIPS_NETS]
    if unknown:
        raise ValueError(f"unknown LPIPS network(s) {', '.join(unknown)} (known: {', '.join(LPIPS_NETS)})")
    for net in nets:
        if net not in files:
            raise FileNotFoundError(f"LPIPS-{net}: {source} is one file (alex's); pass the folder holding "
                                    f"lpips_{net}.pth, e.g. --lpips-weights ../shared/data/perceptual")
        if not files[net].exists():
            raise FileNotFoundError(f"LPIPS-{net} weights not found at {files[net]} (put lpips_{net}.pth there "
                                    f"or leave {net} out of --lpips-nets)")
    return {n: files[n] for n in nets}

