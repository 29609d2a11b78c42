"""`ray job submit --working-dir .` of the compress job against a real `ray start --head` cluster.

The cluster runs with Ray token authentication on (RAY_AUTH_MODE=token, token in a file named by
RAY_AUTH_TOKEN_PATH), whatever ~/.ray/auth_token holds on this machine: `ray start` turns token auth
on by itself when RAY_AUTH_MODE is unset and a token file exists, while `ray job submit` only sends a
token when RAY_AUTH_MODE=token, so both sides are set explicitly, as an operator must.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from conftest import free_port

REPO = Path(__file__).resolve().parents[2]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
# A weights-bearing codec of a plugin family (tests/plugin_family.py, no torch: the test stays quick),
# with weights written by the test: the job must find weights that were not uploaded.
CODEC = "lut-submit"
PLUGIN = "tests/plugin_family.py"
WEIGHTS_DIR = REPO / "model" / "weights"
STARTUP_TIMEOUT_S = 60
JOB_TIMEOUT_S = 90
AGENT_TRIES = 3


def dashboard_get(url: str, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""  # not listening yet


def stop_session(head: subprocess.Popen) -> None:
    """Stop this cluster only: `ray stop` would kill every Ray process on the machine, other users' too.

    `ray start --block` ran as the leader of a new session; on SIGINT it shuts its node down, and
    whatever is left in that session (workers, drivers) is killed by process id.
    """
    session = head.pid
    if head.poll() is None:
        head.send_signal(signal.SIGINT)
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:
            head.kill()
    leftovers = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == session:
                leftovers.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    for proc in leftovers:
        proc.kill()
    psutil.wait_procs(leftovers, timeout=10)


@pytest.fixture
def ray_head(tmp_path):
    """A loopback `ray start --head` with token auth; yields (dashboard URL, token, client env)."""
    token = secrets.token_hex(32)
    token_file = tmp_path / "auth_token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file), RAY_USAGE_STATS_ENABLED="0")
    # Short: Ray puts unix sockets under it, and their paths may not exceed 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="diffarc-ray-")
    dashboard_port = free_port()
    command = [
        *RAY, "start", "--head", "--block",
        "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
        f"--port={free_port()}", f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    head_log = tmp_path / "ray_start.log"
    with head_log.open("wb") as log:
        head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while dashboard_get(f"{url}/api/jobs/", token)[0] != 200:
            assert head.poll() is None, f"ray start exited:\n{head_log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"dashboard not up in {STARTUP_TIMEOUT_S} s"
            time.sleep(0.5)
        yield url, token, env
    finally:
        stop_session(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def example_shards() -> list[str]:
    """The shards the job reads by default, which are in the repository (and so in the working dir)."""
    from jobs.compress import build_parser
    from pipeline.io.shards import expand_inputs
    from pipeline.io.storage import Storage

    return expand_inputs(str(REPO / build_parser().get_default("input")), Storage())


@pytest.mark.slow
def test_ray_job_submit_archives_the_example_corpus(ray_head, tmp_path):
    url, token, env = ray_head
    assert dashboard_get(f"{url}/api/jobs/", None)[0] == 401, "the cluster accepts requests without a token"

    from plugin_family import write_lut_weights

    weights = tmp_path / "weights"
    weights_file = write_lut_weights(weights / f"{CODEC}.safetensors", levels=32)
    output = tmp_path / "archive"
    for _ in range(AGENT_TRIES):
        submission_id = f"diffarc-submit-{secrets.token_hex(4)}"
        submit = subprocess.run(
            [*RAY, "job", "submit", "--address", url, "--submission-id", submission_id, "--working-dir", ".",
             "--", "env", f"DIFFARC_CODEC_PLUGINS={PLUGIN}",
             "python", "jobs/compress.py", "--output", str(output), "--codec", CODEC, "--actors", "1",
             "--weights-dir", str(weights)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
        )  # fmt: skip
        transcript = submit.stdout + submit.stderr
        if "No available agent to submit job" not in transcript:
            break
        time.sleep(2)  # the head's job agent may register a moment after the dashboard answers
    assert token not in transcript, "the token leaked into the submit output"
    assert ".safetensors" not in transcript, "Ray warned about uploading a weights file"
    status, body = dashboard_get(f"{url}/api/jobs/{submission_id}", token)
    assert status == 200, transcript[-3000:]
    job = json.loads(body)
    assert job["status"] == "SUCCEEDED", f"{job['status']}: {job.get('message')}\n{transcript[-3000:]}"

    from model.weights import make_codec_id, sha256_file
    from pipeline.io.shards import ShardReader, shard_name
    from pipeline.io.storage import Storage

    shards = example_shards()
    archives = sorted(output.rglob("*.parquet"))
    assert [a.stem for a in archives] == sorted(shard_name(s) for s in shards), (archives, shards)
    codec_id = make_codec_id(CODEC, sha256_file(weights_file))  # the weights this test wrote, not others
    for archive, shard in zip(archives, sorted(shards, key=shard_name)):
        rows = pq.read_table(archive).to_pylist()
        assert [r["key"] for r in rows] == [s.key for s in ShardReader(shard, Storage())]
        assert all(r["error"] is None and r["bitstream"] and r["codec_id"] == codec_id for r in rows), rows[0]


def test_working_dir_upload_leaves_the_weights_out(tmp_path):
    """What `ray job submit --working-dir .` uploads, packed by Ray's own code: no weights file."""
    from ray._private.runtime_env.packaging import create_package

    if not list(WEIGHTS_DIR.glob("*.safetensors")):
        pytest.skip("no weights files in model/weights to leave out")
    package = tmp_path / "working_dir.zip"
    create_package(str(REPO), package, include_gitignore=True)
    import zipfile

    names = zipfile.ZipFile(package).namelist()
    assert "jobs/compress.py" in names and "model/codecs/cdc.py" in names
    assert [n for n in names if n.endswith(".safetensors")] == []
    assert package.stat().st_size < 8 * 2**20, f"{package.stat().st_size / 2**20:.1f} MiB uploaded per job"

