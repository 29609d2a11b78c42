"""What an archive holds (``diffarc-info``), from its Parquet footers, its small columns and its markers:
never a bitstream or a metadata column, so it costs a small part of the archive's bytes (``bytes_read``).

A row's kept bytes come from its small columns: an ``original`` row keeps its file (``orig_bytes``), any
other row that keeps something has ``bpp`` = bytes * 8 / (width * height) (``records.row``).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..io.storage import Storage, redact
from .columns import EMPTY, read_columns
from .listing import ArchiveFiles, archive_files

ERROR_ROWS_SHOWN = 20


@dataclass
class ArchiveInfo:
    """An archive's files and the small columns of all its readable shards (one table)."""

    files: ArchiveFiles
    rows: pa.Table
    unreadable: dict[str, str]  # shard name -> why its file does not read
    bytes_read: int
    reads: int  # read calls (each a request on S3)
    file_bytes: int

    def keys(self, pattern: str = "*") -> Iterator[tuple[str, str]]:
        """(shard, key) of every row whose key matches the glob ``pattern``, in stored order."""
        match = fnmatch.fnmatchcase if pattern != "*" else (lambda key, _: True)
        for shard, key in zip(self.rows["shard"].to_pylist(), self.rows["key"].to_pylist()):
            if match(key, pattern):
                yield shard, key

    def duplicates(self) -> list[dict]:
        """Rows whose original files are the same bytes (``orig_sha256``): one entry per file held more
        than once, {orig_sha256, orig_bytes, copies: [{shard, key}, ...]}, the largest waste first."""
        sha = self.rows["orig_sha256"]
        repeated = {c["values"] for c in pc.value_counts(sha.drop_null()).to_pylist() if c["counts"] > 1}
        if not repeated:
            return []
        mask = pc.is_in(sha, pa.array(sorted(repeated), pa.string()))
        picked = self.rows.filter(pc.fill_null(mask, False)).select(["orig_sha256", "orig_bytes", "shard", "key"])
        groups: dict[str, dict] = {}
        for r in picked.to_pylist():
            g = groups.setdefault(r["orig_sha256"], {"orig_sha256": r["orig_sha256"], "orig_bytes": r["orig_bytes"],
                                                     "copies": []})
            g["copies"].append({"shard": r["shard"], "key": r["key"]})
        return sorted(groups.values(), key=lambda g: (-(len(g["copies"]) - 1) * (g["orig_bytes"] or 0), g["orig_sha256"]))

    def summary(self) -> dict:
        """Everything ``diffarc-info`` prints, as JSON-able data (docs/inspecting.md: Info)."""
        t, files = self.rows, self.files
        errors = t.filter(pc.invert(pc.is_null(t["error"])))
        dups = self.duplicates()
        extra = [(len(g["copies"]) - 1, g["orig_bytes"] or 0) for g in dups]
        orig, kept = total(t["orig_bytes"]), total(t["kept_bytes"])
        manifest = files.manifest
        return {
            "archive": redact(files.url),
            "codec": {"given": manifest.codec, "codec_id": manifest.codec_id} if manifest else None,
            "codec_ids": sorted(set(t["codec_id"].to_pylist())),
            "manifest": None if manifest else files.manifest_problem,
            "shards": {"files": len(files.shards),
                       "complete": sum(s.incomplete() is None and s.name not in self.unreadable
                                       for s in files.shards.values()),
                       "failed": self.failed_shards(),
                       "truncated": [{"shard": s.name, "why": s.stats.truncated} for s in files.shards.values()
                                     if s.stats is not None and s.stats.truncated]},
            "rows": len(t), "error_rows": len(errors),
            "errors": [{"shard": s, "key": k, "error": e} for s, k, e in
                       zip(*(errors[c].to_pylist()[:ERROR_ROWS_SHOWN] for c in ("shard", "key", "error")))],
            "paths": path_table(t),
            "size": {"parquet_bytes": self.file_bytes, "kept_bytes": kept, "orig_bytes": orig,
                     "kept_of_orig": round(kept / orig, 4) if orig else None,
                     "parquet_of_orig": round(self.file_bytes / orig, 4) if orig else None,
                     "input_bytes": sum(s.stats.bytes_in for s in files.shards.values() if s.stats is not None)},
            "duplicates": {"files": len(dups), "extra_rows": sum(n for n, _ in extra),
                           "extra_orig_bytes": sum(n * b for n, b in extra)},
            "read": {"bytes_read": self.bytes_read, "reads": self.reads, "file_bytes": self.file_bytes},
        }

    def failed_shards(self) -> list[dict]:
        """Shards that are not complete or not readable, and the manifest's failures (input shards that
        left no file: {shard: its URL, error}), with why."""
        out = [{"shard": s.name, "error": why} for s in self.files.shards.values() if (why := s.incomplete())]
        out += [{"shard": name, "error": why} for name, why in sorted(self.unreadable.items())]
        named = {f["shard"] for f in out}
        manifest = self.files.manifest
        out += [f for f in (manifest.failures if manifest else []) if f.get("shard") not in named]
        return out


def total(column) -> int:
    return int(pc.sum(column).as_py() or 0)


