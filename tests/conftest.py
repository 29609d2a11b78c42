"""Shared fixtures. Add yours below; keep each one independent of the others."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

# The helpers the layer folders share (shardkit, plugin_family, ...) live here, beside this file.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory):
    """The decode engines' exported graphs (``model/engine.py``) go to one folder of this session, not
    the user's ~/.cache: set before any worker starts, so Ray workers and job processes inherit it."""
    saved = os.environ.get("DIFFARC_CACHE")
    os.environ["DIFFARC_CACHE"] = str(tmp_path_factory.mktemp("diffarc-cache"))
    yield Path(os.environ["DIFFARC_CACHE"])
    if saved is None:
        os.environ.pop("DIFFARC_CACHE", None)
    else:
        os.environ["DIFFARC_CACHE"] = saved


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray (2 CPUs) for the whole session. Its workers get dummy AWS credentials
    (set before start, since workers inherit the environment then), so no test reaches a real
    account; AWS_PROFILE is removed for the same reason."""
    import ray

    saved = {k: os.environ.get(k) for k in [*DUMMY_AWS, "AWS_PROFILE"]}
    os.environ.update(DUMMY_AWS)
    os.environ.pop("AWS_PROFILE", None)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def s3_endpoint(ray_local):
    """A real S3 API (moto's server) on loopback: yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# Markers (pyproject.toml): ``cluster`` and ``faults`` are given here, by what a test uses, and both
# imply ``slow``; ``pytest -m "not slow"`` is the quick loop (docs/contributing.md: Test markers).
CLUSTER_FIXTURES = {"ray_local", "s3_endpoint"}  # a Ray session (the S3 server is started beside it)
CLUSTER_MODULES = {"test_kill", "test_multinode", "test_ray_submit"}  # jobs run as processes, each starting Ray
FAULT_MODULES = {"test_faults_s3", "test_kill", "test_lease", "test_memory_caps", "test_multinode", "test_orphans",
                 "test_parquet_bombs", "test_pipeline_faults", "test_sandbox", "test_stall"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.stem
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())) or module in CLUSTER_MODULES:
            item.add_marker(pytest.mark.cluster)
        if module in FAULT_MODULES:
            item.add_marker(pytest.mark.faults)
        if item.get_closest_marker("cluster") or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.slow)
