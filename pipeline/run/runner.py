"""The job runner the compress and decompress jobs share: common flags, the Ray session, running a
pool of workers with live progress, and the manifest's common part."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import sys
import uuid
from pathlib import Path
from dataclasses import asdict
from typing import Callable, Iterator

import ray

from model import WeightsResolver, plugin_env

from ..io.storage import Storage, absolute, endpoint_from_env, redact
from ..records.archive import now, package_versions
from ..records.files import JobManifest
from .actors import Resources
from .lease import Lease
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
    s.add_argument("--endpoint-url", default=None,
                   help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL, else AWS); "
                        "credentials come from the standard AWS chain")
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


def storage_from(args: argparse.Namespace) -> Storage:
    return Storage.from_env(args.endpoint_url, retries=args.retries)


def absolute_paths(args: argparse.Namespace, *names: str) -> None:
    """Make the local paths among ``args.NAME`` absolute: a relative path means the caller's folder, on
    the driver and on every worker (whose working folder is not the caller's)."""
    for name in names:
        if getattr(args, name, None):
            setattr(args, name, absolute(getattr(args, name)))


def weights_from(args: argparse.Namespace) -> WeightsResolver:
    """Where this job's codec weights come from (the flags, else the environment)."""
    return WeightsResolver.from_env(args.weights_dir, args.weights_url, endpoint_from_env(args.endpoint_url))


def cluster_nodes() -> list[Node]:
    """The live nodes of the Ray cluster this process is connected to, with their CPUs and GPUs."""
    return [Node(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n["Alive"]]


def overrides_from(args: argparse.Namespace) -> Overrides:
    return Overrides(args.actors, args.cpus_per_actor, args.gpus_per_actor)


def resources_from(args: argparse.Namespace, stage: str, network: bool, batch_deadline_s: float = 0.0,
                   nodes: list[Node] | None = None) -> Resources:
    """The workers' resources (planned on the live cluster, printed) and fault budget. The default
    stall timeout comes on top of ``batch_deadline_s``, the longest a batch may take by the job's own
    deadlines, which must fire first. ``nodes``: the cluster's (default: the live Ray cluster's)."""
    env = {**plugin_env(), **weights_from(args).worker_env()}
    stall_s = STALL_S + batch_deadline_s if args.stall_timeout is None else args.stall_timeout
    nodes = cluster_nodes() if nodes is None else nodes
    plan = plan_workers(nodes, stage, network, overrides_from(args))
    print(plan.describe(stage, nodes), flush=True)
    return Resources(plan.actors, plan.cpus, plan.gpus, args.retries, env, stall_s=stall_s or None)


def print_plan_for(args: argparse.Namespace, stage: str, network: bool) -> int:
    """``--plan-for``: the plan on the hypothetical cluster, printed; 0, or 2 for a bad node list."""
    try:
        nodes = parse_nodes(args.plan_for)
    except ValueError as exc:
        return fail(str(exc))
    print(plan_workers(nodes, stage, network, overrides_from(args)).describe(stage, nodes))
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


def manifest_base(job: str, argv: list[str], started: str, seconds: float, res: Resources,
                  placement: dict[str, int] | None = None) -> dict:
    """The fields of ``records.JobManifest`` that every job fills alike (URLs redacted, nothing
    from the environment)."""
    return {
        "job": job,
        "argv": [redact(a) for a in argv],
        "started": started,
        "finished": now(),
        "seconds": round(seconds, 3),
        "versions": package_versions(),
        # env: paths of this machine; placement: live workers per node id at the end
        "resources": {**{k: v for k, v in asdict(res).items() if k != "env"}, "placement": placement or {}},
    }


@contextlib.contextmanager
def output_lease(args: argparse.Namespace, job: str, storage: Storage) -> Iterator[Lease]:
    """Hold ``args.output`` for this job (``lease``); raises ``LeaseHeld`` naming the job that has it."""
    lease = Lease(args.output, job, storage).acquire(force=args.force)
    # SIGTERM (Kubernetes' activeDeadlineSeconds, a pod deleted) unwinds like Ctrl-C, so the lease is released
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if _main_thread() else None
    try:
        yield lease
    finally:
        lease.release()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def write_manifest(url: str, manifest: JobManifest, storage: Storage) -> bool:
    """Write the job manifest; a store that refuses it is reported, not a traceback."""
    try:
        manifest.write(url, storage)
        return True
    except Exception as exc:
        print(f"error: could not write the manifest {redact(url)}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False


def report_failures(failures: dict, lease: Lease) -> int:
    """Print the shards that failed (left incomplete) and a lost lease; 1 if there was any, else 0."""
    for shard, reason in failures.items():
        print(f"FAILED {redact(shard)}: {reason} (not marked done: rerun the same command to retry it)",
              file=sys.stderr)
    if lease.lost:
        print(f"error: the output's lease was lost during the run: {lease.lost}", file=sys.stderr)
    return 1 if failures or lease.lost else 0


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
