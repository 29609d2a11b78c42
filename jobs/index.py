"""Write the key index of an archive written before compress wrote one (or whose index is stale).

    diffarc-index out/archive                     # NAME.index.arrow beside each NAME.parquet
    diffarc-index s3://bucket/archive --overwrite

The index (``pipeline/records/index.py``) maps each key to its row group and row, so that
``open_archive`` opens without reading every shard's keys and a lookup reads one row group. It is
built from each Parquet file's footer and ``key`` column only. A shard whose index matches its
Parquet file is left alone unless --overwrite. Exit status: 0 when every complete shard has a current
index, 1 when a shard could not be indexed (each is named with the reason), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from pipeline.io.faults import is_transient
from pipeline.io.storage import Storage, absolute, add_endpoint_flag, join, redact
from pipeline.records import index as key_index
from pipeline.records.files import PARQUET_SUFFIX, STATS_SUFFIX, ShardStats
from pipeline.records.markers import read_markers

THREADS = 8


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffarc-index", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archive", help="archive folder or URL prefix (s3://...)")
    p.add_argument("--shards", default=None, help="only archive shards whose name matches this glob")
    p.add_argument("--overwrite", action="store_true", help="write every index again, even current ones")
    add_endpoint_flag(p)
    return p


def index_shard(archive: str, name: str, stats: ShardStats, listing: dict, storage: Storage,
                overwrite: bool) -> tuple[str, int]:
    """('written' | 'current', rows) for one complete shard; raises with the reason when it cannot."""
    listed = listing.get(name + PARQUET_SUFFIX)
    if listed is None:
        raise FileNotFoundError(f"{name}{PARQUET_SUFFIX} is missing though its stats marker says it is complete")
    url = join(archive, name + key_index.INDEX_SUFFIX)
    if not overwrite and name + key_index.INDEX_SUFFIX in listing:
        try:
            if key_index.read(url, storage).current(listed["size"], stats):
                return "current", stats.rows
        except ValueError:
            pass  # not an index: written again below
    built = key_index.build(join(archive, name + PARQUET_SUFFIX), storage)
    built.parquet_sha256 = (stats.output or {}).get("sha256")
    if len(built.keys) != stats.rows:
        raise ValueError(f"{name}{PARQUET_SUFFIX} holds {len(built.keys)} rows, its stats marker says {stats.rows}: "
                         "re-archive that shard (diffarc-compress --overwrite)")
    key_index.write(built, url, storage)
    return "written", len(built.keys)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    archive, storage = absolute(args.archive), Storage.from_env(args.endpoint_url)
    markers = read_markers(archive, STATS_SUFFIX, ShardStats, storage)
    names = sorted(n for n in markers.found if args.shards is None or fnmatch.fnmatchcase(n, args.shards))
    for name, problem in sorted(markers.problems.items()):
        print(f"skipping shard {name}: {problem}", file=sys.stderr)
    if not names:
        print(f"diffarc-index: no complete archive shards under {redact(archive)}"
              f"{' matching ' + repr(args.shards) if args.shards else ''} (expected NAME{STATS_SUFFIX} files)",
              file=sys.stderr)
        return 2
    t0, done, failed = time.perf_counter(), {"written": 0, "current": 0, "rows": 0}, {}

    def one(name: str):
        try:
            return index_shard(archive, name, markers.found[name], markers.listing, storage, args.overwrite)
        except Exception as exc:
            if is_transient(exc):
                raise
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        for name, result in zip(names, pool.map(one, names)):
            if isinstance(result, Exception):
                failed[name] = f"{type(result).__name__}: {result}"
                print(f"shard {name} not indexed: {failed[name]}", file=sys.stderr)
            else:
                done[result[0]] += 1
                done["rows"] += result[1]
    print(f"diffarc-index {redact(archive)}: {done['written']} indexes written, {done['current']} already current, "
          f"{len(failed)} failed; {done['rows']} rows in {time.perf_counter() - t0:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
