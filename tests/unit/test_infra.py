"""infra/ agrees with the code it deploys.

Every manifest parses and has the fields its kind needs; Ray token auth comes from a Kubernetes
secret on every Ray container; nothing secret is written down; one image everywhere; every job
command a manifest (or the operators' guide, docs/operators.md) runs is accepted by that job's own argument parser.
"""

from __future__ import annotations

import importlib
import re
import secrets
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DOCKERFILE = INFRA / "Dockerfile"
README = REPO / "README.md"
OPERATORS_GUIDE = REPO / "docs" / "operators.md"
YAML_FILES = sorted(INFRA.glob("*.yaml"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
AUTH_SECRET_ENV = "RAY_AUTH_TOKEN"
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
# Env names whose value is a credential: they may only come from a secret, never a literal.
SECRET_ENV_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY|SESSION", re.IGNORECASE)
# Literal credentials: AWS access key ids, 64-hex Ray tokens, private keys.
LITERAL_SECRET = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|\b[0-9a-f]{64}\b|PRIVATE KEY-----")


def documents(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kube_objects(kind: str | None = None) -> list[tuple[Path, dict]]:
    found = [(p, d) for p in YAML_FILES for d in documents(p) if "apiVersion" in d]
    return [(p, d) for p, d in found if kind is None or d["kind"] == kind]


def launcher_configs() -> list[tuple[Path, dict]]:
    return [(p, d) for p in YAML_FILES for d in documents(p) if "available_node_types" in d]


def walk(node):
    """Every dict inside a parsed YAML tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def containers(obj: dict) -> list[dict]:
    return [c for d in walk(obj) for c in d.get("containers", [])]


def env_by_name(env: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in env}


def rayjob_specs() -> list[tuple[str, dict]]:
    """RayJob specs, including the template a RayCronJob creates its RayJobs from."""
    specs = [(f"{p.name}:{d['metadata']['name']}", d["spec"]) for p, d in kube_objects("RayJob")]
    specs += [(f"{p.name}:{d['metadata']['name']}", d["spec"]["jobTemplate"]) for p, d in kube_objects("RayCronJob")]
    return specs


def manifest_commands() -> list[tuple[str, str]]:
    """Every shell command line a manifest runs a job with."""
    commands = [(name, spec["entrypoint"]) for name, spec in rayjob_specs()]
    for path, cronjob in kube_objects("CronJob"):
        for c in containers(cronjob):
            argv = c.get("command", []) + c.get("args", [])
            commands.append((f"{path.name}:{c['name']}", shlex.join(argv)))
    return commands


def operator_section() -> str:
    """The operators' guide ("" when it is gone: test_operators_guide_runs_jobs says so)."""
    return OPERATORS_GUIDE.read_text() if OPERATORS_GUIDE.exists() else ""


def operators_guide_commands() -> list[tuple[str, str]]:
    section = operator_section()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", section, re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [(f"operators.md: {line.strip()[:60]}", line) for line in lines if re.search(r"jobs/\w+\.py", line)]


def job_argv(command: str) -> tuple[str, list[str]]:
    """(job module, its arguments) from a command line such as `ray job submit ... -- python jobs/x.py --a b`."""
    argv = shlex.split(command, comments=True)
    for i, token in enumerate(argv):
        m = re.search(r"(?:^|/)jobs/(\w+)\.py$", token)
        if m:
            assert argv[i - 1] in ("python", "python3"), f"{command!r}: the job must run under python"
            return m.group(1), argv[i + 1 :]
    raise AssertionError(f"{command!r} runs no jobs/*.py script")


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_yaml_parses_into_mappings(path):
    docs = documents(path)
    assert docs, f"{path.name} is empty"
    assert all(isinstance(d, dict) for d in docs)


def test_infra_has_every_kind_the_operators_need():
    kinds = {d["kind"] for _, d in kube_objects()}
    assert {"RayCluster", "RayJob"} <= kinds
    assert kinds & {"RayCronJob", "CronJob"}, "no scheduled variant"
    assert launcher_configs(), "no Ray cluster-launcher config"
    assert DOCKERFILE.exists()


@pytest.mark.parametrize("path,obj", kube_objects(), ids=lambda x: x.name if isinstance(x, Path) else x["kind"])
def test_kubernetes_object_has_the_top_level_fields(path, obj):
    assert set(obj) >= {"apiVersion", "kind", "metadata", "spec"}
    assert obj["metadata"].get("name")
    assert "namespace" not in obj["metadata"], "leave the namespace to kubectl -n"
    if obj["kind"].startswith("Ray"):
        assert obj["apiVersion"] == "ray.io/v1"


def test_raycluster_has_head_cpu_and_gpu_groups_on_the_pinned_ray():
    pinned_ray = next(d.split("==")[1] for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray"))
    assert kube_objects("RayCluster"), "no RayCluster to check"
    for _, cluster in kube_objects("RayCluster"):
        spec = cluster["spec"]
        assert spec["rayVersion"] == pinned_ray
        assert containers(spec["headGroupSpec"]), "head has no container"
        gpu_groups, cpu_groups = [], []
        for group in spec["workerGroupSpecs"]:
            assert group["groupName"] and isinstance(group["rayStartParams"], dict)
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            limits = [c.get("resources", {}).get("limits", {}) for c in containers(group)]
            (gpu_groups if any(int(lim.get("nvidia.com/gpu", 0)) > 0 for lim in limits) else cpu_groups).append(group)
        assert gpu_groups, "no worker group requests nvidia.com/gpu"
        assert cpu_groups, "no CPU-only worker group"


@pytest.mark.parametrize("name,spec", [pytest.param(n, s, id=n) for n, s in rayjob_specs()])
def test_rayjob_spec_targets_a_cluster(name, spec):
    assert spec["entrypoint"].strip()
    assert spec.get("submissionMode", "K8sJobMode") in SUBMISSION_MODES
    assert ("rayClusterSpec" in spec) != ("clusterSelector" in spec), "needs exactly one of rayClusterSpec/clusterSelector"
    if "clusterSelector" in spec:
        cluster_names = {d["metadata"]["name"] for _, d in kube_objects("RayCluster")}
        assert spec["clusterSelector"]["ray.io/cluster"] in cluster_names


def test_raycronjob_schedule_is_a_cron_expression():
    scheduled = kube_objects("RayCronJob") + kube_objects("CronJob")
    assert scheduled, "no scheduled job to check"
    for _, cronjob in scheduled:
        fields = cronjob["spec"]["schedule"].split()
        assert len(fields) == 5 and all(re.fullmatch(r"[\d*/,\-]+", f) for f in fields)


@pytest.mark.parametrize("path,obj", kube_objects(), ids=lambda x: x.name if isinstance(x, Path) else x["kind"])
def test_every_ray_container_gets_the_token_from_a_secret(path, obj):
    envs = [c.get("env", []) for c in containers(obj)]
    if obj["spec"].get("enableInTreeAutoscaling"):
        envs.append(obj["spec"]["autoscalerOptions"]["env"])  # the autoscaler sidecar talks to the GCS
    assert envs, f"{path.name} runs no container"
    for env in envs:
        by_name = env_by_name(env)
        assert by_name.get("RAY_AUTH_MODE", {}).get("value") == "token"
        token = by_name[AUTH_SECRET_ENV]
        assert "value" not in token and token["valueFrom"]["secretKeyRef"]["name"]


def test_one_token_secret_for_all_manifests_the_one_the_guide_creates():
    refs = {
        (d["valueFrom"]["secretKeyRef"]["name"], d["valueFrom"]["secretKeyRef"]["key"])
        for _, obj in kube_objects()
        for d in walk(obj)
        if d.get("name") == AUTH_SECRET_ENV
    }
    assert len(refs) == 1, refs
    [(secret, key)] = refs
    # a manifest naming another secret or key than operators create would start pods that cannot authenticate
    assert re.search(rf"kubectl create secret generic {re.escape(secret)} --from-literal={re.escape(key)}=",
                     operator_section()), f"docs/operators.md creates no secret {secret} with key {key}"


def test_launcher_turns_on_token_auth_and_ships_the_token_file_not_the_token():
    assert launcher_configs(), "no launcher config to check"
    for path, cfg in launcher_configs():
        for key in ("head_start_ray_commands", "worker_start_ray_commands"):
            starts = [c for c in cfg[key] if "ray start" in c]
            assert starts and all("RAY_AUTH_MODE=token ray start" in c for c in starts), f"{path.name}:{key}"
        assert "~/.ray/auth_token" in cfg["file_mounts"]
        types = cfg["available_node_types"]
        assert cfg["head_node_type"] in types
        families = [t["node_config"]["InstanceType"].split(".")[0] for t in types.values()]
        assert any(re.fullmatch(r"[gp]\d+\w*", f) for f in families), f"no GPU instance type in {families}"


def literal_secrets(filename: str, text: str) -> list[str]:
    """What in a manifest (.yaml) or Dockerfile is a credential written down, or a place for one."""
    found = [f"literal credential {m.group(0)[:8]}..." for m in LITERAL_SECRET.finditer(text)]
    if filename.endswith(".yaml"):
        for doc in (d for d in yaml.safe_load_all(text) if d is not None):
            if doc.get("kind") == "Secret":
                found.append("a Secret object: secrets are created with kubectl, not committed")
            found += [f"{d['name']} is written literally" for d in walk(doc)
                      if "name" in d and SECRET_ENV_NAME.search(str(d["name"])) and "value" in d]
    else:
        for op, arg in dockerfile_instructions(text):
            if op.upper() in ("ENV", "ARG"):
                words = shlex.split(arg)
                names = [w.split("=", 1)[0] for w in words] if "=" in words[0] else words[:1]  # ENV K=V ... | ENV K V
                found += [f"{op} {n} bakes a credential into the image" for n in names if SECRET_ENV_NAME.search(n)]
    return found


@pytest.mark.parametrize("path", YAML_FILES + [DOCKERFILE], ids=lambda p: p.name)
def test_no_literal_secrets(path):
    assert literal_secrets(path.name, path.read_text()) == []


def test_the_secret_check_finds_planted_secrets():
    """Each way a credential could be written into infra/ is found (else the test above proves nothing)."""
    manifest = (INFRA / "rayjob-compress.yaml").read_text()
    token_ref = "valueFrom:\n                secretKeyRef:\n                  name: diffarc-ray-auth\n                  key: auth_token"
    assert token_ref in manifest
    aws_key_id = "AKIA" + "X" * 16
    planted = {
        "token as a value": manifest.replace(token_ref, "value: not-from-a-secret"),
        "AWS key id in a comment": manifest + f"# {aws_key_id}\n",
        "Ray token in a comment": manifest + f"# {secrets.token_hex(32)}\n",
        "a Secret object": manifest + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
    }
    for what, text in planted.items():
        assert literal_secrets("planted.yaml", text), what
    dockerfile = DOCKERFILE.read_text()
    env_line = "PYTHONUNBUFFERED=1 \\\n"  # inside a multi-line ENV: a planted name there is not first
    assert env_line in dockerfile
    for what, text in {"ENV continuation": dockerfile.replace(env_line, env_line + "    AWS_SECRET_ACCESS_KEY=x \\\n"),
                       "build ARG": dockerfile + "ARG RAY_AUTH_TOKEN\n"}.items():
        assert literal_secrets("Dockerfile", text), what


def image_references() -> set[str]:
    images = {c["image"] for _, obj in kube_objects() for c in containers(obj)}
    return images | {cfg["docker"]["image"] for _, cfg in launcher_configs()}


def test_one_image_everywhere_tagged_with_the_project_version():
    images = image_references()
    assert len(images) == 1, images
    assert next(iter(images)).rsplit(":", 1)[1] == PYPROJECT["project"]["version"]
    assert f"-t {next(iter(images))} " in DOCKERFILE.read_text(), "Dockerfile's build command tags another image"


def dockerfile_instructions(text: str | None = None) -> list[tuple[str, str]]:
    text = (DOCKERFILE.read_text() if text is None else text).replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def pip_install_target(command: str) -> tuple[bool, str]:
    """(editable, project path without extras) of a `pip install` command."""
    argv = shlex.split(command, comments=True)
    args = argv[argv.index("install") + 1 :]
    args = args[: next((i for i, a in enumerate(args) if a in ("&&", "||", ";", "|")), len(args))]
    editable = "-e" in args or "--editable" in args
    targets = [a for a in args if not a.startswith("-")]
    return editable, re.sub(r"\[.*\]$", "", targets[-1])


def test_dockerfile_uses_a_cuda_base_matching_torch():
    torch = pytest.importorskip("torch")
    base = next(arg for op, arg in dockerfile_instructions() if op == "FROM")
    m = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+", base)
    assert m, f"{base} is not a CUDA base image"
    assert m.group(1) == torch.version.cuda.split(".")[0], "CUDA major differs from torch's wheels"


def test_dockerfile_copies_every_package_and_installs_as_the_readme_does():
    instructions = dockerfile_instructions()
    copied = {src.rstrip("/") for op, arg in instructions if op == "COPY" for src in arg.split()[:-1]}
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", PYPROJECT["project"]["readme"]} <= copied
    workdir = next(arg for op, arg in instructions if op == "WORKDIR")
    installs = [pip_install_target(arg) for op, arg in instructions if op == "RUN" and "pip install" in arg]
    assert len(installs) == 1
    # The README's own install command (the operators' guide points back to it).
    readme_install_text = README.read_text()
    readme_installs = {
        pip_install_target(line)
        for line in re.findall(r"^.*pip install .*$", readme_install_text, re.MULTILINE)
        if not line.lstrip().startswith("#")
    }
    assert installs[0] in readme_installs, f"Dockerfile installs {installs[0]}, the README {readme_installs}"
    assert workdir == "/app" and installs[0][1] == "."


def in_repo(image_path: str) -> Path:
    """The repository path the image holds at ``image_path`` (the Dockerfile copies it to /app)."""
    assert image_path.startswith("/app/"), f"{image_path} is not in the image's /app"
    return REPO / image_path.removeprefix("/app/")


def test_paths_in_manifests_are_where_the_image_puts_them():
    """Job scripts and every other /app/ path (--weights-dir, the image's DIFFARC_WEIGHTS_DIR) exist."""
    assert manifest_commands(), "no manifest runs a job"
    for name, command in manifest_commands():
        words = shlex.split(command)
        script = next(t for t in words if t.endswith(".py"))
        assert in_repo(script).is_file(), f"{name}: {script} is not in the repository"
        for path in [w for w in words if w.startswith("/app/")]:
            assert in_repo(path).exists(), f"{name}: {path} is not in the repository"
    env = " ".join(arg for op, arg in dockerfile_instructions() if op == "ENV")
    weights_dir = re.search(r"DIFFARC_WEIGHTS_DIR=(\S+)", env).group(1)
    assert list(in_repo(weights_dir).glob("*.safetensors")), f"the image's {weights_dir} holds no weights"


def shell_words(command: str, cwd: Path) -> list[str]:
    """The argv bash hands the job: Ray runs entrypoints through a shell, which expands braces and globs."""
    out = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], cwd=cwd, capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("name,command", [pytest.param(n, c, id=n) for n, c in manifest_commands() + operators_guide_commands()])
def test_job_command_is_accepted_by_the_jobs_own_parser(name, command, tmp_path):
    module, args = job_argv(command)
    assert shell_words(command, tmp_path) == shlex.split(command, comments=True), (
        f"{name}: the shell would pass other arguments than written (unquoted brace pattern or glob?)"
    )
    parser = importlib.import_module(f"jobs.{module}").build_parser()
    try:
        parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{name}: jobs/{module}.py rejects {args} (exit {exc.code})")


def test_manifest_codecs_and_options_load_as_the_jobs_load_them():
    """What compress.main and the decoder do with a command's codec and options, here, on the weights the
    image ships: the codec (named, or the job's default) loads, its encode options are declared and in
    range, one codec per archive prefix, and a decode job's options are ones the codec its input archive
    holds declares (the decoder would silently ignore others)."""
    from model import load_codec
    from model.options import family_options, given_options

    archive_codecs, decode_commands, loaded = {}, [], {}
    for name, command in manifest_commands() + operators_guide_commands():
        module, argv = job_argv(command)
        if module not in ("compress", "decompress"):
            continue
        args = importlib.import_module(f"jobs.{module}").build_parser().parse_args(argv)
        if module == "decompress":
            decode_commands.append((name, args))
            continue
        weights = in_repo(args.weights_dir) if args.weights_dir else REPO / "model" / "weights"
        try:
            if (args.codec, weights) not in loaded:  # loading a neural codec takes a second
                loaded[args.codec, weights] = load_codec(args.codec, weights_dir=weights)
            codec = loaded[args.codec, weights].with_presets(**given_options(args, family_options("encode")))
        except (KeyError, ValueError) as exc:
            pytest.fail(f"{name}: {exc}")
        archive_codecs.setdefault(args.output.rstrip("/"), {})[codec.codec_id] = codec
    assert archive_codecs and decode_commands, "no compress or no decompress command to check"
    for output, codecs in archive_codecs.items():  # the job would refuse the second codec on a prefix
        assert len(codecs) == 1, f"commands archive {output} with different codecs: {sorted(codecs)}"
    for name, args in decode_commands:
        [codec] = archive_codecs.get(args.input.rstrip("/"), {None: None}).values()
        assert codec, f"{name}: no compress command writes the archive {args.input} it reads"
        try:
            codec.resolve_options("decode", given_options(args, family_options("decode")))
        except ValueError as exc:
            pytest.fail(f"{name}: {exc}")


def test_operators_guide_runs_jobs():
    assert operators_guide_commands(), f"{OPERATORS_GUIDE.relative_to(REPO)} has no job commands"
