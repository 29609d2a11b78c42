"""One job per output prefix: a lease object, ``_lock.json``, under the prefix.

It is taken with an exclusive create (``O_EXCL`` locally; on S3 a PutObject with ``If-None-Match: *``,
which AWS S3, MinIO and moto honour) and holds the job id, the job, host, pid and start time, and a
refresh time that a thread renews every ``refresh_s`` while the job runs (on S3 with ``If-Match`` on
our own ETag, so a lease taken over by someone else is noticed, not overwritten). A second job on the
prefix refuses, naming the first. The lease is released (deleted, if still ours) when the job ends.

A lease whose process is gone (same host, pid not running) is taken over with a message: that is
what a killed job leaves. One not refreshed for ``stale_s`` may be a dead job on another machine:
the message says so, and ``--force`` takes it over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from ..io.storage import Storage, etag, is_local, is_s3, join, redact

LEASE = "_lock.json"


class LeaseHeld(Exception):
    """Another job holds the prefix; the message names it and says what to do."""


def _precondition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return getattr(cause, "response", {}).get("Error", {}).get("Code") in ("PreconditionFailed", "412")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class Lease:
    prefix: str
    job: str  # "compress" or "decompress"
    storage: Storage
    refresh_s: float = 30.0
    stale_s: float = 300.0
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    lost: str | None = None  # set when another job took the lease from us while we ran
    _etag: str | None = None  # S3: the ETag of our last write, the condition of the next one
    _started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return join(self.prefix, LEASE)

    def body(self, started: float | None = None) -> dict:
        now = time.time()
        return {"job_id": self.job_id, "job": self.job, "host": socket.gethostname(), "pid": os.getpid(),
                "started": started or now, "refreshed": now, "refresh_s": self.refresh_s}

    # -- taking and giving back --------------------------------------------------------------

    def acquire(self, force: bool = False) -> "Lease":
        self._started = time.time()
        for _ in range(3):  # the holder may release between our attempt and our read
            if self._create():
                break
            seen_etag = etag(self.storage.info(self.url))  # before reading: a newer lease fails If-Match
            held = self._read()
            if held is None:
                continue
            if held.get("job_id") == self.job_id:  # our create went through, its reply was lost
                self._etag = seen_etag
                break
            why_free = self._free_reason(held)
            if why_free is None and not force:
                raise LeaseHeld(self._refusal(held))
            print(f"taking over {redact(self.url)} from job {held.get('job_id')}: "
                  f"{why_free or '--force'}", flush=True)
            if self._take_over(held, seen_etag):
                break
        else:
            raise LeaseHeld(f"could not take {redact(self.url)}: other jobs keep taking it; try again")
        self._thread = threading.Thread(target=self._refresh_loop, name="lease-refresh", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.refresh_s + 5)
        try:
            held = self._read()
            if held is not None and held.get("job_id") == self.job_id:
                self._delete()
        except Exception as exc:  # the job's work is done; a lease left behind only needs taking over
            print(f"warning: could not release {redact(self.url)} ({type(exc).__name__}: {exc}); the next "
                  "job on this host takes it over, elsewhere it needs --force", flush=True)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- what the holder looks like ----------------------------------------------------------

    def _free_reason(self, held: dict) -> str | None:
        """Why a lease held by another job may be taken without --force (its process is gone)."""
        if held.get("host") == socket.gethostname() and not _process_alive(int(held.get("pid", 0))):
            return f"its process {held.get('pid')} on this host is gone"
        return None

    def _refusal(self, held: dict) -> str:
        age = time.time() - float(held.get("refreshed", 0))
        stale = age > self.stale_s
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(held.get("started", 0))))
        return (f"{redact(self.prefix)} is in use by {held.get('job', 'a')} job {held.get('job_id')} "
                f"(host {held.get('host')}, pid {held.get('pid')}, started {started}, lease refreshed {age:.0f}s ago"
                f"{', stale: it may have died' if stale else ''}); two jobs on one output would mix their "
                f"shards. Wait for it to finish, or if it is dead, rerun with --force to take {LEASE} over")

    # -- storage: exclusive create, conditional replace and delete ---------------------------

    def _create(self) -> bool:
        data = json.dumps(self.body(self._started)).encode()
        fs, path = self.storage.fs(self.url)
        if is_local(self.url):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        try:
            out = self.storage.retrying(lambda: fs.pipe_file(path, data, mode="create"), f"creating {self.url}")
        except FileExistsError:
            return False
        self._etag = etag(out) if isinstance(out, dict) else etag(self.storage.info(self.url))
        return True

    def _read(self) -> dict | None:
        try:
            return json.loads(self.storage.read_bytes(self.url))
        except FileNotFoundError:
            return None
        except ValueError:  # half written by a job killed while creating it: nobody's
            return {"job_id": None, "host": socket.gethostname(), "pid": 0, "refreshed": 0}

    def _replace(self, body: dict, expected_etag: str | None) -> bool:
        """Write ``body`` over the lease if it still is what we saw (ETag on S3); False if not."""
        data = json.dumps(body).encode()
        fs, path = self.storage.fs(self.url)
        if is_local(self.url):
            tmp = f"{path}.tmp-{self.job_id}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            return True
        if not is_s3(self.url):
            fs.pipe_file(path, data)
            return True
        bucket, key, _ = fs.split_path(path)
        try:
            out = self.storage.retrying(
                lambda: fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=expected_etag),
                f"refreshing {self.url}")
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        self._etag = etag(out)
        return True

    def _take_over(self, held: dict, seen_etag: str | None) -> bool:
        """Replace the lease ``held`` by ours, unless it changed since we read it."""
        if not is_local(self.url):
            return self._replace(self.body(self._started), seen_etag)
        _, path = self.storage.fs(self.url)
        with open(f"{path}.guard", "a") as guard:  # local takeovers one at a time
            fcntl.flock(guard, fcntl.LOCK_EX)
            current = self._read()
            if current is not None and current.get("job_id") != held.get("job_id"):
                return False  # someone else took it meanwhile: look again
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return self._create()

    def _delete(self) -> None:
        fs, path = self.storage.fs(self.url)
        if is_s3(self.url) and self._etag:
            bucket, key, _ = fs.split_path(path)
            try:
                fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=self._etag)
            except FileNotFoundError:  # a retried delete whose first attempt went through
                pass
            except OSError as exc:
                if not _precondition_failed(exc):
                    raise
            return
        self.storage.remove(self.url)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                held = self._read()
                if held is None or held.get("job_id") != self.job_id or not self._replace(
                        self.body(self._started), self._etag):
                    self.lost = f"job {held.get('job_id') if held else None} took {redact(self.url)} over"
                    print(f"warning: lease lost: {self.lost}; this job's results may mix with it", flush=True)
                    return
            except Exception as exc:  # a refresh that fails now may work next time; the job goes on
                print(f"warning: could not refresh {redact(self.url)}: {exc}", flush=True)
