"""Fault classes without Ray: a real allocation failure halves the batch (and on one input
propagates instead of becoming an error row); a shard that changes while read is not "truncated"."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from shardkit import image_bytes, photo, write_shard

from pipeline.io.batches import call_batched
from pipeline.io.faults import InfrastructureError, is_infrastructure, is_transient
from pipeline.io.shards import ShardReader
from pipeline.io.storage import Storage

OOM_SCRIPT = textwrap.dedent("""
    import json, resource
    import numpy as np
    from pipeline.io.batches import call_batched

    MB = 1 << 20
    vm = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmSize"))) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 600 * MB, vm + 600 * MB))  # a real allocator limit
    sizes = []

    def encode(xs):  # 200 MB of working memory per input, like a model's activations
        sizes.append(len(xs))
        work = np.ones(len(xs) * 200 * MB, dtype=np.uint8)
        return [int(work[:1].sum()) + x for x in xs]

    out = call_batched(encode, list(range(8)))
    result = {"outputs": [o for o, _, _ in out], "errors": [e for _, e, _ in out], "sizes": sizes}
    try:
        call_batched(lambda xs: [np.ones(2000 * MB, dtype=np.uint8)], [0])
        result["single"] = "returned"
    except MemoryError:
        result["single"] = "MemoryError"
    print(json.dumps(result))
""")


def test_out_of_memory_halves_the_batch_and_a_single_input_oom_propagates():
    proc = subprocess.run([sys.executable, "-c", OOM_SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["outputs"] == [1 + i for i in range(8)] and result["errors"] == [None] * 8
    assert result["sizes"] == [8, 4, 2, 2, 4, 2, 2]  # 8 fails, each 4 fails, every pair fits
    assert result["single"] == "MemoryError"  # the machine's fault: never an error row


def test_infrastructure_errors_propagate_and_input_errors_stay_in_their_row():
    def flaky_io(xs):
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(ConnectionResetError, match="connection reset by peer"):
        call_batched(flaky_io, ["a", "b"])

    def one_bad(xs):
        if "bad" in xs:
            raise ValueError("not an image")
        return xs

    assert [e for _, e, _ in call_batched(one_bad, ["a", "bad"])] == [None, "ValueError: not an image"]

    def one_bad_then_io(xs):  # the bad input splits the batch; then the connection drops on its own input
        if "io" in xs and len(xs) == 1:
            raise ConnectionResetError("connection reset by peer")
        return one_bad(xs)

    with pytest.raises(ConnectionResetError, match="connection reset by peer"):
        call_batched(one_bad_then_io, ["bad", "io"])
    assert is_infrastructure(MemoryError()) and is_infrastructure(RuntimeError("CUDA out of memory. Tried"))
    assert is_infrastructure(TimeoutError()) and not is_infrastructure(ValueError("bad bitstream"))
    assert is_transient(InfrastructureError("short read")) and not is_transient(FileNotFoundError("x"))


def test_a_shard_that_changes_while_read_is_an_infrastructure_fault_not_a_truncation(tmp_path):
    shard = write_shard(tmp_path / "s.tar", [(f"k{i}", {"png": image_bytes(photo(seed=i), "PNG")}) for i in range(4)])
    whole = shard.read_bytes()
    reader = ShardReader(str(shard), Storage(), read_block=1024)
    samples = iter(reader)
    next(samples)
    shard.write_bytes(whole[: len(whole) // 2])  # replaced by a shorter file mid-read
    with pytest.raises(InfrastructureError, match="stream ended after"):
        list(samples)