def path_table(t: pa.Table) -> list[dict]:
    """Rows, kept bytes, original bytes and bpp (mean, sd, min, median, p95, max) by path and codec id."""
    labels = pc.binary_join_element_wise(t["stored"], pc.fill_null(t["codec_id"], ""), "\t").to_numpy(zero_copy_only=False)
    kinds, which = np.unique(labels, return_inverse=True) if len(labels) else ([], np.array([], int))
    bpp = pc.fill_null(t["bpp"], np.nan).to_numpy(zero_copy_only=False)
    kept, orig = t["kept_bytes"].to_numpy(), pc.fill_null(t["orig_bytes"], 0).to_numpy(zero_copy_only=False)
    out = []
    for i, label in enumerate(kinds):
        rows = which == i
        b = bpp[rows][~np.isnan(bpp[rows])]
        stored_as, codec_id = label.split("\t")
        out.append({"stored_as": stored_as, "codec_id": codec_id, "rows": int(rows.sum()),
                    "kept_bytes": int(kept[rows].sum()), "orig_bytes": int(orig[rows].sum()),
                    "bpp": {"mean": float(b.mean()), "sd": float(b.std()), "min": float(b.min()),
                            "p50": float(np.median(b)), "p95": float(np.percentile(b, 95)), "max": float(b.max())}
                    if len(b) else None})
    return sorted(out, key=lambda p: -p["rows"])


def archive_info(url: str, storage: Storage) -> ArchiveInfo:
    """The archive under ``url`` read as the module says; a shard whose file does not read is listed
    in ``unreadable`` (a failed shard), the others are read."""
    files = archive_files(url, storage)
    present = [s for s in files.shards.values() if s.size is not None]
    tables, unreadable = read_columns(storage, [(s.name, s.url) for s in present])
    read = [tables[s.name] for s in present if s.name in tables]
    rows = pa.concat_tables([t for t, _ in read], promote_options="permissive") if read else EMPTY
    return ArchiveInfo(files, rows, unreadable, sum(n for _, (n, _) in read), sum(k for _, (_, k) in read),
                       sum(s.size for s in present))


def print_summary(s: dict) -> None:
    """The summary for people (``--json`` prints ``s`` itself)."""
    codec = s["codec"]["codec_id"] if s["codec"] else ", ".join(s["codec_ids"]) or "none"
    sh = s["shards"]
    print(f"archive {s['archive']}: {s['rows']} rows in {sh['files']} shards ({sh['complete']} complete), codec {codec}")
    if s["manifest"]:
        print(f"  manifest: {s['manifest']}")
    print(f"  {'path':<10} {'codec id':<28} {'rows':>8} {'kept MB':>10} {'of orig':>8} "
          f"{'bpp mean':>9} {'sd':>6} {'min':>6} {'p50':>6} {'p95':>6} {'max':>6}")
    for p in s["paths"]:
        b = p["bpp"]
        bpp = " ".join(f"{b[k]:{w}.3f}" for k, w in (("mean", 9), ("sd", 6), ("min", 6), ("p50", 6), ("p95", 6),
                                                       ("max", 6))) if b else f"{'-':>9}"
        share = f"{p['kept_bytes'] / p['orig_bytes']:8.1%}" if p["orig_bytes"] else f"{'-':>8}"
        print(f"  {p['stored_as']:<10} {p['codec_id']:<28} {p['rows']:>8} {p['kept_bytes'] / 1e6:>10.3f} {share} {bpp}")
    z = s["size"]
    ratio = lambda x: f"{x:.1%}" if x is not None else "-"  # noqa: E731
    print(f"  size: {z['parquet_bytes']} bytes of Parquet, {z['kept_bytes']} kept image bytes, against "
          f"{z['orig_bytes']} bytes of original images ({ratio(z['parquet_of_orig'])} and {ratio(z['kept_of_orig'])}); "
          f"the input shards were {z['input_bytes']} bytes")
    d = s["duplicates"]
    print(f"  duplicates: {d['files']} files held more than once, {d['extra_rows']} extra rows, "
          f"{d['extra_orig_bytes']} original bytes (--duplicates FILE lists them)")
    print(f"  error rows: {s['error_rows']}" + "".join(f"\n    {e['shard']} {e['key']}: {e['error']}" for e in s["errors"]))
    if s["error_rows"] > len(s["errors"]):
        print(f"    ... and {s['error_rows'] - len(s['errors'])} more (--json lists the first {ERROR_ROWS_SHOWN})")
    print(f"  failed shards: {len(sh['failed'])}" + "".join(f"\n    {f['shard']}: {f['error']}" for f in sh["failed"]))
    for t in sh["truncated"]:
        print(f"  truncated input: {t['shard']}: {t['why']}")
    r = s["read"]
    print(f"  read {r['bytes_read']} of {r['file_bytes']} bytes in {r['reads']} reads (footers and small columns only)")


def duplicates_jsonl(dups: list[dict]) -> bytes:
    """``--duplicates FILE``: one JSON object per file held more than once."""
    return "".join(json.dumps(d, sort_keys=True) + "\n" for d in dups).encode()
