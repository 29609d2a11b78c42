"""A decoded shard's output, committed in one piece, and checked again on resume.

``NAME.tar`` goes through ``Storage.atomic_output`` (a file record: bytes, sha256, ETag, see
``markers``). ``NAME/`` of PNGs is a folder: locally it is written as ``NAME.tmp-*`` and renamed into
place, so ``NAME/`` never holds a partial set; on S3, where a prefix cannot be renamed, leftovers of
an earlier attempt are deleted first and the files are put one by one. Either way the shard's marker
(written after) is what says it is complete, and it records every file's size, so resume can tell a
full folder from a partial or altered one with one listing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Iterable

from ..io.storage import Storage, is_local, join
from ..records.markers import output_problem


def write_folder(url: str, files: Iterable[tuple[str, bytes]], storage: Storage) -> dict:
    """Write ``(relative name, bytes)`` pairs as the folder ``url``; returns its record for a marker."""
    fs, path = storage.fs(url)
    sizes: dict[str, int] = {}
    if not is_local(url):
        storage.remove(url)
        for rel, data in files:
            storage.write_bytes(join(url, rel), data)
            sizes[rel] = len(data)
        return {"url": url, "files": sizes, "bytes": sum(sizes.values())}
    staging = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        os.makedirs(staging)
        for rel, data in files:
            target = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
            sizes[rel] = len(data)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"url": url, "files": sizes, "bytes": sum(sizes.values())}


def folder_problem(record: dict, storage: Storage) -> str | None:
    """Why the folder a marker records cannot be trusted (files missing, extra or resized), or None."""
    fs, path = storage.fs(record["url"])
    found = storage.retrying(lambda: fs.find(path, detail=True), f"listing {record['url']}")
    root = path.rstrip("/") + "/"
    sizes = {name[len(root):]: int(info["size"]) for name, info in found.items() if name.startswith(root)}
    if sizes != record["files"]:
        differ = len(set(sizes.items()) ^ set(record["files"].items()))
        return f"{record['url']} does not match its marker ({differ} files missing, extra or resized)"
    return None


def decoded_problem(record: dict | None, listing: dict[str, dict], storage: Storage) -> str | None:
    """Why a decoded shard's output (a tar in ``listing``, or a folder) cannot be trusted, or None."""
    if record and "files" in record:
        return folder_problem(record, storage)
    name = record["url"].rstrip("/").rsplit("/", 1)[-1] if record else ""
    return output_problem(record, listing.get(name), storage)
