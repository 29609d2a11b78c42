"""RCC benchmark on this CPU: bits per chunk against KL, the sample's bias, and the cost per bit.

    python -m model.evaluation.benchmark_rcc       # full grid, ~4 min on 2 cores -> results/rcc/
    python -m model.evaluation.benchmark_rcc --quick # a smaller grid, for a smoke run
    python -m model.evaluation.benchmark_rcc --coder-only  # the payload coders alone -> results/rcc/coder.json

Chunk overhead: every chunk of a toy problem has exactly K bits of KL (equal |shift| on every
dim, d dims per chunk), so c = (payload bits - KL - header bits) / chunks is the coder's cost per
chunk above KL. Bias: for each chunk, t = <u_hat, (x - mu_q) / sigma> is N(0, 1) for an exact
sample of q; the truncated search pulls it toward p, so KL(sample law || q) along u_hat is
estimated as (mean(t)^2 + var(t) - 1 - ln var(t)) / 2 nats per chunk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..rcc import PAYLOAD_CODERS, RCCConfig, chunk_dims, decode_sample, encode_sample
from ..rcc.coding import header_bits
from .extra import pyplot


def equal_chunks(chunk_kl: float, n_chunks: int, dims_per_chunk: int, seed: int):
    """(mu_q, mu_p, sigma) whose every chunk of dims_per_chunk dims has chunk_kl bits of KL."""
    g = torch.Generator().manual_seed(seed)
    size = n_chunks * dims_per_chunk
    mu_p = torch.randn(size, generator=g, dtype=torch.float64)
    sigma = 0.1 + torch.rand(size, generator=g, dtype=torch.float64)
    signs = torch.randint(0, 2, (size,), generator=g).double() * 2 - 1
    shift = signs * math.sqrt(2 * chunk_kl * math.log(2) / dims_per_chunk)
    return mu_p + sigma * shift, mu_p, sigma


def chunk_statistics(chunk_kl: float, cfg: RCCConfig, calls: int, n_chunks: int = 128, dims: int = 4) -> dict:
    """Overhead per chunk and bias of the sample, over calls x n_chunks chunks of chunk_kl bits."""
    cfg = replace(cfg, chunk_bits=chunk_kl, max_chunk_bits=chunk_kl * 1.001)
    overheads, projections = [], []
    for key in range(calls):
        mu_q, mu_p, sigma = equal_chunks(chunk_kl, n_chunks, dims, seed=key)
        result = encode_sample(mu_q, mu_p, sigma, key, cfg)
        assert result.n_chunks == n_chunks
        bits = 8 * len(result.data)
        overheads.append((bits - result.kl_bits - header_bits(n_chunks, len(mu_p), cfg.check_bits)) / n_chunks)
        rows = chunk_dims(len(mu_p), result.chunk_bounds, key, cfg)
        u = ((mu_q - mu_p) / sigma).numpy()[rows]
        z = ((result.sample - mu_q) / sigma).numpy()[rows]
        projections.append((u * z).sum(axis=1) / np.linalg.norm(u, axis=1))
    t = np.concatenate(projections)
    var = float(t.var(ddof=1))
    return {
        "chunk_kl_bits": chunk_kl,
        "cap_bits": cfg.cap_bits,
        "method": cfg.method,
        "chunks": len(t),
        "overhead_bits_per_chunk": float(np.mean(overheads)),
        "pull_toward_p_sigma": float(t.mean()),
        "pull_standard_error": float(t.std(ddof=1) / math.sqrt(len(t))),
        "variance_along_shift": var,
        "kl_sample_to_q_nats_per_chunk": (float(t.mean()) ** 2 + var - 1 - math.log(var)) / 2,
    }


def overhead_by_density(bits_per_dim: float, total_kl: float, keys: int) -> dict:
    """The default config's cost per chunk above KL on random shifts (Gaussian across dims)."""
    size = round(total_kl / bits_per_dim)
    costs, chunks = [], []
    for key in range(keys):
        g = torch.Generator().manual_seed(key)
        mu_p = torch.randn(size, generator=g, dtype=torch.float64)
        shift = torch.randn(size, generator=g, dtype=torch.float64)
        shift *= math.sqrt(2 * total_kl * math.log(2)) / shift.norm()
        result = encode_sample(mu_p + shift, mu_p, 1.0, key)
        bits = 8 * len(result.data)
        costs.append((bits - result.kl_bits - header_bits(result.n_chunks, size, 8)) / result.n_chunks)
        chunks.append(result.n_chunks)
    return {"kl_bits_per_dim": bits_per_dim, "dims": size, "kl_bits": total_kl, "chunks": chunks,
            "overhead_bits_per_chunk": float(np.mean(costs)), "overhead_sd_between_payloads": float(np.std(costs))}


