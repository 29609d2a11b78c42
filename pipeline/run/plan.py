"""Where a job's workers go: a pure function of the cluster's nodes, whether the work runs a network,
and the user's overrides, so the plan for any cluster can be printed (``--plan-for``) and tested.

CPU work (AVIF encode and decode, entropy coding, PNG/JPEG/tar output) gets one worker per CPU on
every node and books no GPU. Work that runs a network (cdc-avif's decode, rate control, CDC) gets a
worker per CPU of the nodes that have GPUs, each booking an equal share of its node's GPUs (Ray's
fractional GPUs: 96 CPUs and 8 GPUs make 96 workers of 1/12 GPU), so many CPU workers keep one GPU
busy; the network of one image is milliseconds there against tens of milliseconds of CPU work around
it (docs/operators.md: Sizing; on one CPU thread the network costs 10-25x that work, measured, while its share of a
GPU is not yet: docs/engines.md). Without GPUs the network runs on the CPUs. ``--actors``, ``--cpus-per-actor``
and ``--gpus-per-actor`` override any of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FRACTION_STEP = 1e-4  # Ray counts fractional resources in units of 1/10,000


@dataclass(frozen=True)
class Node:
    cpus: float
    gpus: float = 0.0


@dataclass(frozen=True)
class Overrides:
    """The user's flags; None: the planner chooses."""

    actors: int | None = None
    cpus: float | None = None  # per worker
    gpus: float | None = None  # per worker


@dataclass(frozen=True)
class Plan:
    actors: int
    cpus: float  # per worker; also its thread count
    gpus: float  # per worker
    why: str

    def describe(self, stage: str, nodes: list[Node]) -> str:
        cpus, gpus = sum(n.cpus for n in nodes), sum(n.gpus for n in nodes)
        share = f", {self.gpus:g} GPU ({1 / self.gpus:.0f} per GPU)" if 0 < self.gpus < 1 else \
            f", {self.gpus:g} GPU" if self.gpus else ", no GPU"
        return (f"plan ({stage}): {self.actors} workers x {self.cpus:g} CPU{share}; cluster {len(nodes)} node(s), "
                f"{cpus:g} CPUs, {gpus:g} GPUs\n  why: {self.why}")


def parse_nodes(text: str) -> list[Node]:
    """``"96:8"`` or ``"16:0,16:0,96:8"`` (CPUS:GPUS per node; ``16`` alone is ``16:0``)."""
    nodes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        cpus, _, gpus = part.partition(":")
        try:
            node = Node(float(cpus), float(gpus or 0))
        except ValueError:
            raise ValueError(f"--plan-for {text!r}: expected CPUS:GPUS per node, comma-separated (e.g. 96:8)") from None
        if node.cpus < 0 or node.gpus < 0:
            raise ValueError(f"--plan-for {text!r}: negative resources")
        nodes.append(node)
    if not nodes:
        raise ValueError(f"--plan-for {text!r}: no node (expected e.g. 96:8)")
    return nodes


def _workers(nodes: list[Node], cpus: float) -> int:
    return sum(int(n.cpus // cpus) for n in nodes)


def plan_workers(nodes: list[Node], stage: str, network: bool, overrides: Overrides = Overrides()) -> Plan:
    """The workers for ``stage`` ("encode" or "decode") on ``nodes``; ``network``: whether it runs one."""
    cpus = overrides.cpus or 1.0
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    runs = "runs a network" if network else "runs no network"
    if overrides.gpus:  # the user books GPUs: workers only where they fit
        gpus = overrides.gpus
        fits = sum(min(int(n.cpus // cpus), int(n.gpus / gpus + 1e-9)) for n in gpu_nodes)
        why = f"--gpus-per-actor {gpus:g}: workers only on GPU nodes, as many as their CPUs and GPUs hold"
    elif overrides.gpus == 0 or not network:
        gpus, fits = 0.0, _workers(nodes, cpus)
        why = ("--gpus-per-actor 0" if overrides.gpus == 0 else f"the {stage} {runs}") + \
            f": a worker per {cpus:g} CPU on every node, no GPU booked"
        if network:
            why += " (the network runs on the CPUs)"
    elif not gpu_nodes:
        gpus, fits = 0.0, _workers(nodes, cpus)
        why = f"the {stage} {runs} and the cluster has no GPU: a worker per {cpus:g} CPU on every node, network on CPU"
    else:
        per_node = [int(n.cpus // cpus) for n in gpu_nodes]
        # the poorest GPU node's share, rounded down to Ray's unit so its workers fit on its GPUs
        share = min(n.gpus / k for n, k in zip(gpu_nodes, per_node) if k) if any(per_node) else 1.0
        gpus = 1.0 if share >= 1 else math.floor(share / FRACTION_STEP) * FRACTION_STEP
        fits = sum(min(k, int(n.gpus / gpus + 1e-9)) for n, k in zip(gpu_nodes, per_node))
        idle = len(nodes) - len(gpu_nodes)
        why = (f"the {stage} {runs}: a worker per {cpus:g} CPU of the GPU nodes, sharing their GPUs"
               + (f"; {idle} CPU-only node(s) take no part in it" if idle else ""))
    actors = overrides.actors or max(1, fits)
    if overrides.actors:  # more than fit now: an autoscaling cluster adds nodes for them (infra/)
        why += f"; --actors {overrides.actors}" + (f" (the cluster holds {fits} now)" if actors > fits else "")
    return Plan(actors, cpus, round(gpus, 4), why)
