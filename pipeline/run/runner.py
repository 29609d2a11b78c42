"""What the compress and decompress jobs share below their run (``job``): the common flags and the
typed settings made of them, the plan, the Ray session, and a pool of workers with live progress."""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import ray

from model import WeightsResolver, plugin_env

from ..io.storage import Storage, absolute, add_endpoint_flag, endpoint_from_env
from .actors import Resources
from .plan import Node, Overrides, parse_nodes, plan_workers
from .pool import on_this_node, run_pool
from .progress import ProgressBoard, ProgressDisplay

REPO = Path(__file__).resolve().parents[1]
STALL_S = 1800.0  # default --stall-timeout: far longer than any batch of a healthy worker


def add_common_args(p: argparse.ArgumentParser, default_batch: int) -> None:
    g = p.add_argument_group("workers")
    g.add_argument("--actors", type=int, default=None,
                   help="at most this many workers (Ray actors); default: as many as the plan finds room for "
                        "(docs/operators.md)")
    g.add_argument("--cpus-per-actor", type=float, default=None, help="CPUs (and threads) per worker (default 1)")
    g.add_argument("--gpus-per-actor", type=float, default=None,
                   help="GPUs per worker, a fraction shares one; default: none where the codec runs no network "
                        "(AVIF work), else the GPU nodes' GPUs shared by a worker per CPU; 0: no GPU at all")
    g.add_argument("--plan-for", default=None, metavar="CPUS:GPUS[,...]",
                   help="print the plan for a cluster of these nodes (e.g. 96:8, or 16:0,16:0,96:8) and exit "
                        "without running anything")
    g.add_argument("--batch-size", type=int, default=default_batch,
                   help=f"images per codec call (default {default_batch})")
    g.add_argument("--retries", type=int, default=3,
                   help="re-runs of a shard whose worker died or stalled, and retries of transient storage errors "
                        "(default 3)")
    g.add_argument("--stall-timeout", type=seconds, default=None, metavar="SECONDS",
                   help="a shard that finishes no batch for this long has stalled (a read that never returns, an "
                        "encode that never ends): its worker is killed and the shard retried like a lost one; "
                        f"0: never (default {STALL_S:g}; decompress adds twice --decode-timeout times --batch-size, "
                        "the time its decoding process may take to single out a hanging image)")
    s = p.add_argument_group("storage")
    add_endpoint_flag(s)
    s.add_argument("--weights-dir", default=None,
                   help="folder of codec weights (default: $DIFFARC_WEIGHTS_DIR, else the package's model/weights)")
    s.add_argument("--weights-url", default=None,
                   help="URL prefix of codec weights, s3://bucket/weights/ or https://... (default: "
                        "$DIFFARC_WEIGHTS_URL); files are sha256-checked and cached in $DIFFARC_CACHE")
    p.add_argument("--force", action="store_true",
                   help="take over the output's lease (_lock.json) from a job that died on another machine")
    p.add_argument("--no-progress", action="store_true", help="no live progress line (the summary still prints)")


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds, 0 or more")
    return value


@dataclass(frozen=True)
class RunSettings:
    """What every job takes from its flags alike (``add_common_args``, and its ``--input``, ``--output``
    and ``--overwrite``), typed and fixed once the flags are parsed (``from_args``): helpers read it,
    none changes it."""

    input: str
    output: str
    overwrite: bool = False
    batch_size: int = 16
    actors: int | None = None
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None
    plan_for: str | None = None
    retries: int = 3
    stall_timeout: float | None = None
    endpoint_url: str | None = None
    weights_dir: str | None = None
    weights_url: str | None = None
    force: bool = False
    progress: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunSettings":
        """From parsed flags; a relative ``--input`` or ``--output`` means the caller's folder, on the
        driver and on every worker (whose working folder is not the caller's), so both are made absolute."""
        return cls(input=absolute(args.input), output=absolute(args.output), overwrite=args.overwrite,
                   batch_size=args.batch_size, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
                   gpus_per_actor=args.gpus_per_actor, plan_for=args.plan_for, retries=args.retries,
                   stall_timeout=args.stall_timeout, endpoint_url=args.endpoint_url, weights_dir=args.weights_dir,
                   weights_url=args.weights_url, force=args.force, progress=not args.no_progress)

    def storage(self) -> Storage:
        return Storage.from_env(self.endpoint_url, retries=self.retries)

    def weights(self) -> WeightsResolver:
        """Where this job's codec weights come from (the flags, else the environment)."""
        return WeightsResolver.from_env(self.weights_dir, self.weights_url, endpoint_from_env(self.endpoint_url))

    def overrides(self) -> Overrides:
        return Overrides(self.actors, self.cpus_per_actor, self.gpus_per_actor)


