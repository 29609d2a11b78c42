"""`python -m model encode/decode/info/list`: the single-file contract."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.__main__ import main
from model import random_codec
from model.nn.weights_file import save_weights

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(path)
    return path


def test_encode_info_decode_with_pillow_codec(image_file, tmp_path, capsys):
    blob, out = tmp_path / "x.cdc", tmp_path / "out.png"
    assert main(["encode", str(image_file), str(blob), "--codec", "webp-q80"]) == 0
    assert main(["info", str(blob)]) == 0
    assert "codec webp-q80  size 45x30" in capsys.readouterr().out
    assert main(["decode", str(blob), str(out)]) == 0
    assert Image.open(out).size == (45, 30)


def test_encode_decode_with_weights_path(image_file, tmp_path, capsys):
    weights = tmp_path / "cdc-tiny-cli.safetensors"
    save_weights(random_codec("cdc-tiny").model, weights, {"name": "cdc-tiny-cli"})
    blob, out = tmp_path / "x.cdc", tmp_path / "out.png"
    assert main(["encode", str(image_file), str(blob), "--codec", str(weights)]) == 0
    # decode looks weights up by the bitstream's codec id, in the registry: not found here
    assert main(["decode", str(blob), str(out)]) == 1
    assert "no weights for codec 'cdc-tiny-cli@" in capsys.readouterr().err and not out.exists()
    assert main(["decode", str(blob), str(out), "--codec", str(weights), "--steps", "2"]) == 0
    assert Image.open(out).size == (45, 30)
    assert main(["decode", str(blob), str(out), "--codec", "webp-q80"]) == 1  # wrong codec refused
    assert "was written by codec 'cdc-tiny-cli@" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"garbage", b"DARC" + bytes(30)])
def test_bad_input_is_one_line_and_nonzero(tmp_path, content):
    bad = tmp_path / "bad.cdc"
    bad.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "model", "decode", str(bad), str(tmp_path / "o.png")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and f"error: {bad}:" in proc.stderr  # one line, naming the file


def test_missing_file_and_unknown_codec(tmp_path, image_file, capsys):
    with pytest.raises(SystemExit, match="cannot read"):
        main(["info", str(tmp_path / "nope.cdc")])
    assert main(["encode", str(image_file), str(tmp_path / "o.cdc"), "--codec", "nope"]) == 1
    assert "unknown codec 'nope'" in capsys.readouterr().err


def test_list_shows_pillow_families(capsys):
    assert main(["list"]) == 0
    assert "webp-qN" in capsys.readouterr().out


def test_option_flags_say_what_each_family_means_and_defaults_to():
    """A flag shared by families with other meanings or defaults describes each (the default codec's
    quality is 30, Pillow's 75) instead of the first family's; where they agree it is as declared."""
    from jobs import compress, decompress

    def help_of(parser, flag: str) -> str:
        return next(a.help for a in parser._actions if flag in a.option_strings)

    quality = help_of(compress.build_parser(), "--quality")
    assert "cdc-avif: AVIF quality of the base layer (higher: more bits), default 30" in quality
    assert "diffc-avif: AVIF quality of the base layer (higher: more bits), default 40" in quality
    assert "pillow: Pillow quality, 0 (smallest) to 100, default 75" in quality and "default: the codec's own" in quality
    steps = help_of(decompress.build_parser(), "--steps")
    assert steps.startswith("cdc: DDIM steps from x_N to the image (default: the weights card's default_steps, "
                            "else 8); cdc-avif: DDIM steps over the residual from r_N")
    assert "; diffc-avif, diffc: denoising steps after the last coded step, default 1;" in steps
    assert help_of(decompress.build_parser(), "--gamma").startswith("start-noise scale")  # one meaning: as declared


def test_a_family_option_named_like_a_job_flag_breaks_no_parser(monkeypatch):
    """Codec options live in a namespace of their own (model.options): a family declaring ``format`` (a
    decompress flag) and ``batch_size`` (every job's) gets ``--codec-format`` / ``--codec-batch-size`` where
    the job holds the plain flag, and each value lands where it belongs."""
    from jobs import compress, decompress, evaluate
    from model import Family, Option, registry
    from model.__main__ import build_parser as cli_parser
    from model.options import family_options, given_options

    assert "--codec-format" not in decompress.build_parser().format_help()  # the built-ins: flags unchanged
    clashing = (Option("format", str, "a", "encode", "test"), Option("format", str, "a", "decode", "test"),
                Option("batch_size", int, 1, "encode", "test"))
    monkeypatch.setitem(registry._FAMILIES, "clash", Family(name="clash", load=lambda request: None,
                                                            prefixes=("clash-",), options=clashing))
    args = decompress.build_parser().parse_args(["--format", "png", "--codec-format", "raw", "--steps", "2"])
    assert args.format == "png" and given_options(args, family_options("decode")) == {"format": "raw", "steps": 2}
    args = compress.build_parser().parse_args(["--batch-size", "4", "--codec-batch-size", "3", "--format", "b"])
    assert args.batch_size == 4 and given_options(args, family_options("encode")) == {"batch_size": 3, "format": "b"}
    args = evaluate.build_parser().parse_args(["--images", "i", "--out", "o", "--format", "a,b"])
    assert evaluate.sweep_from(args)["format"] == ["a", "b"]
    args = cli_parser().parse_args(["decode", "x", "y", "--format", "raw"])  # no job flag there: the plain flag
    assert given_options(args, family_options("decode")) == {"format": "raw"}
