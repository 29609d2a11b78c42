"""The evaluation's optional packages, pyproject.toml's ``eval`` extra (LPIPS, SSIMULACRA2), and its plots:
imported only inside the functions that need them, so a plain install runs compress, decompress and
the audit without them (and without loading matplotlib), and a missing one says which extra brings it."""

from __future__ import annotations

import importlib

INSTALL_EVAL = "pip install -e '.[eval]' (or '.[dev]')"


def import_extra(module: str):
    """``module`` imported, or a ModuleNotFoundError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise  # the package is there, something it imports is not: its own error says more
        raise ModuleNotFoundError(f"{module} belongs to diffarc's evaluation extra, which a plain install "
                                  f"leaves out: {INSTALL_EVAL}", name=exc.name) from None


def pyplot():
    """matplotlib's pyplot, drawing to files only (the Agg backend, no display)."""
    import_extra("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    return plt
