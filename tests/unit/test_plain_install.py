"""A plain ``pip install -e .`` runs compress, decompress and the audit: the evaluation's judges (the
``eval`` extra), its plots and the tests' own packages (``dev``) are never imported on that path, and
asking for a judge without them names the extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Packages a plain install leaves out (nothing it installs brings them along), by their import names.
LEFT_OUT = {"lpips": "lpips", "ssimulacra2": "ssimulacra2", "webdataset": "webdataset"}
# Installed (compressai requires matplotlib) but imported only where the evaluation plots: blocked too.
NOT_IMPORTED = ["matplotlib"]


def requirement_names(requirements: list[str]) -> set[str]:
    return {r.split("==")[0].split(">=")[0].split("[")[0].strip() for r in requirements}


def test_the_extras_split_what_a_plain_install_brings():
    core, extras = requirement_names(PROJECT["dependencies"]), PROJECT["optional-dependencies"]
    assert set(LEFT_OUT) <= requirement_names(extras["eval"]) | requirement_names(extras["dev"])
    assert not set(LEFT_OUT) & core, f"{set(LEFT_OUT) & core} are in the plain install"
    assert "diffarc[eval]" in extras["dev"], "dev must bring the evaluation's judges: the tests use them"
    assert {"torch", "compressai", "pyarrow", "ray", "pytorch-msssim"} <= core  # what compress/decompress import


# Runs in a child with the left-out packages made unimportable, as in a plain install: one shard
# compressed with the default codec, decoded back and measured as the audit measures.
PLAIN_RUN = textwrap.dedent("""
    import io, sys, tarfile
    from importlib.abc import MetaPathFinder

    LEFT_OUT = set(sys.argv[1].split(","))

    class NotInstalled(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in LEFT_OUT:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NotInstalled())
    import numpy as np
    from PIL import Image

    from jobs import audit, compress, decompress
    from model import load_codec, load_codec_for_id
    from pipeline.decode.audit import ms_ssim, psnr
    from pipeline.decode.decoding import DecodeSettings, decode_shard, in_process
    from pipeline.encode.encoding import EncodeSettings, compress_shard
    from pipeline.io.storage import Storage

    for job in (compress, decompress, audit):
        job.build_parser()
    out = sys.argv[2]
    yy, xx = np.mgrid[0:48, 0:64]
    original = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)  # smooth: AVIF keeps it close
    png = io.BytesIO()
    Image.fromarray(original).save(png, "PNG")
    with tarfile.open(f"{out}/w-000000.tar", "w") as tar:
        info = tarfile.TarInfo("a.png")
        info.size = len(png.getvalue())
        tar.addfile(info, io.BytesIO(png.getvalue()))
    storage = Storage()
    compress_shard(load_codec(compress.build_parser().parse_args([]).codec), f"{out}/w-000000.tar", f"{out}/arc",
                   EncodeSettings(), storage)
    marker = decode_shard(in_process(load_codec_for_id, DecodeSettings()), f"{out}/arc/w-000000.parquet",
                          f"{out}/png", DecodeSettings(format="png"), storage)
    decoded = np.asarray(Image.open(f"{out}/png/w-000000/a.png").convert("RGB"))
    print("rows", marker.rows, "psnr", round(psnr(original, decoded), 2), "ms_ssim", ms_ssim(original, decoded))
    imported = sorted(m for m in sys.modules if m.split(".")[0] in LEFT_OUT)
    print("imported", imported)
    from model.evaluation.metrics import load_lpips
    try:
        load_lpips()
    except ModuleNotFoundError as exc:
        print("asked for LPIPS:", exc)
""")


def test_compress_and_decompress_run_without_the_extras(tmp_path):
    blocked = ",".join([*LEFT_OUT.values(), *NOT_IMPORTED])
    run = subprocess.run([sys.executable, "-c", PLAIN_RUN, blocked, str(tmp_path)],
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    rows = next(line for line in lines if line.startswith("rows "))
    assert rows.startswith("rows 1 psnr "), rows
    assert float(rows.split()[3]) > 30, f"the decoded image is not the original's: {rows}"
    assert "imported []" in lines, f"the plain path imported a left-out package: {lines}"
    assert any("asked for LPIPS:" in line and ".[eval]" in line for line in lines), lines