def throughput(size: int, kl_bits_per_dim: float, cfg: RCCConfig, threads: int, repeats: int) -> dict:
    """Encode and decode seconds (best of repeats) for a random shift of the given KL density."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(size)
        mu_p = torch.randn(size, generator=g)
        shift = torch.randn(size, generator=g)
        shift *= math.sqrt(2 * kl_bits_per_dim * size * math.log(2)) / shift.norm()
        mu_q = mu_p + 0.5 * shift
        times, decode_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            result = encode_sample(mu_q, mu_p, 0.5, 1, cfg)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            decoded = decode_sample(result.data, mu_p, 0.5, 1, cfg)
            decode_times.append(time.perf_counter() - start)
            assert torch.equal(decoded, result.sample)
    finally:
        torch.set_num_threads(saved)
    width = -(-size // result.n_chunks)
    normals = result.n_chunks * width * (1 << cfg.cap_bits)
    bits = 8 * len(result.data)
    return {
        "dims": size,
        "kl_bits": result.kl_bits,
        "cap_bits": cfg.cap_bits,
        "chunk_bits": cfg.chunk_bits,
        "threads": threads,
        "chunks": result.n_chunks,
        "payload_bits": bits,
        "encode_s": min(times),
        "decode_s": min(decode_times),
        "candidate_normals_per_s": normals / min(times),
        "encode_s_per_coded_bit": min(times) / bits,
    }


def coder_speed(n_chunks: int, cap_bits: int, payload_format: int = 1) -> dict:
    """CPU seconds to write and read n_chunks PFR-like indices (log-uniform over 0..2^cap_bits) and as many
    split flags (one in four set) in one payload of ``payload_format``."""
    coder = PAYLOAD_CODERS[payload_format]
    rng = np.random.default_rng(0)
    indices = [int(2 ** rng.uniform(0, cap_bits)) - 1 for _ in range(n_chunks)]
    flags = (rng.uniform(size=n_chunks) < 0.25).tolist()
    start = time.process_time()
    writer = coder.PayloadWriter(cap_bits)
    writer.count(n_chunks, 1 << 20)
    writer.flags(flags)
    writer.indices(indices)
    data = writer.to_bytes(8)
    written = time.process_time() - start
    start = time.process_time()
    reader = coder.PayloadReader(data, 1 << 20, cap_bits, 8)
    assert reader.count(1 << 20) == n_chunks and reader.flags(n_chunks).tolist() == flags
    assert reader.indices(n_chunks).tolist() == indices
    reader.finish()
    read = time.process_time() - start
    return {"payload_format": payload_format, "chunks": n_chunks, "payload_bits": 8 * len(data),
            "write_cpu_s": written, "read_cpu_s": read, "read_us_per_chunk": 1e6 * read / n_chunks}


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, marker in (("pfr", "o"), ("orc", "s")):
        for margin in sorted({r["cap_bits"] - r["chunk_kl_bits"] for r in rows}):
            sel = [r for r in rows if r["method"] == method and r["cap_bits"] - r["chunk_kl_bits"] == margin]
            ks = [r["chunk_kl_bits"] for r in sel]
            label = f"{method.upper()} cap = K+{margin:g}"
            left.plot(ks, [r["overhead_bits_per_chunk"] for r in sel], marker=marker, label=label)
            bias = [max(r["kl_sample_to_q_nats_per_chunk"], 1e-4) for r in sel]
            right.plot(ks, bias, marker=marker, label=label)
    floor = 1 / rows[0]["chunks"]  # the estimate's mean for an exact sampler
    right.axhline(floor, color="grey", linestyle="--", linewidth=1, label="noise floor (exact sampling)")
    left.set(xlabel="KL per chunk K (bits)", ylabel="bits per chunk above KL", title="Index cost per chunk")
    right.set(xlabel="KL per chunk K (bits)", ylabel="KL(sample law || q) per chunk (nats)", yscale="log",
              title="Bias of the truncated search")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/rcc"))
    parser.add_argument("--quick", action="store_true", help="smaller grid and fewer repeats")
    parser.add_argument("--coder-only", action="store_true",
                        help="only the payload coders, both formats, 1e3 to 1e5 chunks: writes coder.json")
    args = parser.parse_args(argv)
    if args.coder_only:
        rows = [coder_speed(n, 10, f) for f in sorted(PAYLOAD_CODERS) for n in (1000, 10_000, 100_000)]
        print("\n".join(json.dumps(r) for r in rows))
        args.out.mkdir(parents=True, exist_ok=True)
        machine = {"cpu": _cpu_name(), "load_average": [round(x, 2) for x in os.getloadavg()]}
        (args.out / "coder.json").write_text(json.dumps({"machine": machine, "coder": rows}, indent=1) + "\n")
        return
    calls = 2 if args.quick else 8
    chunk_rows = []
    for method in ("pfr", "orc"):
        for k in (2, 4, 6, 8):
            for margin in (4, 6, 8):
                if k + margin <= (12 if args.quick else 16):
                    row = chunk_statistics(k, RCCConfig(cap_bits=k + margin, method=method), calls)
                    chunk_rows.append(row)
                    print(json.dumps(row))
    density_rows = [overhead_by_density(d, 256 if args.quick else 1024, 2 if args.quick else 4)
                    for d in (0.05, 0.25, 1.0)]
    print(json.dumps(density_rows))
    sizes = (4096,) if args.quick else (16384, 65536)
    speed_rows = []
    for size, cap, threads in [(s, c, t) for s in sizes for c in (10, 12) for t in (1, 2)] + (
        [] if args.quick else [(3 * 256 * 256, 10, 1)]  # one DiffC step on a 256x256 RGB crop
    ):
        row = throughput(size, 0.05, RCCConfig(cap_bits=cap), threads, 1 if args.quick or size > 65536 else 2)
        speed_rows.append(row)
        print(json.dumps(row))
    coder_rows = [coder_speed(n, 12, f) for f in sorted(PAYLOAD_CODERS)
                  for n in ((1000,) if args.quick else (1000, 10000))]
    print(json.dumps(coder_rows))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": _cpu_name(), "torch": torch.__version__,
               "cores": torch.get_num_threads(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    (args.out / "rcc.json").write_text(json.dumps(
        {"machine": machine, "chunks": chunk_rows, "overhead_by_density": density_rows, "throughput": speed_rows,
         "coder": coder_rows}, indent=1))
    plot(chunk_rows, args.out / "rcc.png")
    print(f"wrote {args.out / 'rcc.json'} and {args.out / 'rcc.png'}")


if __name__ == "__main__":
    main()
