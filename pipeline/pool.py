"""Running shards on a pool of codec actors, and what happens when a worker or a node is lost.

Each actor runs one shard at a time. Ray restarts an actor whose process died and retries its task
(``Resources.options``), which covers a killed worker on a live node. When that is not enough (the
node is gone, and the retries ran out while Ray had not yet noticed), the shard is given to a new
actor after a backoff (``backoff_s``, doubling: long enough for Ray to declare the node dead), up to
``retries`` times; the lost actor is killed for good. A shard that raised its own exception already
had the worker's retries (``Storage.retrying``): it is a failure, reported, and the pool carries on.
Bookkeeping (the progress board) stays on the driver's node, so only shards are ever lost.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .progress import ProgressDisplay


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


def run_pool(make_actor: Callable[[], Any], size: int, items: list, call: Callable, board, display: ProgressDisplay,
             on_event: Callable[[dict], None] | None = None, retries: int = 3, backoff_s: float = 5.0,
             created: list | None = None) -> tuple[dict, dict]:
    """Run ``call(actor, item)`` for every item on up to ``size`` actors from ``make_actor()``; returns
    (results, failures) by item. Every actor made is appended to ``created`` (the caller kills them)."""
    created = [] if created is None else created
    todo, waiting = deque((item, 0) for item in items), []  # waiting: (time it may go, item, attempt)
    idle, running, live = [], {}, 0
    results, failures = {}, {}
    while todo or waiting or running:
        now = time.monotonic()
        todo.extend((item, attempt) for at, item, attempt in waiting if at <= now)
        waiting = [w for w in waiting if w[0] > now]
        while todo and (idle or live < size):
            if not idle:
                created.append(make_actor())
                idle.append(created[-1])
                live += 1
            actor, (item, attempt) = idle.pop(), todo.popleft()
            running[call(actor, item)] = (actor, item, attempt)
        if running:
            done = ray.wait(list(running), num_returns=1, timeout=0.1)[0]
        else:  # only shards waiting out their backoff
            done = []
            time.sleep(0.1)
        for event in ray.get(board.drain.remote()):
            display.event(event)
            if on_event is not None:
                on_event(event)
        for ref in done:
            actor, item, attempt = running.pop(ref)
            ok, lost, value = _outcome(ref)
            if lost:
                ray.kill(actor, no_restart=True)
                live -= 1
                if attempt < retries:
                    delay = backoff_s * 2**attempt
                    print(f"shard {item}: {value}; retrying on a new worker in {delay:.0f}s", flush=True)
                    waiting.append((time.monotonic() + delay, item, attempt + 1))
                    continue
                value = f"{value}, on each of {attempt + 1} workers"
            else:
                idle.append(actor)
            (results if ok else failures)[item] = value
            display.shard_finished(item, value if ok else None)
    return results, failures