def cluster_nodes() -> list[Node]:
    """The live nodes of the Ray cluster this process is connected to, with their CPUs and GPUs."""
    return [Node(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n["Alive"]]


def resources_from(run: RunSettings, stage: str, network: bool, batch_deadline_s: float = 0.0,
                   nodes: list[Node] | None = None) -> Resources:
    """The workers' resources (planned on the live cluster, printed) and fault budget. The default
    stall timeout comes on top of ``batch_deadline_s``, the longest a batch may take by the job's own
    deadlines, which must fire first. ``nodes``: the cluster's (default: the live Ray cluster's)."""
    env = {**plugin_env(), **run.weights().worker_env()}
    stall_s = STALL_S + batch_deadline_s if run.stall_timeout is None else run.stall_timeout
    nodes = cluster_nodes() if nodes is None else nodes
    plan = plan_workers(nodes, stage, network, run.overrides())
    print(plan.describe(stage, nodes), flush=True)
    return Resources(plan.actors, plan.cpus, plan.gpus, run.retries, env, stall_s=stall_s or None)


def print_plan_for(run: RunSettings, stage: str, network: bool) -> int:
    """``--plan-for``: the plan on the hypothetical cluster, printed; 0, or 2 for a bad node list."""
    try:
        nodes = parse_nodes(run.plan_for)
    except ValueError as exc:
        return fail(str(exc))
    print(plan_workers(nodes, stage, network, run.overrides()).describe(stage, nodes))
    return 0


@contextlib.contextmanager
def ray_session() -> Iterator[None]:
    """Join the running Ray (``ray job submit``, an initialised test session) or start a local one."""
    started = not ray.is_initialized()
    try:
        if started:
            # Workers import `pipeline` and `model` from this checkout even when it is not installed
            # and the job runs from another directory (under `ray job submit`, --working-dir does it).
            job_config = ray.job_config.JobConfig(code_search_path=[str(REPO)])
            with exits_kept():
                ray.init(job_config=job_config, configure_logging=False)
        yield
    finally:
        if started and ray.is_initialized():
            ray.shutdown()


@contextlib.contextmanager
def exits_kept() -> Iterator[None]:
    """Raise, at the end of the block, a SystemExit that Python swallowed in it: ``ray.init`` starts
    processes, and a SIGTERM handled inside one of the at-fork callbacks it triggers (logging's) raises
    there, where the exception is only reported as unraisable and the job would run on."""
    swallowed, previous = [], sys.unraisablehook

    def keep(unraisable) -> None:
        if isinstance(unraisable.exc_value, SystemExit):
            swallowed.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = keep
    try:
        yield
    finally:
        sys.unraisablehook = previous
    if swallowed:
        raise swallowed[0]


def run_workers(job: str, make_actor: Callable[[object], object], items: list, call: Callable, res: Resources,
                total: int, skipped: int, progress: bool, on_event=None) -> tuple[dict, dict, ProgressDisplay]:
    """Start ``res.pool_size`` actors (``make_actor(board_name)``), run ``call(actor, item)`` for every
    item; returns (results, failures, display). Actors are killed afterwards, whatever happens."""
    display = ProgressDisplay(job, total, skipped=skipped, enabled=progress)
    board_name = f"diffarc-progress-{uuid.uuid4().hex[:12]}"
    board = ProgressBoard.options(name=board_name, scheduling_strategy=on_this_node()).remote()
    actors: list = []
    where: list = []  # each worker's node id, asked first thing (calls to an actor run in order)

    def make():
        actor = make_actor(board_name)
        where.append(actor.node.remote())
        return actor

    try:
        results, failures = run_pool(make, res.pool_size(len(items)), items, call, board,
                                     display, on_event, retries=res.task_retries, stall_s=res.stall_s, created=actors)
        placement = placed(where)
    finally:
        display.close()
        for a in actors + [board]:
            ray.kill(a)
    return results, failures, display, placement


def placed(refs: list, timeout_s: float = 10.0) -> dict[str, int]:
    """Workers started per node id (what the plan became on the cluster), from their ``node()`` answers;
    a worker lost before it answered is not counted."""
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    nodes: dict[str, int] = {}
    for ref in ready:
        try:
            node = ray.get(ref)
        except ray.exceptions.RayError:
            continue
        nodes[node] = nodes.get(node, 0) + 1
    return nodes


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
