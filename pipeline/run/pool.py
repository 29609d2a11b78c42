"""Running shards on a pool of codec actors, and what happens when a worker or a node is lost or stuck.

Each actor runs one shard at a time. Ray restarts an actor whose process died and retries its task
(``Resources.options``), which covers a killed worker on a live node. When that is not enough (the
node is gone, and the retries ran out while Ray had not yet noticed), the shard is given to a new
actor after a backoff (``backoff_s``, doubling: long enough for Ray to declare the node dead), up to
``retries`` times; the lost actor is killed for good. A shard that raised its own exception already
had the worker's retries (``Storage.retrying``): it is a failure, reported, and the pool carries on.

A worker can also hang without dying (a read that never returns, an encode that never ends). Workers
post a progress event per batch (``progress``); a shard with no event for ``stall_s`` seconds since
it was handed out or since its last event has stalled, and is handled like a lost worker: its actor
is killed, the shard retried on a new one, and after the retries it is a failure (never marked done).
A new actor's start-up (a worker process, imports, loading the codec: long on a loaded or cold node)
is not the shard's: its clock starts when the actor answers a first call, or after ``START_GRACE_S``.
Bookkeeping (the progress board) stays on the driver's node, so only shards are ever lost.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..io.faults import seconds_from_env
from .progress import ProgressDisplay

ENV_BACKOFF = "DIFFARC_SHARD_BACKOFF_S"
BACKOFF_S = 5.0  # a lost or stalled shard's first wait before a new worker (doubling), unless $DIFFARC_SHARD_BACKOFF_S says


def on_this_node() -> NodeAffinitySchedulingStrategy:
    """Pin an actor or task to the driver's node."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _outcome(ref) -> tuple[bool, bool, Any]:
    """(ok, lost, result or reason) of a finished shard task."""
    try:
        return True, False, ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the shard's own exception, after the worker's retries
        cause = exc.cause if exc.cause is not None else exc
        return False, False, f"{type(cause).__name__}: {cause}"
    except ray.exceptions.RayError as exc:  # the actor, its process or its node is gone
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return False, True, f"its worker was lost ({type(exc).__name__}: {first})"


START_GRACE_S = 600.0  # the most a new actor's start-up may take before its shard's stall clock runs anyway


@dataclass
class _Run:
    """A shard handed to an actor: which attempt (0 the first), and when it last showed progress."""

    actor: Any
    item: Any
    attempt: int
    seen: float  # time.monotonic() of its hand-out, its actor's start or its latest progress event
    starting: Any = None  # a new actor's first call (``ready``), until it answers: start-up is no stall


