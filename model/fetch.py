"""Reading one file from a URL (s3://, https://, file://) with fsspec: weights and cards from a bucket."""

from __future__ import annotations


def url_join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}"


def fetch_bytes(url: str, endpoint_url: str | None = None) -> bytes | None:
    """The file's bytes, or None when it does not exist; other errors (network, permissions) raise."""
    import fsspec

    options = {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url and url.startswith("s3://") else {}
    fs, path = fsspec.core.url_to_fs(url, **options)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None
