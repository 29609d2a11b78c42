"""The cost model: what archiving and restoring images costs at stated cloud prices, from figures
measured on this machine (docs/operators.md: Sizing; ``jobs/cost.py`` prints the table and measures them again).

CPU seconds per megapixel are one thread's (libaom, torch), timed as in ``frontier``. GPU seconds
per megapixel come from the network's multiply-accumulates per pixel and step over a stated GPU
throughput (``Prices.gpu_tmacs``) until one is measured. Bytes at equal quality come from BD-rates
against AVIF fast (Pillow's defaults) on PSNR and on SSIMULACRA2, applied to AVIF fast's own bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Prices:
    """Stated prices (USD, list prices as of 2025, on demand, us-east-1) and how long the archive is kept."""

    cpu_hour: float = 0.045  # one vCPU-hour: AWS c7i.xlarge, $0.1785/h for 4 vCPUs
    gpu_hour: float = 2.50  # one H100-hour at a GPU cloud's on-demand rate
    storage_gb_month: float = 0.023  # S3 Standard, first 50 TB
    months: int = 36  # retention
    gpu_tmacs: float = 100.0  # sustained tera-MAC/s of the denoiser on that GPU (bf16; ~20 % of an H100's peak)
    cpus_per_node: int = 96  # a node for the 1-billion-image estimate (c7i.24xlarge; 8 GPUs on the GPU node)
    gpus_per_node: int = 8


PRICES = Prices()


def dollars(cpu_s: float = 0.0, gpu_s: float = 0.0, gb_stored: float = 0.0, prices: Prices = PRICES) -> dict:
    """Compute and storage cost of ``cpu_s`` CPU seconds, ``gpu_s`` GPU seconds and ``gb_stored`` GB kept."""
    compute = cpu_s / 3600 * prices.cpu_hour + gpu_s / 3600 * prices.gpu_hour
    storage = gb_stored * prices.storage_gb_month * prices.months
    return {"compute": compute, "storage": storage, "total": compute + storage}


def run_estimate(shard_seconds: float, cpus: float, gpus: float, bytes_written: int, written: str = "archived",
                 prices: Prices = PRICES) -> str:
    """The job summary's line: CPU- and GPU-hours its workers held, GB it wrote, and their price."""
    cpu_h, gpu_h, gb = shard_seconds * cpus / 3600, shard_seconds * gpus / 3600, bytes_written / 1e9
    cost = dollars(cpu_h * 3600, gpu_h * 3600, gb, prices)
    return (f"estimate: {cpu_h:.4g} CPU-hours, {gpu_h:.4g} GPU-hours held by workers, {gb:.4g} GB {written}; "
            f"${cost['compute']:.4g} compute at ${prices.cpu_hour:g}/CPU-hour and ${prices.gpu_hour:g}/GPU-hour"
            + (f", ${cost['storage']:.4g} to keep it {prices.months} months at ${prices.storage_gb_month:g}/GB-month"
               if written == "archived" else "") + " (docs/operators.md: Sizing)")


@dataclass(frozen=True)
class EncodeFigures:
    """One base-layer effort of the default codec, measured (``jobs/cost.py --measure`` and the frontier)."""

    effort: str
    cpu_s_mp: float  # encode CPU seconds per megapixel, one thread
    bd_psnr: float  # % bytes against AVIF fast at equal PSNR
    bd_ssimulacra2: float  # % bytes against AVIF fast at equal SSIMULACRA2


@dataclass(frozen=True)
class DecodeFigures:
    """One decode preset (denoiser steps): CPU work around the network, and the network itself."""

    steps: int
    cpu_s_mp: float  # AVIF decode + network on one CPU thread + PNG encode, per megapixel
    around_s_mp: float  # the CPU work alone (AVIF decode + PNG encode): what a GPU node's CPUs still do
    mmac_px: float  # network MACs per pixel over all steps (millions)

    def gpu_s_mp(self, prices: Prices = PRICES) -> float:
        return self.mmac_px / prices.gpu_tmacs  # (MMAC/px x 1e6 px/MP) / (TMAC/s x 1e12)


