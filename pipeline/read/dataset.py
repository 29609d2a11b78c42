"""PyTorch datasets over an archive: ``ArchiveDataset`` (iterable: sharded, shuffled, resumable) and
``ArchiveMapDataset`` (map-style, by position in the key index).

The work unit is one row group of one shard. Each epoch has one order, fixed by (seed, epoch): the
units are shuffled (when asked), dealt to ranks (``units[rank::world_size]``), then to DataLoader
workers (``[worker::num_workers]``), so each row is read by exactly one worker of one rank. A worker
streams its units' rows through a seeded shuffle buffer (rows are referred to, not read, until they
leave it). So every worker's stream is deterministic, and resuming is skipping its first N rows
(as MosaicML Streaming and LitData do): each sample carries ``__worker__`` and ``__position__``, the
``ArchiveLoader`` (a DataLoader) notes them in the main process, and ``state_dict()`` holds them.
Skipped rows are never read. Resume needs the same seed, ranks and number of workers.

Decoding runs in the workers, with the decode options given; a row that gives no image (an error
row of the archive, a failed decode, a sample without an image) is skipped and reported on stderr
(``errors="skip"``, counted in ``skipped`` where iterated in-process), or raised (``errors="raise"``).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from .archive import Archive, meta, open_archive
from .restoring import RowError

STATE_VERSION = 1


def _archive(url: str | Archive, options: dict) -> Archive:
    return url if isinstance(url, Archive) else open_archive(url, **options)


def _sample(archive: Archive, row: dict, s: int, transform: Callable | None) -> dict[str, Any]:
    image = archive.decoder.image(row, archive.shards[s].url)
    return {"key": row["key"], "image": transform(image) if transform else image, "meta": meta(row),
            "members": dict(row.get("metadata") or [])}


class ArchiveDataset(IterableDataset):
    """The rows of an archive as dicts: ``key``, ``image`` (PIL, or ``transform(image)``), ``meta``
    (the row's JSON-able fields), ``members`` (the sample's other members by extension), and
    ``__worker__`` / ``__position__`` (where it is in its worker's stream: what resume counts).

    ``url`` is an archive folder or ``s3://`` prefix (or an open ``Archive``); ``rank`` and
    ``world_size`` default to ``torch.distributed``'s when it is initialised; ``buffer_size`` is the
    shuffle buffer in rows; ``storage``, ``endpoint_url``, ``device``, ``weights_dir``, ``weights_url``
    go to ``open_archive``, the other keywords are decode options (``steps``, ``preset``, ...)."""

    def __init__(self, url: str | Archive, *, shuffle: bool = False, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, transform: Callable | None = None, errors: str = "skip",
                 buffer_size: int = 256, **options):
        if errors not in ("skip", "raise"):
            raise ValueError(f"errors must be 'skip' or 'raise', not {errors!r}")
        if rank is None or world_size is None:
            dist = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = (torch.distributed.get_rank() if dist else 0) if rank is None else rank
            world_size = (torch.distributed.get_world_size() if dist else 1) if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.archive = _archive(url, options)
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.transform, self.errors, self.buffer_size = transform, errors, buffer_size
        self.epoch, self.skipped = 0, 0
        self._resume: dict[int, int] = {}  # worker -> rows of its stream already consumed (skipped on the next pass)
        self._seen: dict[int, int] | None = None  # worker -> rows consumed this pass, as the main process saw
        self._workers = 1

    # -- the order -----------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Another epoch, another order (when shuffling); a resume point of another epoch is dropped."""
        if epoch != self.epoch:
            self._resume = {}
        self.epoch = epoch

    def units(self, worker: int = 0, num_workers: int = 1) -> list[tuple[int, int, int]]:
        """The (shard, row group, rows) a worker of this rank reads this epoch, in order."""
        units = self.archive.units()
        order = np.arange(len(units))
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return [units[i] for i in order[self.rank::self.world_size][worker::num_workers]]

    def stream(self, worker: int = 0, num_workers: int = 1) -> Iterator[tuple[int, int, int]]:
        """The (shard, row group, row) of each row a worker reads, in its deterministic order."""
        refs = ((s, g, r) for s, g, n in self.units(worker, num_workers) for r in range(n))
        if not self.shuffle or self.buffer_size <= 1:
            yield from refs
            return
        rng, buffer = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1]), []
        for ref in refs:
            buffer.append(ref)
            if len(buffer) >= self.buffer_size:
                i = int(rng.integers(len(buffer)))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def __len__(self) -> int:
        """The rows this rank reads in an epoch (error rows included)."""
        return sum(n for _, _, n in self.units())

    # -- reading ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        self._check_workers(num_workers)
        in_process = info is None
        if in_process and self._seen is None:
            self._seen = dict(self._resume)
        skip, left, groups = self._resume.get(worker, 0), {}, {}
        for s, g, n in self.units(worker, num_workers):
            left[(s, g)] = n
        for position, (s, g, r) in enumerate(self.stream(worker, num_workers)):
            if position >= skip:
                if (s, g) not in groups:
                    groups[(s, g)] = self.archive.read_group(s, g)
                sample = self._decoded(groups[(s, g)][r], s)
                if sample is not None:
                    sample.update(__worker__=worker, __position__=position)
                    if in_process:
                        self._seen[worker] = position + 1
                    yield sample
            left[(s, g)] -= 1
            if not left[(s, g)]:
                groups.pop((s, g), None)
        if in_process:
            self._finished()

    def _decoded(self, row: dict, s: int) -> dict | None:
        try:
            return _sample(self.archive, row, s, self.transform)
        except RowError as exc:
            if self.errors == "raise":
                raise
            self.skipped += 1
            print(f"ArchiveDataset: skipping {exc}", file=sys.stderr)
            return None

    # -- resume ----------------------------------------------------------------------------------

    def _check_workers(self, num_workers: int) -> None:
        if self._resume and num_workers != self._workers:
            raise ValueError(f"this state was taken with {self._workers} DataLoader workers, not {num_workers}: "
                             "resume with the same num_workers (each worker's order depends on it)")

    def _tracking(self, num_workers: int) -> None:
        """A loader starts a pass with ``num_workers`` workers (0: in-process, counted as 1)."""
        self._check_workers(max(1, num_workers))
        self._workers, self._seen = max(1, num_workers), dict(self._resume)

    def _saw(self, batch) -> None:
        samples = batch if isinstance(batch, list) else [batch]
        for sample in samples:
            workers, positions = sample["__worker__"], sample["__position__"]
            if not isinstance(workers, list):
                workers, positions = [workers], [positions]
            for w, p in zip(workers, positions):
                w, p = int(w), int(p)
                self._seen[w] = max(self._seen.get(w, 0), p + 1)

    def _finished(self) -> None:
        """A pass read to its end: the next one starts the epoch from the beginning."""
        self._resume, self._seen = {}, None

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is in its epoch: resume with ``load_state_dict`` (same seed, ranks, workers)."""
        if self._seen is None:
            raise RuntimeError("no pass is under way that this dataset saw: iterate it in-process, or through "
                               "pipeline.read.ArchiveLoader (a DataLoader that notes what its workers yielded)")
        return {"version": STATE_VERSION, "epoch": self.epoch, "seed": self.seed, "shuffle": self.shuffle,
                "rank": self.rank, "world_size": self.world_size, "num_workers": self._workers,
                "positions": {str(w): p for w, p in sorted(self._seen.items())}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = {"seed": self.seed, "shuffle": self.shuffle, "rank": self.rank, "world_size": self.world_size}
        other = {k: state.get(k) for k in mine if state.get(k) != mine[k]}
        if state.get("version") != STATE_VERSION or other:
            raise ValueError(f"this state cannot resume this dataset: it has {other or state.get('version')}, "
                             f"the dataset {mine}")
        self.epoch, self._workers = state["epoch"], state["num_workers"]
        self._resume = {int(w): int(p) for w, p in state["positions"].items()}
        self._seen = None


def collate_samples(samples: list[dict]) -> dict[str, Any]:
    """A batch of samples: tensors of one shape stacked, every other field as a list."""
    out: dict[str, Any] = {}
    for name in samples[0]:
        values = [s[name] for s in samples]
        tensors = all(isinstance(v, torch.Tensor) for v in values)
        out[name] = torch.stack(values) if tensors and len({v.shape for v in values}) == 1 else values
    return out


class ArchiveLoader(DataLoader):
    """A ``DataLoader`` over an ``ArchiveDataset`` that notes, in the main process, what its workers
    yielded, so ``dataset.state_dict()`` can be taken mid-epoch; batches are ``collate_samples``'."""

    def __init__(self, dataset: ArchiveDataset, batch_size: int | None = 1, **kwargs):
        kwargs.setdefault("collate_fn", collate_samples)
        super().__init__(dataset, batch_size=batch_size, **kwargs)

    def __iter__(self):
        self.dataset._tracking(self.num_workers)
        for batch in super().__iter__():
            self.dataset._saw(batch)
            yield batch
        self.dataset._finished()


class ArchiveMapDataset(Dataset):
    """Map-style: item ``i`` is the ``i``-th row of the key index (shards by name, rows as stored), as
    ``ArchiveDataset`` yields it; a row that gives no image raises ``RowError``. ``keys[i]`` is its key."""

    def __init__(self, url: str | Archive, *, transform: Callable | None = None, **options):
        self.archive, self.transform = _archive(url, options), transform
        self.rows = [(s, g, r) for s, g, n in self.archive.units() for r in range(n)]
        by_place = {place: key for key, place in self.archive.places.items()}
        self.keys = [by_place.get(p) for p in self.rows]  # None: a repeated key's later row (``open_archive``)
        self._group: tuple[tuple[int, int], list[dict]] | None = None  # the last row group read

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s, g, r = self.rows[i]
        if self._group is None or self._group[0] != (s, g):
            self._group = ((s, g), self.archive.read_group(s, g))
        return _sample(self.archive, self._group[1][r], s, self.transform)
