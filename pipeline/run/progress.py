"""Live progress: workers post events to a board actor; the driver drains it and draws one line.

Events are small dicts posted without waiting (``board.post.remote(event)``), so reporting never
slows a shard down; a worker waits for its posts only once its shard is done, before returning its
result, so the driver (which drains the board after it sees a result) sees every event of a shard:
``{"shard": url, "images": n, "bytes_in": b, "shard_bytes": s}`` while a shard runs. The display
shows shards and images done, images/s, MB in and out and an ETA.
"""

from __future__ import annotations

import sys
import time

import ray
from tqdm import tqdm

from ..records.files import Record


@ray.remote(num_cpus=0)
class ProgressBoard:
    def __init__(self):
        self.events: list[dict] = []

    def post(self, event: dict) -> None:
        self.events.append(event)

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out


class ProgressDisplay:
    """Counts and the live line; ``summary()`` is the final one-line report."""

    def __init__(self, job: str, total_shards: int, skipped: int = 0, enabled: bool = True):
        self.job, self.total, self.t0 = job, total_shards, time.perf_counter()
        self.done, self.skipped, self.failed = 0, skipped, 0
        self.images, self.errors, self.bytes_in, self.bytes_out = 0, 0, 0, 0
        self.partial: dict[str, tuple[int, int, float]] = {}  # in-flight shard -> (pid, images, fraction)
        self.finished: set[str] = set()
        self.bar = tqdm(total=total_shards, unit="shard", desc=job, file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, mininterval=0.5, bar_format="{percentage:3.0f}%|{bar:16}| {desc}")

    def event(self, ev: dict) -> None:
        if ev["shard"] in self.finished:  # a late event: the shard's stats already counted
            return
        pid, images, _ = self.partial.get(ev["shard"], (ev.get("pid"), 0, 0.0))
        if pid != ev.get("pid"):  # a retry on a fresh worker starts the shard over
            images = 0
        size = ev.get("shard_bytes")
        fraction = min(1.0, ev.get("bytes_in", 0) / size) if size else 0.0
        self.partial[ev["shard"]] = (ev.get("pid"), images + ev.get("images", 0), fraction)
        self._draw()

    def images_seen(self) -> int:
        return self.images + sum(p[1] for p in self.partial.values())

    def shard_finished(self, shard: str, stats: Record | None) -> None:
        self.partial.pop(shard, None)
        self.finished.add(shard)
        if stats is None:
            self.failed += 1
        else:
            self.done += 1
            self.images += stats.rows
            self.errors += stats.errors
            self.bytes_in += getattr(stats, "bytes_in", 0)  # a shard archived; a decoded one has no such count
            self.bytes_out += getattr(stats, "parquet_bytes", getattr(stats, "bytes_out", 0))
        self._draw()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _draw(self) -> None:
        finished = self.done + self.failed
        progress = finished + sum(p[2] for p in self.partial.values())
        rate = self.images_seen() / max(self.elapsed(), 1e-9)
        todo = self.total - self.skipped
        eta = self.elapsed() * (todo - progress) / progress if progress > 0 else float("nan")
        self.bar.n = self.skipped + progress
        self.bar.set_description_str(
            f"{self.job}: shards {self.skipped + finished}/{self.total}, {self.images_seen()} img, {rate:.1f} img/s, "
            f"{self.bytes_in / 1e6:.1f} MB in, {self.bytes_out / 1e6:.1f} MB out, ETA {_clock(eta)}",
            refresh=True,
        )

    def close(self) -> None:
        self.bar.close()

    def summary(self) -> str:
        secs = self.elapsed()
        return (
            f"{self.job}: {self.done} shards done, {self.skipped} skipped, {self.failed} failed "
            f"of {self.total}; {self.images} images ({self.errors} error rows) in {secs:.1f}s "
            f"= {self.images / max(secs, 1e-9):.1f} img/s; {self.bytes_in / 1e6:.2f} MB in, "
            f"{self.bytes_out / 1e6:.2f} MB out"
        )


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
