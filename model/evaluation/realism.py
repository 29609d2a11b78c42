"""Patch KID: how far decoded patches are, as a set, from the originals' patches (a realism judge).

Each image is cut into non-overlapping ``PATCH`` x ``PATCH`` patches (the grid from the top-left
corner; the ragged edge is left out). A patch's features are the spatially averaged activations of
SqueezeNet 1.1 at three stages (``STAGES``: relu2, 128 channels at 1/4 resolution; relu4, 384 at 1/8;
relu7, 512 at 1/16), concatenated: 1,024 numbers. The backbone is the one inside
``../shared/data/perceptual/lpips_squeeze.pth`` (ImageNet weights, loaded without a download).
No training loss here ever used SqueezeNet (the only perceptual loss trained was LPIPS-alex), so
KID on it judges realism claims; it is not what any decoder was optimised for.

A second judge, ``kid_deep``, reads only the last two stages (``DEEP_STAGES``: relu6 and relu7, 512 channels each,
at 1/16 resolution): what the deep-feature judges of FID-style figures see (shapes,
blotches, fur as stone) rather than edges and grain, which the shallow stage rewards. SqueezeNet is the
only ImageNet network here that no loss touched (AlexNet is LPIPS's), so its last stages are the deep judge.

KID (Binkowski et al. 2018) is the unbiased MMD² between the two feature sets under the cubic
polynomial kernel k(x, y) = (x.y / d + 1)³, averaged over ``subsets`` random subsets of
``subset_size`` patches of each set (at most half of either), reported with its standard deviation over the subsets.
Identical sets give about 0 (the unbiased estimate may be slightly negative); blur, noise or a
pattern that the originals do not have raise it. Lower is better. It compares distributions, so
it rewards plausible texture even where it is not the original's.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .metrics import DEFAULT_PERCEPTUAL_DIR, load_lpips

PATCH = 128
STAGES = ("relu2", "relu4", "relu7")  # SqueezeNet 1.1 stages averaged into the features
DEEP_STAGES = ("relu6", "relu7")  # its last two stages: the deep-feature judge
JUDGES = {"kid": STAGES, "kid_deep": DEEP_STAGES}  # judge name -> the stages its features average
SUBSETS, SUBSET_SIZE = 100, 100


class Kid(NamedTuple):
    """KID's mean over subsets and its standard deviation, and the patches per set it drew from."""

    mean: float
    std: float
    patches: int


def default_squeeze_path() -> Path | None:
    """``lpips_squeeze.pth`` beside the repository, if it is there."""
    path = DEFAULT_PERCEPTUAL_DIR / "lpips_squeeze.pth" if DEFAULT_PERCEPTUAL_DIR else None
    return path if path is not None and path.exists() else None


def patches(rgb: np.ndarray, size: int = PATCH) -> np.ndarray:
    """The non-overlapping ``size`` x ``size`` patches of an H x W x 3 uint8 image: N x size x size x 3."""
    h, w = rgb.shape[:2]
    rows, cols = h // size, w // size
    grid = rgb[: rows * size, : cols * size].reshape(rows, size, cols, size, 3)
    return grid.transpose(0, 2, 1, 3, 4).reshape(rows * cols, size, size, 3)


class SqueezeFeatures:
    """Patch features from the SqueezeNet 1.1 backbone of LPIPS-squeeze (its own input scaling)."""

    def __init__(self, weights_path: str | Path | None = None, batch: int = 64):
        path = weights_path or default_squeeze_path()
        if path is None:
            raise FileNotFoundError("SqueezeNet weights not found: pass the path to lpips_squeeze.pth "
                                    "(e.g. ../shared/data/perceptual/lpips_squeeze.pth)")
        lpips = load_lpips(path, net="squeeze")
        self.scaling, self.net, self.batch = lpips.scaling_layer, lpips.net, batch

    def __call__(self, patch_stack: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 -> N x 1,024 float64 features (``STAGES``)."""
        return self.judges(patch_stack)["kid"]

    def judges(self, patch_stack: np.ndarray) -> dict[str, np.ndarray]:
        """Each judge's features of N x H x W x 3 uint8 patches (``JUDGES``), from one pass of the network."""
        import torch

        out: dict[str, list] = {judge: [] for judge in JUDGES}
        with torch.inference_mode():
            for i in range(0, len(patch_stack), self.batch):
                x = torch.from_numpy(np.ascontiguousarray(patch_stack[i:i + self.batch])).permute(0, 3, 1, 2)
                stages = self.net(self.scaling(x.float() / 127.5 - 1))._asdict()
                pooled = {s: _normalised(a).mean(dim=(2, 3)) for s, a in stages.items()}
                for judge, names in JUDGES.items():
                    out[judge].append(torch.cat([pooled[s] for s in names], dim=1).double().numpy())
        dims = {judge: sum(CHANNELS[s] for s in names) for judge, names in JUDGES.items()}
        return {j: np.concatenate(v) if v else np.zeros((0, dims[j])) for j, v in out.items()}


CHANNELS = {"relu1": 64, "relu2": 128, "relu3": 256, "relu4": 384, "relu5": 384, "relu6": 512, "relu7": 512}  # SqueezeNet 1.1


def _normalised(act):
    """LPIPS's unit length over channels at each position, times sqrt(channels): entries of order 1
    at every stage, so no stage outweighs the others in the kernel."""
    return act / (act.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) * act.shape[1] ** 0.5


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two feature sets (n x d, m x d) under the cubic polynomial kernel."""
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
        seed: int = 0) -> Kid:
    """KID between two feature sets: mean and spread of the unbiased MMD² over random subsets of
    ``subset_size``, capped at half the smaller set so that subsets differ and the spread means
    something (at least 4 features per set)."""
    n = min(len(real) // 2, len(fake) // 2, subset_size)
    if n < 2:
        raise ValueError(f"KID needs at least 4 patches per set, got {len(real)} and {len(fake)} "
                         f"(images smaller than {PATCH} px give none)")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(real[rng.choice(len(real), n, replace=False)],
                            fake[rng.choice(len(fake), n, replace=False)]) for _ in range(subsets)]
    return Kid(float(np.mean(values)), float(np.std(values)), min(len(real), len(fake)))
