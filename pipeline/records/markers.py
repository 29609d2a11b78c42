"""Completion markers you can trust.

A unit of work (an input shard -> its Parquet file; an archive file -> its decoded tar or folder) is
complete when its marker exists. The marker is a JSON file written last, and it records what it
vouches for:

    "input":   the input's identity when it was read: size and ETag (S3) or size and mtime (local)
    "output":  the committed output: url, bytes, sha256 and, on S3, the ETag the store gave it
    "rows":    how many rows the unit holds

Resume trusts a marker only when the output still matches it (S3: size and ETag, both from the one
listing, nothing downloaded; local: size, then the sha256 recomputed) and, where the caller checks
it, the input's identity is unchanged. Anything else is redone and the reason is printed. Markers
are found with one listing and read in parallel, so resuming N units costs O(N).

Why S3 gets no deeper check (no download and sha256): S3 objects are never changed in place, only
written again, and every write gets a new ETag unless it stores the same bytes the same way (a single
PUT: the MD5 of the bytes; multipart: the MD5 of the parts' MD5s plus "-N", so the same bytes in other
parts also read as replaced, and are redone; SSE-KMS: unrelated to the bytes, new per write). Bytes
that rot at rest are S3's to detect (it checksums what it stores, and a read fails rather than return
them), and an upload is checksummed on the way in; the marker records the ETag S3 reports after the
upload. What a download would add is a forged MD5 collision by someone who can write the bucket,
and so rewrite the marker as well, for a full read of the archive on every resume (a 1 TB archive is
1 TB of transfer, against one listing). The decoder reads each file whole anyway and refuses what does
not parse (``archive_rows``, the container's CRC).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..io.storage import Storage, etag, is_local, join
from .files import Record, RecordError

READ_THREADS = 16


def identity(info: dict | None) -> dict | None:
    """What identifies a file's content cheaply: its size plus the ETag (S3) or mtime (local)."""
    if info is None:
        return None
    tag = etag(info)
    return {"size": int(info["size"]), "etag": tag} if tag else {"size": int(info["size"]), "mtime": info.get("mtime")}


def output_problem(record: dict | None, listed: dict | None, storage: Storage) -> str | None:
    """Why the output named by a marker's ``record`` cannot be trusted, or None when it can."""
    if not record:
        return "the marker records no output (written by an older version)"
    if listed is None:
        return f"{record['url']} is missing"
    if int(listed["size"]) != record["bytes"]:
        return f"{record['url']} is {listed['size']} bytes, the marker says {record['bytes']}"
    if record.get("etag") and etag(listed):
        return None if etag(listed) == record["etag"] else f"{record['url']} was replaced (ETag changed)"
    if is_local(record["url"]):
        fs, path = storage.fs(record["url"])
        with fs.open(path, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != record["sha256"]:
                return f"{record['url']} does not match the sha256 in its marker (corrupt or replaced)"
    return None


@dataclass
class Markers:
    """The markers under one prefix: ``found`` by name, ``listing`` of the prefix, and ``problems``
    (name -> why the unit counts as incomplete), for the job to print."""

    found: dict[str, Record] = field(default_factory=dict)
    listing: dict[str, dict] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def verified(self, storage: Storage, output_name) -> dict[str, Record]:
        """The markers whose outputs still match (``output_name(name)`` is the output's file name);
        the others move to ``problems``."""
        names = list(self.found)
        with ThreadPoolExecutor(READ_THREADS) as pool:
            checks = pool.map(lambda n: output_problem(self.found[n].output,
                                                       self.listing.get(output_name(n)), storage), names)
            for name, problem in zip(names, list(checks)):
                if problem is not None:
                    self.problems[name] = problem
        return {n: m for n, m in self.found.items() if n not in self.problems}


def read_markers(prefix: str, suffix: str, record: type[Record], storage: Storage,
                 names: set[str] | None = None) -> Markers:
    """Every ``NAME + suffix`` marker directly under ``prefix`` (only ``names`` when given), read as
    ``record`` (a ``records`` type)."""
    out = Markers(listing=storage.listing(prefix))
    wanted = [n[: -len(suffix)] for n in out.listing if n.endswith(suffix)]
    wanted = [n for n in wanted if names is None or n in names]

    def load(name: str) -> Record | str:
        try:
            return record.read(join(prefix, name + suffix), storage)
        except RecordError as exc:
            return f"{exc}: truncated or corrupt, so its shard is redone"

    with ThreadPoolExecutor(READ_THREADS) as pool:
        for name, marker in zip(wanted, list(pool.map(load, wanted))):
            if isinstance(marker, str):
                out.problems[name] = marker
            else:
                out.found[name] = marker
    return out