def encode_row(fig: EncodeFigures, avif_fast_gb_per_mp: float, prices: Prices = PRICES, per: float = 1e6) -> dict:
    """Cost of encoding and keeping ``per`` megapixels at one effort, against AVIF fast's bytes."""
    row = {"effort": fig.effort, "cpu_s_mp": fig.cpu_s_mp, "bd_psnr": fig.bd_psnr, "bd_ssimulacra2": fig.bd_ssimulacra2}
    compute = dollars(fig.cpu_s_mp * per, prices=prices)["compute"]
    for metric, bd in (("psnr", fig.bd_psnr), ("ssimulacra2", fig.bd_ssimulacra2)):
        gb = avif_fast_gb_per_mp * per * (1 + bd / 100)
        row[f"gb_{metric}"] = gb
        row[f"saved_gb_{metric}"] = avif_fast_gb_per_mp * per - gb
        row[f"total_{metric}"] = compute + dollars(gb_stored=gb, prices=prices)["storage"]
    row["encode_dollars"] = compute
    return row


def decode_row(fig: DecodeFigures, prices: Prices = PRICES, per: float = 1e6) -> dict:
    """Cost of restoring ``per`` megapixels at one preset on CPUs alone, and on CPUs sharing a GPU."""
    gpu_s = fig.gpu_s_mp(prices)
    return {"steps": fig.steps, "cpu_s_mp": fig.cpu_s_mp, "around_s_mp": fig.around_s_mp, "mmac_px": fig.mmac_px,
            "gpu_s_mp": gpu_s, "cpu_only_dollars": dollars(fig.cpu_s_mp * per, prices=prices)["compute"],
            "with_gpu_dollars": dollars(fig.around_s_mp * per, gpu_s * per, prices=prices)["compute"],
            # CPU workers one GPU keeps busy: its network time per MP against theirs around it
            "cpus_per_gpu": fig.around_s_mp / gpu_s if gpu_s else float("inf")}


def billion(images: float, mp_per_image: float, encode: EncodeFigures, decode: DecodeFigures,
            avif_fast_gb_per_mp: float, hours: float = 24.0, prices: Prices = PRICES) -> dict:
    """Archiving ``images`` (encode on CPU nodes) within ``hours``, keeping them, and restoring them all once
    (decode on GPU nodes whose CPUs do the work around the network)."""
    mp = images * mp_per_image
    enc_cpu_s = encode.cpu_s_mp * mp
    enc_nodes = enc_cpu_s / 3600 / hours / prices.cpus_per_node
    gb = avif_fast_gb_per_mp * mp * (1 + encode.bd_ssimulacra2 / 100)
    dec_cpu_s, dec_gpu_s = decode.around_s_mp * mp, decode.gpu_s_mp(prices) * mp
    # as few GPUs per node as keep up with its CPUs (up to gpus_per_node); the node is as slow as the slower
    gpus = min(prices.gpus_per_node, max(1, math.ceil(prices.cpus_per_node * dec_gpu_s / dec_cpu_s)))
    dec_node_s = max(dec_cpu_s / prices.cpus_per_node, dec_gpu_s / gpus)
    return {"images": images, "megapixels": mp, "encode_cpu_hours": enc_cpu_s / 3600,
            "encode_nodes": enc_nodes, "hours": hours,
            "encode_dollars": dollars(enc_cpu_s, prices=prices)["compute"],
            "tb_stored": gb / 1e3, "storage_dollars_month": gb * prices.storage_gb_month,
            "storage_dollars": dollars(gb_stored=gb, prices=prices)["storage"],
            "decode_gpu_nodes": dec_node_s / 3600 / hours, "decode_gpus_per_node": gpus,
            "decode_dollars": dollars(dec_node_s * prices.cpus_per_node, dec_node_s * gpus, prices=prices)["compute"],
            "decode_cpu_only_dollars": dollars(decode.cpu_s_mp * mp, prices=prices)["compute"]}