class _Pool:
    """The pool's state: shards to do, waiting out a backoff or running; idle actors; the outcomes."""

    def __init__(self, make_actor: Callable[[], Any], size: int, call: Callable, display: ProgressDisplay,
                 retries: int, backoff_s: float, created: list):
        self.make_actor, self.size, self.call, self.display = make_actor, size, call, display
        self.retries, self.backoff_s, self.created = retries, backoff_s, created
        self.todo: deque = deque()  # (item, attempt)
        self.waiting: list = []  # (time it may go, item, attempt)
        self.idle: list = []
        self.running: dict[Any, _Run] = {}  # by task ref
        self.live = 0
        self.results: dict = {}
        self.failures: dict = {}

    def busy(self) -> bool:
        return bool(self.todo or self.waiting or self.running)

    def hand_out(self) -> None:
        """Give the shards whose turn it is (new, or past their backoff) to idle actors or new ones."""
        now = time.monotonic()
        self.todo.extend((item, attempt) for at, item, attempt in self.waiting if at <= now)
        self.waiting = [w for w in self.waiting if w[0] > now]
        while self.todo and (self.idle or self.live < self.size):
            starting = None
            if not self.idle:
                self.created.append(self.make_actor())
                self.idle.append(self.created[-1])
                self.live += 1
                starting = self.created[-1].ready.remote()  # before the shard: answered once the actor is up
            actor, (item, attempt) = self.idle.pop(), self.todo.popleft()
            self.running[self.call(actor, item)] = _Run(actor, item, attempt, time.monotonic(), starting)

    def release_idle(self) -> None:
        """Nothing left to hand out: end the idle actors, so their CPUs and GPUs go to an actor Ray is
        restarting elsewhere (its node lost: with every CPU in the plan, it would wait for them forever)."""
        if not self.todo and not self.waiting:
            for actor in self.idle:
                ray.kill(actor, no_restart=True)
            self.live -= len(self.idle)
            self.idle = []

    def progressed(self, item, now: float) -> None:
        for run in self.running.values():
            if run.item == item:
                run.seen = now

    def finished(self, ref) -> None:
        run = self.running.pop(ref)
        ok, lost, value = _outcome(ref)
        if lost:
            self.lose(run, value)
        else:
            self.idle.append(run.actor)
            self.record(run.item, ok, value)

    def check_stalls(self, stall_s: float, now: float) -> None:
        for ref, run in list(self.running.items()):
            if run.starting is not None:
                if ray.wait([run.starting], timeout=0)[0]:  # up (or dead: then its shard's task fails too)
                    run.starting, run.seen = None, now
                elif now - run.seen <= stall_s + START_GRACE_S:
                    continue
            if now - run.seen > stall_s:
                del self.running[ref]  # its task ends with the actor: nothing to wait for
                self.lose(run, f"it stalled (no progress for {stall_s:g}s, --stall-timeout)")

    def lose(self, run: _Run, reason: str) -> None:
        """The shard's worker is gone or stuck: kill it for good, then retry the shard on a new one or give up."""
        ray.kill(run.actor, no_restart=True)
        self.live -= 1
        if run.attempt < self.retries:
            delay = self.backoff_s * 2**run.attempt
            print(f"shard {run.item}: {reason}; retrying on a new worker in {delay:.0f}s", flush=True)
            self.waiting.append((time.monotonic() + delay, run.item, run.attempt + 1))
        else:
            self.record(run.item, False, f"{reason}, on each of {run.attempt + 1} workers")

    def record(self, item, ok: bool, value) -> None:
        (self.results if ok else self.failures)[item] = value
        self.display.shard_finished(item, value if ok else None)


def run_pool(make_actor: Callable[[], Any], size: int, items: list, call: Callable, board, display: ProgressDisplay,
             on_event: Callable[[dict], None] | None = None, retries: int = 3, backoff_s: float | None = None,
             stall_s: float | None = None, created: list | None = None) -> tuple[dict, dict]:
    """Run ``call(actor, item)`` for every item on up to ``size`` actors from ``make_actor()`` (each
    answering ``ready()`` once up); returns
    (results, failures) by item. Progress events name their shard as ``item`` (``"shard"``); ``stall_s``
    None or 0: no stall watchdog; ``backoff_s`` None: ``$DIFFARC_SHARD_BACKOFF_S``, else ``BACKOFF_S``. Every
    actor made is appended to ``created`` (the caller kills them)."""
    backoff_s = seconds_from_env(ENV_BACKOFF, BACKOFF_S) if backoff_s is None else backoff_s
    pool = _Pool(make_actor, size, call, display, retries, backoff_s, [] if created is None else created)
    pool.todo.extend((item, 0) for item in items)
    while pool.busy():
        pool.hand_out()
        if pool.running:
            done = ray.wait(list(pool.running), num_returns=1, timeout=0.1)[0]
        else:  # only shards waiting out their backoff
            done = []
            time.sleep(0.1)
        now = time.monotonic()
        for event in ray.get(board.drain.remote()):
            display.event(event)
            if on_event is not None:
                on_event(event)
            pool.progressed(event.get("shard"), now)
        for ref in done:
            pool.finished(ref)
        pool.release_idle()
        if stall_s:
            pool.check_stalls(stall_s, now)
    return pool.results, pool.failures
