"""Ray actors holding one codec replica each.

Faults inside a shard (``faults``): infrastructure errors are retried with backoff by the worker
(``Storage.retrying``) and never become rows. Dead processes are Ray's: actors are created with
``max_restarts=-1`` and ``max_task_retries``, so when a worker process dies mid-shard (kill -9, OOM)
Ray restarts the actor (reloading the codec) and re-runs the shard on it; the shard's output is
committed in one piece, so a re-run never duplicates rows. What happens after that (a node lost,
a shard that keeps failing) is the pool's (``pool``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace

import pyarrow as pa
import ray

from model import load_codec, load_codec_for_id

from ..decode.audit import audit_shard
from ..decode.decoding import decode_shard
from ..decode.sandbox import DecoderProcess
from ..decode.settings import DecodeSettings
from ..encode.encoding import EncodeSettings, compress_shard
from ..io.storage import Storage
from ..records.files import AuditedMarker, DecodedMarker, ShardStats


POSTED_WAIT_S = 30.0  # the most a finished shard waits for its progress events to reach the board


@dataclass(frozen=True)
class Resources:
    """Per-actor resources and the retry budget for shards whose worker process died or stalled."""

    actors: int = 1  # how many (``plan.plan_workers`` chooses; the pool starts no more than there are shards)
    cpus: float = 1.0  # per actor; also its thread count
    gpus: float = 0.0  # per actor: a fraction shares a GPU between actors
    task_retries: int = 3
    # Set in each actor's process: the driver's plugin codec families and where its weights come from.
    env: dict[str, str] = field(default_factory=dict)
    stall_s: float | None = None  # a shard with no progress for this long is retried elsewhere (``pool``); None: never

    def options(self) -> dict:
        # SPREAD: replicas on different nodes, so losing a node loses few of them
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, "scheduling_strategy": "SPREAD",
                "max_restarts": -1, "max_task_retries": self.task_retries}

    def device(self) -> str:
        """Where this actor runs networks: CUDA when it booked a GPU and the process sees one, else the
        CPU (a node that declares GPUs it does not have, as tests do, runs the network on its CPUs)."""
        if not self.gpus:
            return "cpu"
        import torch

        if torch.cuda.is_available():
            return "cuda"
        print(f"warning: this actor booked {self.gpus:g} GPU but sees no CUDA device: the network runs on the CPU",
              file=sys.stderr)
        return "cpu"

    def pool_size(self, work_items: int) -> int:
        return max(1, min(self.actors, work_items))


@dataclass(frozen=True)
class ResolvedCodec:
    """The codec the driver loaded and checked, for each actor to load as it is: by its id
    (``NAME@HASH``: the same weights, wherever the actor runs), not by the name the user gave."""

    codec_id: str
    presets: dict = field(default_factory=dict)  # the options set on the command line (``Codec.with_presets``)
    path: str | None = None  # a weights file given by path: loaded from there, then checked against the id

    @classmethod
    def of(cls, given: str, codec, presets: dict) -> "ResolvedCodec":
        return cls(codec.codec_id, dict(presets), given if given.endswith(".safetensors") else None)

    def load(self, device: str):
        """The codec, or ValueError when what is found here is not what the driver resolved."""
        codec = load_codec(self.path, device=device) if self.path else load_codec_for_id(self.codec_id, device=device)
        codec = codec.with_presets(**self.presets)
        if codec.codec_id != self.codec_id:
            raise ValueError(f"the worker loaded codec '{codec.codec_id}', the job resolved '{self.codec_id}' "
                             "(the weights changed during the job)")
        return codec


def _limit_threads(threads: int) -> None:
    """One actor's share of the CPU: math libraries must not each spawn a thread per core."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:  # neural codecs import torch; Pillow ones never pay for it
        sys.modules["torch"].set_num_threads(threads)


class _Worker:
    def __init__(self, res: Resources, storage: Storage, board: str | None):
        self.res, self.storage = res, storage
        os.environ.update(res.env)  # this process is the actor's own (a runtime_env would cost a cold worker start)
        # The board by name, not handle: handles in constructor arguments make restarts fragile.
        self.board = ray.get_actor(board) if board else None
        self.posted: list = []  # refs of progress events posted and not yet known to be on the board
        self.limit_threads()
        pa.array([0])  # pyarrow imports pandas on its first conversion: pay that at start-up, not in a shard

    def limit_threads(self) -> None:
        _limit_threads(max(1, int(self.res.cpus)))

    def report(self, event: dict) -> None:
        if self.board is not None:
            self.posted.append(self.board.post.remote(event))  # not waited for here: reporting never slows a shard

    def reported(self, result):
        """``result`` once the events of its shard are on the board: the driver, which drains the board
        after it sees a result, then sees every one (a post still in flight would be missed)."""
        if self.posted:  # ready also when the board is gone (the job is ending): never raises
            ray.wait(self.posted, num_returns=len(self.posted), timeout=POSTED_WAIT_S)
            self.posted = []
        return result

    def ready(self) -> bool:
        """Answered once the actor is up (the pool starts a shard's stall clock then)."""
        return True

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The id of the node this actor runs on (the job reports where its workers went)."""
        return ray.get_runtime_context().get_node_id()


@ray.remote
class CompressWorker(_Worker):
    def __init__(self, codec: ResolvedCodec, settings: EncodeSettings, res: Resources, storage: Storage,
                 board: str | None = None):
        super().__init__(res, storage, board)
        self.codec = codec.load(res.device())
        self.limit_threads()  # again: loading a neural codec imported torch
        self.settings = settings

    def compress(self, shard_url: str, out_prefix: str) -> ShardStats:
        return self.reported(self.storage.retrying(
            lambda: compress_shard(self.codec, shard_url, out_prefix, self.settings, self.storage, self.report),
            f"shard {shard_url}"))


@ray.remote
class DecodeWorker(_Worker):
    """Decodes through a child process that may die (``sandbox``): a native crash costs one row."""

    def __init__(self, settings: DecodeSettings, res: Resources, storage: Storage, board: str | None = None):
        super().__init__(res, storage, board)  # sets the environment the decoding process inherits
        limits = replace(settings.limits, threads=max(1, int(res.cpus)))
        if res.gpus:
            limits = replace(limits, memory_bytes=None)  # CUDA reserves far more address space than it uses
        self.settings, self.decoder = settings, DecoderProcess(settings, limits, res.device())

    def decode(self, parquet_url: str, out_prefix: str, source: dict | None = None) -> DecodedMarker:
        return self.reported(self.storage.retrying(
            lambda: decode_shard(self.decoder, parquet_url, out_prefix, self.settings, self.storage, self.report, source),
            f"shard {parquet_url}"))

    def audit(self, parquet_url: str, original_url: str, out_prefix: str, source: dict | None = None) -> AuditedMarker:
        return self.reported(self.storage.retrying(
            lambda: audit_shard(self.decoder, parquet_url, original_url, out_prefix, self.settings, self.storage,
                                self.report, source),
            f"shard {parquet_url}"))
