"""Where bytes live: local paths and fsspec URLs (s3://...), atomic commits, retries with backoff.

S3-compatible stores are reached through ``--endpoint-url`` or the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` environment variables; credentials come from the standard AWS chain and are
never read, logged or written here.

A file is committed in one piece: it is written to a local temporary file first, then renamed into
place (local destinations, same directory) or uploaded with one PUT / one multipart upload (S3),
so a reader sees the whole object or nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlsplit, urlunsplit

import fsspec

from .faults import is_transient, seconds_from_env

T = TypeVar("T")

ENV_BACKOFF = "DIFFARC_RETRY_BACKOFF_S"
BACKOFF_S = 0.5  # the first retry's mean wait (doubling after each failed try) unless $DIFFARC_RETRY_BACKOFF_S says


def backoff_from_env() -> float:
    """``$DIFFARC_RETRY_BACKOFF_S``, else ``BACKOFF_S``: the storage retries' first wait. Read where a
    ``Storage`` is made (the job's driver), which its workers receive as it is."""
    return seconds_from_env(ENV_BACKOFF, BACKOFF_S)


def endpoint_from_env(flag: str | None = None) -> str | None:
    """The S3 endpoint: the flag, else ``$AWS_ENDPOINT_URL_S3``, else ``$AWS_ENDPOINT_URL``, else AWS."""
    return flag or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def add_endpoint_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Every job's ``--endpoint-url`` (one declaration, one help), read by ``Storage.from_env``."""
    parser.add_argument("--endpoint-url", default=None,
                        help="S3-compatible endpoint for s3:// URLs (default: $AWS_ENDPOINT_URL_S3 or "
                             "$AWS_ENDPOINT_URL, else AWS); credentials come from the standard AWS chain")


@dataclass(frozen=True)
class Storage:
    """How to reach files: the S3 endpoint and the retry policy for transient errors.

    Build it where the job starts (``Storage.from_env``) so workers on other machines use the
    endpoint the user gave, whatever their own environment says.
    """

    endpoint_url: str | None = None
    retries: int = 4
    backoff_s: float = field(default_factory=backoff_from_env)
    timeout_s: float = 60.0  # connect and read timeout of one request: a hung connection is a retried fault

    @classmethod
    def from_env(cls, endpoint_url: str | None = None, **kw) -> "Storage":
        return cls(endpoint_url=endpoint_from_env(endpoint_url), **kw)

    def fs(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The filesystem for ``url`` and the path inside it."""
        # Other processes write here: never trust a cached listing (every fsspec filesystem takes this).
        options: dict = {"use_listings_cache": False}
        if is_s3(url):
            # s3fs and botocore retry a little themselves (fs.retries below); the backoff that outlasts
            # an outage is ours (retrying)
            options["config_kwargs"] = {"connect_timeout": self.timeout_s, "read_timeout": self.timeout_s,
                                        "retries": {"max_attempts": 2, "mode": "standard"}}
            if self.endpoint_url:
                options["client_kwargs"] = {"endpoint_url": self.endpoint_url}
        fs, path = fsspec.core.url_to_fs(url, **options)
        if is_s3(url):
            fs.retries = 2  # s3fs's default is 5 with its own backoff, under ours
        return fs, path

    def retrying(self, fn: Callable[[], T], what: str) -> T:
        """Call ``fn``; on a transient error wait (exponential backoff, jitter) and try again."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt == self.retries or not is_transient(exc):
                    raise
                delay = self.backoff_s * (2**attempt) * (0.5 + random.random())
                print(f"retrying {what} in {delay:.1f}s after {type(exc).__name__}: {exc}", flush=True)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- small file operations, all retried -------------------------------------------------

    def exists(self, url: str) -> bool:
        fs, path = self.fs(url)
        return self.retrying(lambda: fs.exists(path), f"checking {url}")

    def read_bytes(self, url: str) -> bytes:
        fs, path = self.fs(url)
        return self.retrying(lambda: fs.cat_file(path), f"reading {url}")

    def write_bytes(self, url: str, data: bytes) -> None:
        with self.atomic_output(url) as f:
            f.write(data)

    def info(self, url: str) -> dict | None:
        """fsspec's details of one file (size, ETag on S3, mtime locally), or None when it is missing."""
        fs, path = self.fs(url)
        try:
            return self.retrying(lambda: fs.info(path), f"checking {url}")
        except FileNotFoundError:
            return None

    def remove(self, url: str) -> None:
        fs, path = self.fs(url)
        if fs.exists(path):
            self.retrying(lambda: fs.rm(path, recursive=fs.isdir(path)), f"removing {url}")

    def listing(self, prefix: str) -> dict[str, dict]:
        """The files directly under ``prefix`` with their details, by name, in one listing."""
        fs, path = self.fs(prefix)
        if not self.retrying(lambda: fs.isdir(path), f"listing {prefix}"):
            return {}
        entries = self.retrying(lambda: fs.ls(path, detail=True), f"listing {prefix}")
        return {basename(e["name"]): e for e in entries if e.get("type") != "directory"}

    def list(self, prefix: str, suffix: str) -> list[str]:
        """URLs of the files directly under ``prefix`` whose names end with ``suffix``, sorted."""
        return sorted(join(prefix, n) for n in self.listing(prefix) if n.endswith(suffix))

    def remove_stale_temps(self, url: str) -> None:
        """Delete temporary files and folders that a killed writer of ``url`` left beside it (local
        only: remote outputs are staged in the writer's own temp folder, which dies with it)."""
        if is_local(url):
            fs, path = self.fs(url)
            for tmp in fs.glob(f"{path}.tmp-*"):
                if os.path.isdir(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.remove(tmp)

    @contextlib.contextmanager
    def atomic_output(self, url: str, record: dict | None = None) -> Iterator:
        """A writable local file that becomes ``url`` in one piece when the block succeeds.

        ``record``, when given, receives what a completion marker vouches for: url, bytes, sha256 (of
        the bytes committed) and, on S3, the ETag the store gave the object.
        """
        fs, path = self.fs(url)
        local = is_local(url)
        if local:
            os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"  # same directory: the rename is atomic
        else:
            fd, tmp = tempfile.mkstemp(prefix="diffarc-", suffix=".part")
            os.close(fd)
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if record is not None:
                with open(tmp, "rb") as f:
                    record.update(url=url, bytes=os.path.getsize(tmp), sha256=hashlib.file_digest(f, "sha256").hexdigest())
            if local:
                os.replace(tmp, path)
            else:
                self.retrying(lambda: fs.put_file(tmp, path), f"uploading {url}")
                if record is not None:
                    record["etag"] = etag(self.info(url))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def etag(info: dict | None) -> str | None:
    """The ETag in a file's details (S3; None for local files), without quotes."""
    value = (info or {}).get("ETag") or (info or {}).get("etag")
    return value.strip('"') if value else None


def is_s3(url: str) -> bool:
    return url.startswith(("s3://", "s3a://"))


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def absolute(url: str) -> str:
    """A local path made absolute against the caller's folder (the workers run elsewhere); URLs as given."""
    return os.path.abspath(os.path.expanduser(url)) if "://" not in url else url


def join(prefix: str, *names: str) -> str:
    """``prefix/name`` for paths and URLs alike."""
    out = prefix.rstrip("/")
    for n in names:
        out = f"{out}/{n.strip('/')}"
    return out


def basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def redact(text: str) -> str:
    """``text`` with any ``user:password@`` removed from a URL in it, for logs and manifests."""
    parts = urlsplit(text)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return text
