"""A heterogeneous cluster on this machine (``ray.cluster_utils.Cluster``: a head, a CPU-only node and
a node that declares a GPU it does not have, so its network runs on the CPU in the GPU's place):

- compress (no network) puts an encoder on every CPU of every node and books no GPU;
- decompress of cdc-avif (the network) puts its workers on the GPU node only;
- a node lost while its worker has a shard costs only that shard: the shards finished before keep
  their output untouched, and every row is archived exactly once.

The cluster runs in a child process (this session's tests share one local Ray, ``ray_local``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


@pytest.mark.slow
def test_plan_on_a_heterogeneous_cluster_and_a_lost_node(tmp_path):
    run = subprocess.run([sys.executable, __file__, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=240, env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{TESTS}",
                                           "RAY_USAGE_STATS_ENABLED": "0"})
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    nodes = seen["nodes"]
    # encoders on every CPU of every node, no GPU booked
    assert seen["compress"]["placement"] == {nodes["head"]: 1, nodes["cpu"]: 1, nodes["gpu"]: 1}
    assert seen["compress"]["gpus"] == 0
    # the network's workers on the GPU node only, holding its GPU (the network ran on its CPU)
    assert seen["decompress"]["placement"] == {nodes["gpu"]: 1} and seen["decompress"]["gpus"] == 1
    assert seen["decompress"]["decoded"] == seen["compress"]["rows"]
    # the lost node cost its in-flight shard only
    lost = seen["lost"]
    assert lost["in_flight"] not in lost["done_before"] and lost["done_before"]
    assert lost["markers_after"] == {**lost["markers_after"], **lost["done_before"]}  # untouched
    assert sorted(lost["markers_after"]) == sorted(lost["expected"]) and lost["rows_per_key"] == [1]
    assert lost["placement"][nodes["cpu"]] == 1  # its worker had started there


# ----- the child process ------------------------------------------------------------------------
def _markers(out: Path) -> dict[str, list]:
    """Shard name -> (mtime_ns, size) of each completion marker."""
    return {p.name.removesuffix(".stats.json"): [p.stat().st_mtime_ns, p.stat().st_size]
            for p in out.glob("*.stats.json")}


def _descends(pid: int, ancestor: int) -> bool:
    import psutil

    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return False


def scenario(tmp: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster
    from shardkit import archive_rows, plain_shards

    from jobs import compress, decompress

    fast_health = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "_system_config": fast_health})
    cpu_node = cluster.add_node(num_cpus=1)
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)  # declared: this machine has none
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, configure_logging=False)
    seen: dict = {"nodes": {"head": cluster.head_node.node_id, "cpu": cpu_node.node_id, "gpu": gpu_node.node_id}}
    try:
        src = tmp / "in"
        plain_shards(src, n_shards=3, per_shard=2, size=(64, 48))
        archive = tmp / "archive"
        assert compress.main(["--input", str(src), "--output", str(archive), "--codec", "cdc-avif-m-mse",
                              "--no-progress"]) == 0
        manifest = json.loads((archive / "_manifest.json").read_text())
        seen["compress"] = {"placement": manifest["resources"]["placement"], "gpus": manifest["resources"]["gpus"],
                            "rows": manifest["counts"]["ok"]}
        decoded = tmp / "decoded"
        assert decompress.main(["--input", str(archive), "--output", str(decoded), "--no-progress"]) == 0
        manifest = json.loads((decoded / "_manifest.json").read_text())
        seen["decompress"] = {"placement": manifest["resources"]["placement"],
                              "gpus": manifest["resources"]["gpus"], "decoded": manifest["counts"]["rows"]}

        # Lose the CPU-only node while its worker holds a shard: frozen first (SIGSTOP), so the shard
        # seen unfinished stays unfinished until the node is gone.
        src2, out = tmp / "in2", tmp / "lost"
        expected = plain_shards(src2, n_shards=9, per_shard=4, size=(160, 120))
        raylet = cpu_node.all_processes["raylet"][0].process.pid
        lost: dict = {"expected": sorted(expected)}

        def on_event(ev: dict) -> None:
            pid, shard = ev.get("pid"), Path(ev["shard"]).name.removesuffix(".tar")
            if lost.get("in_flight") or not pid or not _descends(pid, raylet):
                return
            os.kill(pid, signal.SIGSTOP)
            done = _markers(out)
            # finished before the freeze, or nothing finished anywhere yet (so "earlier markers untouched"
            # would check nothing): let it run and wait for the node's next shard
            if shard in done or not done:
                os.kill(pid, signal.SIGCONT)
                return
            lost.update(in_flight=shard, done_before=done)
            cluster.remove_node(cpu_node, allow_graceful=False)

        assert compress.main(["--input", str(src2), "--output", str(out), "--codec", "avif-q30", "--batch-size", "1",
                              "--no-progress"], on_event=on_event) == 0
        assert lost.get("in_flight"), "no shard ever ran on the CPU-only node"
        lost["markers_after"] = _markers(out)
        lost["rows_per_key"] = sorted(set(Counter(r["key"] for r in archive_rows(out, columns=["key"])).values()))
        lost["placement"] = json.loads((out / "_manifest.json").read_text())["resources"]["placement"]
        seen["lost"] = lost
    finally:
        ray.shutdown()
        cluster.shutdown()
    return seen


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    (folder / "seen.json").write_text(json.dumps(scenario(folder)))
