"""WebDataset shards: finding them, streaming their samples, writing new ones.

A shard is a tar file; a sample is the run of consecutive members sharing a key (the member name up
to the first dot of its last component, WebDataset's rule): ``0001.jpg``, ``0001.json`` -> key
``0001`` with members ``jpg`` and ``json``. A member whose name the sample already holds (``x.jpg``
twice in a row) starts a sample of its own with the same key and says so (``Sample.note``): no
member is lost, and decoding names the second one apart (``names.UniqueNames``). Shards are streamed
(``tarfile`` stream mode over an fsspec file), never downloaded whole. A truncated shard yields what it holds and says where it broke.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

from braceexpand import braceexpand

from .faults import InfrastructureError, PermanentError
from .storage import Storage, basename, is_local

# WebDataset's own rule (webdataset.tariterators.base_plus_ext), restated: importing webdataset
# imports torch, seconds per worker process that a Pillow codec never needs.
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
SHARD_SUFFIXES = (".tar",)


def split_key(name: str) -> tuple[str, str]:
    """``dir/0001.seg.png`` -> (``dir/0001``, ``seg.png``); a name without a dot is all key."""
    m = _KEY_EXT.match(name)
    return (m.group(1), m.group(2)) if m else (name, "")


@dataclass
class Sample:
    key: str
    members: dict[str, bytes] = field(default_factory=dict)  # extension -> bytes
    problem: str | None = None  # set when the tar broke inside this sample
    note: str | None = None  # set when its first member repeats a name of the sample before it

    def image_member(self, exts: Iterable[str]) -> str | None:
        """The extension of the sample's image (the first member with one of ``exts``, e.g.
        ``model.IMAGE_EXTENSIONS``: this data layer does not know image formats), or None."""
        exts = tuple(exts)
        return next((e for e in self.members if e.lower() in exts), None)


def is_shard_spec(source: str) -> bool:
    """Whether ``source`` names shards (a .tar, a URL, a brace pattern) rather than a folder of images."""
    return source.endswith(SHARD_SUFFIXES) or "://" in source or "{" in source


def shard_name(url: str) -> str:
    """``s3://b/x/shard-000001.tar`` -> ``shard-000001``: the name its outputs are filed under."""
    name = basename(url)
    for suffix in SHARD_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def expand_inputs(spec: str, storage: Storage) -> list[str]:
    """Shard URLs for a path, directory/prefix, glob or brace pattern (``shard-{000..009}.tar``).

    Brace-expanded names are taken as given (no request per shard); a missing one fails as its
    own shard. Directories and globs are listed. Output names must be unique.
    """
    urls: list[str] = []
    for item in braceexpand(spec):
        fs, path = storage.fs(item)
        if any(c in item for c in "*?["):
            urls += [p if is_local(item) else fs.unstrip_protocol(p) for p in sorted(fs.glob(path))]
        elif fs.isdir(path):
            urls += [u for u in storage.list(item, "") if u.endswith(SHARD_SUFFIXES)]
        else:
            urls.append(item)
    if not urls:
        raise FileNotFoundError(f"no input shards match '{spec}' (expected .tar files; check the path or pattern)")
    by_name: dict[str, str] = {}
    for u in urls:
        other = by_name.setdefault(shard_name(u), u)
        if other != u:
            raise ValueError(
                f"input shards '{other}' and '{u}' would both be archived as '{shard_name(u)}'; "
                "give shards unique file names or archive the folders separately"
            )
    return list(by_name.values())


class _Counting(io.RawIOBase):
    """A read-only stream that counts the bytes handed out."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(len(b))
        b[: len(data)] = data
        self.count += len(data)
        return len(data)


class ShardReader:
    """Iterate over a shard's samples. After iteration, ``truncated`` says whether and where the
    tar broke (None for a whole shard) and ``bytes_read`` how much was read.

    A stream that ends before the object's size is a lost connection, not a truncated shard: that
    raises ``InfrastructureError`` (retried), so a network fault never becomes a "truncated" row.
    """

    def __init__(self, url: str, storage: Storage, read_block: int = 1 << 20, max_member_bytes: int | None = None):
        self.url, self.storage, self.read_block = url, storage, read_block
        self.max_member_bytes = max_member_bytes  # larger members are skipped unread; their sample has a problem
        self.truncated: str | None = None
        self.size: int | None = None
        self._stream: _Counting | None = None

    @property
    def bytes_read(self) -> int:
        return self._stream.count if self._stream else 0

    def __iter__(self) -> Iterator[Sample]:
        fs, path = self.storage.fs(self.url)
        with fs.open(path, "rb", block_size=self.read_block) as raw:
            self.size = getattr(raw, "size", None)
            self._stream = _Counting(raw)
            yield from self._samples(self._stream)
            while self._stream.read(1 << 16):  # the rest is padding; count it so sizes add up
                pass
        if self.size is not None and self.bytes_read != self.size:
            raise InfrastructureError(
                f"{self.url}: the stream ended after {self.bytes_read} of {self.size} bytes "
                "(a lost connection, or the shard changed while it was read)")

    def _samples(self, stream: _Counting) -> Iterator[Sample]:
        current: Sample | None = None
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")
        except tarfile.ReadError as exc:
            if stream.count < tarfile.BLOCKSIZE:
                self.truncated = f"shard holds no complete tar header ({stream.count} bytes)"
                return
            raise PermanentError(f"{self.url} is not a tar archive ({exc})") from None
        member = None
        try:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = split_key(member.name)
                if current is not None and current.key != key:
                    yield current
                    current = None
                if current is not None and ext in current.members:  # the same name again: a sample of its own
                    yield current
                    current = Sample(key, note=f"member '{member.name}' repeats a name of the sample before it: "
                                               "kept as a sample of its own (same key)")
                current = current or Sample(key)
                if self.max_member_bytes is not None and member.size > self.max_member_bytes:
                    current.problem = (f"member '{member.name}' is {member.size} bytes, over the cap of "
                                       f"{self.max_member_bytes} (not read; raise --max-member-mb to allow it)")
                    continue  # stream mode skips its data in blocks when it moves to the next member
                current.members[ext] = tar.extractfile(member).read()
        except (tarfile.ReadError, EOFError) as exc:
            where = f"inside member '{member.name}'" if member is not None else "at its start"
            self.truncated = f"tar is truncated {where} ({exc})"
            if member is not None and member.isfile():
                key, _ = split_key(member.name)
                if current is None or current.key != key:
                    if current is not None:
                        yield current
                    current = Sample(key)
                current.problem = self.truncated
        else:
            # tarfile ends quietly at a cut header or a missing end block; a whole tar has a full
            # 512-byte end-of-archive block after the last member.
            if stream.count < tar.offset + tarfile.BLOCKSIZE and stream.read(1) == b"":
                self.truncated = f"tar is truncated after {tar.offset} bytes (no end-of-archive block)"
        if current is not None:
            yield current


def write_tar(fileobj: BinaryIO, samples: Iterable[Sample]) -> int:
    """Write samples as a WebDataset tar (reproducible: fixed mtime and owner); returns the count."""
    n = 0
    # PAX: names longer than USTAR's 100+155 bytes, and any UTF-8, survive exactly
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for sample in samples:
            for ext, data in sample.members.items():
                info = tarfile.TarInfo(f"{sample.key}.{ext}" if ext else sample.key)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
            n += 1
    return n
