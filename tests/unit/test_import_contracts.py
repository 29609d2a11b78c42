"""The import layers (pyproject.toml ``[tool.importlinter]``, described in ARCHITECTURE.md: Layers) hold, and a new back
arrow or an unplaced module fails here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("model", "pipeline", "jobs")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the code under ``root``, with its pyproject.toml's contracts."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command(['--no-cache'])"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_contracts_are_kept():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_sits_in_a_layer():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    sys.path.insert(0, str(REPO))
    try:
        graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    finally:
        sys.path.remove(str(REPO))
    unplaced = sorted(m for m in graph.modules if m not in PACKAGES
                      and not any(m == p or m.startswith(p + ".") for p in placed))
    assert not unplaced, f"modules in no layer of pyproject.toml's [tool.importlinter] layers: {unplaced}"


def test_a_back_arrow_breaks_the_contract(tmp_path):
    """A copy of the code where the networks import a codec family: the layers contract names the arrow."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    diffusion = tmp_path / "model" / "nn" / "diffusion.py"
    diffusion.write_text(diffusion.read_text() + "\nfrom ..codecs import cdc_avif  # a back arrow\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "model.nn is not allowed to import model.codecs" in result.stdout
    assert "model.nn.diffusion -> model.codecs.cdc_avif" in result.stdout
    assert "No cycles are allowed in model." in result.stdout


def test_architecture_describes_every_layer_and_contract():
    """ARCHITECTURE.md is the one description of the layers: it names each module of each layer, in the
    contract's order, and every contract by its id."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    text = (REPO / "ARCHITECTURE.md").read_text()
    assert "## Layers" in text, "ARCHITECTURE.md has no Layers section"
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    first_mention = []
    for layer in layers:
        names = [name.strip() for name in layer.replace("|", ":").split(":")]
        missing = [name for name in names if f"`{name}`" not in section]
        assert not missing, f"ARCHITECTURE.md (Layers) does not name {missing}, a layer of pyproject.toml"
        first_mention.append(min(section.index(f"`{name}`") for name in names))
    assert first_mention == sorted(first_mention), "ARCHITECTURE.md lists the layers in another order than pyproject.toml"
    ids = [c["id"] for c in config["contracts"]]
    unnamed = [i for i in ids if not re.search(rf"\((?:contract )?`{i}`\)", section)]
    assert not unnamed, f"ARCHITECTURE.md (Layers) names no contract {unnamed} as (`ID`) or (contract `ID`)"
