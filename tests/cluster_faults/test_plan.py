"""The plan (``pipeline.run.plan``): CPU work on every CPU of every node with no GPU booked, networks on
the GPU nodes' CPUs sharing their GPUs, overrides obeyed; and the jobs print it for any cluster."""

from __future__ import annotations

import pytest

from jobs import compress
from pipeline.run.plan import Node, Overrides, parse_nodes, plan_workers

BIG_GPU_NODE = [Node(96, 8)]


def test_cpu_work_takes_every_cpu_and_no_gpu():
    plan = plan_workers(BIG_GPU_NODE, "encode", network=False)
    assert (plan.actors, plan.cpus, plan.gpus) == (96, 1.0, 0.0)
    mixed = plan_workers([Node(16), Node(16), Node(96, 8)], "encode", network=False)
    assert (mixed.actors, mixed.gpus) == (128, 0.0)


def test_a_network_shares_the_gpus_among_a_worker_per_cpu():
    plan = plan_workers(BIG_GPU_NODE, "decode", network=True)
    assert plan.actors == 96 and plan.gpus * 12 <= 1 < plan.gpus * 13  # 12 workers per GPU, packed
    mixed = plan_workers([Node(16), Node(8, 1), Node(8, 2)], "decode", network=True)
    assert mixed.actors == 16 and mixed.gpus == 0.125  # the poorest GPU node's share; CPU-only node idle
    assert "1 CPU-only node(s) take no part" in mixed.why
    cpu_only = plan_workers([Node(16), Node(16)], "decode", network=True)
    assert (cpu_only.actors, cpu_only.gpus) == (32, 0.0) and "network on CPU" in cpu_only.why


def test_overrides_win():
    assert plan_workers(BIG_GPU_NODE, "encode", False, Overrides(actors=4)).actors == 4
    booked = plan_workers(BIG_GPU_NODE, "encode", False, Overrides(actors=4, gpus=1))
    assert (booked.actors, booked.gpus) == (4, 1)
    assert plan_workers(BIG_GPU_NODE, "decode", True, Overrides(gpus=0)).gpus == 0
    wide = plan_workers(BIG_GPU_NODE, "encode", False, Overrides(cpus=4))
    assert (wide.actors, wide.cpus) == (24, 4)


def test_parse_nodes():
    assert parse_nodes("96:8, 16") == [Node(96, 8), Node(16, 0)]
    for bad in ("", "x:1", "-1:0"):
        with pytest.raises(ValueError, match="--plan-for"):
            parse_nodes(bad)


def test_compress_prints_its_plan_for_any_cluster(capsys):
    assert compress.main(["--codec", "avif-q30", "--plan-for", "96:8"]) == 0
    out = capsys.readouterr().out
    assert "plan (encode): 96 workers x 1 CPU, no GPU" in out and "runs no network" in out
    assert compress.main(["--codec", "cdc-avif-m-mse", "--target-psnr", "30", "--plan-for", "96:8"]) == 0
    assert "96 workers x 1 CPU, 0.0833 GPU (12 per GPU)" in capsys.readouterr().out  # rate control decodes
    assert compress.main(["--plan-for", "96:x"]) == 2
