"""Bounded memory for large images: run a network over overlapping tiles.

Tiles are placed on the latent grid (multiples of 16 pixels), all of one size so they batch.
The encoder keeps each tile's interior (the transforms are local, so seams vanish); the decoder
blends overlapping outputs with linear ramps, because a diffusion decoder's tiles differ slightly.
"""

from __future__ import annotations

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of size ``tile`` overlapping by >= ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def tiles_2d(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of every tile over an h x w grid."""
    th, tw = min(h, tile), min(w, tile)
    return [(i, j, th, tw) for i in tile_starts(h, tile, overlap) for j in tile_starts(w, tile, overlap)]


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    r = torch.ones(n)
    k = min(overlap, n // 2)
    if k > 0:
        edge = torch.arange(1, k + 1, dtype=torch.float32) / (k + 1)
        if not at_start:
            r[:k] = edge
        if not at_end:
            r[n - k:] = edge.flip(0)
    return r


def blend_weight(top: int, left: int, th: int, tw: int, h: int, w: int, overlap: int) -> torch.Tensor:
    """Weights (th x tw) that fall linearly towards interior tile edges, 1 at image borders."""
    rows = _ramp(th, overlap, top == 0, top + th == h)
    cols = _ramp(tw, overlap, left == 0, left + tw == w)
    return rows[:, None] * cols[None, :]


def interior(start: int, size: int, length: int, margin: int) -> tuple[int, int]:
    """The part of a tile kept by the encoder: ``margin`` away from edges shared with other tiles."""
    lo = start + margin if start > 0 else start
    hi = start + size - margin if start + size < length else start + size
    return lo, hi


def batches_by_shape(shapes: list[tuple[int, int]], multiple: int, batch_pixels: int):
    """(padded shape, indices) of items that pad to one shape (sides rounded up to ``multiple``),
    each batch within ``batch_pixels`` of padded pixels (at least one item)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (h, w) in enumerate(shapes):
        groups.setdefault((-(-h // multiple) * multiple, -(-w // multiple) * multiple), []).append(i)
    for (hp, wp), idxs in groups.items():
        per_batch = max(1, batch_pixels // (hp * wp))
        for k in range(0, len(idxs), per_batch):
            yield (hp, wp), idxs[k : k + per_batch]


def blended(run, shape: tuple[int, ...], tile: int, overlap: int, stride: int = 1):
    """A network run tile by tile over an N x C x H x W output, overlaps blended with linear ramps.

    ``run(rows, cols, crows, ccols)`` returns one tile's output; ``rows``/``cols`` slice the
    full-resolution tensors and ``crows``/``ccols`` a condition at 1/``stride`` resolution.
    """
    _, _, h, w = shape
    out = weight = None
    for top, left, th, tw in tiles_2d(h // stride, w // stride, tile // stride, overlap // stride):
        s = stride
        rows, cols = slice(top * s, (top + th) * s), slice(left * s, (left + tw) * s)
        xt = run(rows, cols, slice(top, top + th), slice(left, left + tw))
        if out is None:
            out = torch.zeros(shape, device=xt.device)
            weight = torch.zeros(1, 1, h, w, device=xt.device)
        wt = blend_weight(top * s, left * s, th * s, tw * s, h, w, overlap).to(xt.device)
        out[..., rows, cols] += xt * wt
        weight[..., rows, cols] += wt
    return out / weight
