"""An archive's files, found with one listing of its prefix: each shard's Parquet file and its marker
(``NAME.stats.json``, ``records.files.ShardStats``), and the job's manifest."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..io.storage import Storage, join, redact
from ..records.files import (AUDIT_FILE, AUDIT_TABLE_SUFFIX, MANIFEST, PARQUET_SUFFIX, STATS_SUFFIX, CompressManifest,
                             RecordError, ShardStats)
from ..records.markers import read_markers


@dataclass
class Shard:
    """One shard of an archive: ``url`` of its Parquet file, ``size`` as listed (None: the file is
    missing), its marker's ``stats`` (None: no marker, or ``problem`` says why it does not read)."""

    name: str
    url: str
    size: int | None
    stats: ShardStats | None = None
    problem: str | None = None

    def incomplete(self) -> str | None:
        """Why this shard is not a complete one (a failed shard), or None."""
        if self.size is None:
            return f"{self.name}{PARQUET_SUFFIX} is missing though its marker is there: re-archive it (compress again)"
        if self.problem:
            return self.problem
        if self.stats is None:
            return (f"{self.name}{PARQUET_SUFFIX} has no marker ({self.name}{STATS_SUFFIX}): the compress job did not "
                    "finish it; run the compress job again with the same arguments")
        return None


@dataclass
class ArchiveFiles:
    url: str
    shards: dict[str, Shard] = field(default_factory=dict)  # by name, sorted
    manifest: CompressManifest | None = None
    manifest_problem: str | None = None  # why the manifest is missing or does not read


def archive_files(url: str, storage: Storage) -> ArchiveFiles:
    """The files under the archive prefix ``url``; ``FileNotFoundError`` when it holds no archive."""
    markers = read_markers(url, STATS_SUFFIX, ShardStats, storage)
    parquets = {n[: -len(PARQUET_SUFFIX)]: e for n, e in markers.listing.items()
                if n.endswith(PARQUET_SUFFIX) and not n.endswith(AUDIT_TABLE_SUFFIX) and n != AUDIT_FILE}
    names = sorted(set(parquets) | set(markers.found) | set(markers.problems))
    if not names:
        raise FileNotFoundError(f"{redact(url)} holds no archive: no {PARQUET_SUFFIX} files or {STATS_SUFFIX} markers "
                                "directly under it (give the compress job's --output)")
    out = ArchiveFiles(url)
    for name in names:
        listed = parquets.get(name)
        out.shards[name] = Shard(name, join(url, name + PARQUET_SUFFIX), int(listed["size"]) if listed else None,
                                 markers.found.get(name), markers.problems.get(name))
    if MANIFEST not in markers.listing:
        out.manifest_problem = f"no {MANIFEST}: the compress job has not finished (or this archive predates it)"
    else:
        try:
            out.manifest = CompressManifest.read(join(url, MANIFEST), storage)
        except RecordError as exc:
            out.manifest_problem = str(exc)
    return out
