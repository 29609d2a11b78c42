"""The run every shard job goes through, from the output's lease to the exit status:

    hold the output (``output_lease``) -> the shards finished before -> a Ray session -> the workers'
    resources (the plan) -> the workers over the other shards -> the manifest -> its summary -> failures

A job brings only what is its own (``ShardJob``): which shards are finished, its worker and per-shard
call, its manifest type and what it prints at the end; ``jobs/compress.py`` and ``jobs/decompress.py``
are such jobs.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Protocol

from ..io.storage import Storage, join, redact
from ..records.archive import now, package_versions
from ..records.files import MANIFEST, JobManifest
from .actors import Resources
from .lease import Lease, LeaseHeld
from .progress import ProgressDisplay
from .runner import RunSettings, fail, ray_session, resources_from, run_workers


@dataclass(frozen=True)
class Outcome:
    """What the workers did: results and failures by work item, the results of shards finished before
    by name, the progress display (its summary and byte counts) and the workers' resources."""

    results: dict
    failures: dict
    skipped: dict
    display: ProgressDisplay
    resources: Resources

    def all_results(self) -> list:
        """The results of every shard done, now or before."""
        return list(self.results.values()) + list(self.skipped.values())


class ShardJob(Protocol):
    """One job's own part of the run."""

    run: RunSettings  # the flags every job takes
    name: str  # the job holding the lease and writing the manifest
    label: str  # the progress line's name for what it does (decompress --audit: "audit")
    stage: str  # "encode" or "decode": what the plan sizes the workers for
    network: bool  # whether its codecs run a network (the plan places workers on GPUs then)
    batch_deadline_s: float  # the longest a batch may take by the job's own deadlines (the stall timeout adds it)

    @property
    def items(self) -> Mapping[str, Any]:
        """Shard name -> what a worker is handed for it (a URL)."""

    def finished(self, storage: Storage) -> tuple[dict, dict]:
        """(name -> result of each shard finished before, name -> why each other one is done again);
        ValueError refuses the run (exit status 2)."""

    def redoing(self, name: str, reason: str) -> str:
        """The line that says a shard is done again, and why."""

    def worker(self, res: Resources, storage: Storage, board: str):
        """A new Ray actor that does the job's shards."""

    def submit(self, actor, item):
        """The actor's call for one work item (its result's ref)."""

    def manifest(self, common: dict, outcome: Outcome, storage: Storage) -> JobManifest:
        """The job's manifest (``common``: the fields every job fills alike, ``manifest_base``); what it
        writes beside it (the audit's table) it writes here."""

    def report(self, outcome: Outcome, manifest: JobManifest) -> int:
        """Print the end of the run (the summary, the estimate); the job's own exit status, 0 or 1."""


def run_job(job: ShardJob, storage: Storage, argv: list[str], on_event=None) -> int:
    """Run ``job`` over its shards (``argv``: what the manifest records); the exit status: 0 when every
    shard is done, 1 when some failed, the manifest could not be written or the job says so, 2 when
    the output is another job's or the job refuses."""
    try:
        with output_lease(job.run, job.name, storage) as lease:
            return _run(job, storage, argv, lease, on_event)
    except LeaseHeld as exc:
        return fail(str(exc))


def _run(job: ShardJob, storage: Storage, argv: list[str], lease: Lease, on_event) -> int:
    run = job.run
    skipped: dict = {}
    if not run.overwrite:
        try:
            skipped, redo = job.finished(storage)
        except ValueError as exc:
            return fail(str(exc))
        for name, reason in sorted(redo.items()):
            print(job.redoing(name, reason), file=sys.stderr)
    items = job.items
    todo = [item for name, item in items.items() if name not in skipped]
    started, t0 = now(), time.perf_counter()
    with ray_session():
        res = resources_from(run, job.stage, job.network, batch_deadline_s=job.batch_deadline_s)
        results, failures, display, placement = run_workers(
            job.label, lambda board: job.worker(res, storage, board), todo, job.submit, res,
            total=len(items), skipped=len(skipped), progress=run.progress, on_event=on_event)
    outcome = Outcome(results, failures, skipped, display, res)
    common = manifest_base(job.name, argv, started, time.perf_counter() - t0, res, placement)
    manifest = job.manifest(common, outcome, storage)
    written = write_manifest(join(run.output, MANIFEST), manifest, storage)
    status = job.report(outcome, manifest)
    return report_failures(failures, lease) or (0 if written else 1) or status


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
def output_lease(run: RunSettings, job: str, storage: Storage) -> Iterator[Lease]:
    """Hold ``run.output`` for this job (``lease``); raises ``LeaseHeld`` naming the job that has it."""
    lease = Lease(run.output, job, storage).acquire(force=run.force)
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
