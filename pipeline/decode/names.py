"""Keys as file names. A sample key comes from a shard or an archive, so it is data an attacker may
choose (``../../x``, ``/etc/x``, NUL, backslashes, 10 kB long); only its safe form ever becomes a path.

The safe form is relative and stays below the folder it is joined to: the key is split on ``/`` and
``\\``; empty, ``.`` and ``..`` parts are dropped; control characters (NUL included) and characters
that UTF-8 cannot encode become ``_``. When that changed anything, or the result is too long, a short
hash of the original key is appended (``~`` + 12 hex), so two different keys never share a name.
Ordinary WebDataset keys (``0001``, ``dir/0001``) come through unchanged.
"""

from __future__ import annotations

import hashlib

MAX_NAME_BYTES = 180  # below NAME_MAX (255) and S3's 1024-byte keys once a folder and ".png" are added
HASH_CHARS = 12


def _clean_char(ch: str) -> str:
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return "_"
    try:
        ch.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a non-UTF-8 tar name
        return "_"
    return ch


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def safe_name(key: str) -> str:
    """A relative name for ``key`` that cannot leave the folder it is joined to (see the module doc)."""
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    name = "/".join("".join(_clean_char(c) for c in p) for p in parts)
    if name == key and 0 < len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    room = MAX_NAME_BYTES - HASH_CHARS - 1
    head = name.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip("/")
    return f"{head}~{_key_hash(key)}" if head else _key_hash(key)


def safe_ext(ext: str) -> str:
    """A member extension (``json``, ``seg.png``) as a name part: no separators or control characters."""
    return "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "_" for c in ext)[:64].strip(".") or "bin"


class UniqueNames:
    """Safe names for the keys of one shard, unique within it (a shard may repeat a key)."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, key: str) -> str:
        name, n = safe_name(key), 1
        while name in self.used:
            n += 1
            name = f"{safe_name(key)}~{n}"
        self.used.add(name)
        return name
