"""Codec plugins: modules that register families of their own (``model.registry.register_family``).

Modules named in ``$DIFFARC_CODEC_PLUGINS`` (comma-separated module names or ``.py`` paths) and the
entry points of group ``diffarc.codecs`` are imported before the registry's first look-up, in every
process that looks one up (Ray workers and subprocesses too: ``plugin_env``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

PLUGINS_ENV = "DIFFARC_CODEC_PLUGINS"
ENTRY_POINT_GROUP = "diffarc.codecs"

_LOADED: set[str] = set()


def load_plugins() -> None:
    """Import the plugin modules named in ``$DIFFARC_CODEC_PLUGINS`` and the entry points, once each."""
    for spec in _specs():
        if spec not in _LOADED:
            _import_plugin(spec)
            _LOADED.add(spec)
    if ENTRY_POINT_GROUP not in _LOADED:
        _LOADED.add(ENTRY_POINT_GROUP)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()


def plugin_env() -> dict[str, str]:
    """``$DIFFARC_CODEC_PLUGINS`` with paths made absolute: what another process (a Ray worker) needs
    in its environment to register the same plugin families; empty when there are none."""
    specs = [str(Path(s).resolve()) if s.endswith(".py") else s for s in _specs()]
    return {PLUGINS_ENV: ",".join(specs)} if specs else {}


def _specs() -> list[str]:
    return [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]


def _import_plugin(spec: str) -> None:
    if not spec.endswith(".py"):
        importlib.import_module(spec)
        return
    path = Path(spec).resolve()
    if not path.exists():
        raise ImportError(f"codec plugin {spec} (from ${PLUGINS_ENV}) does not exist")
    if any(getattr(m, "__file__", None) == str(path) for m in list(sys.modules.values())):
        return  # already imported under its module name: its families are registered
    module_name = f"diffarc_plugin_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
