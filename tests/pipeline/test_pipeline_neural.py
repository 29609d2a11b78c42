"""A neural codec through the pipeline (a tiny random-init CDC saved as weights), and the decode
job refusing an archive whose codec has no matching weights here."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from shardkit import archive_rows, plain_shards

from jobs import compress, decompress


@pytest.fixture(scope="module")
def tiny_archive(ray_local, tmp_path_factory):
    """(weights folder, archive): a random-init cdc-tiny saved as weights (its card names no default
    steps), and one shard of three 64x48 images compressed with it. The archive is only read here, and
    each test decodes it with its own copy of the weights (a card is the test's to change)."""
    from model import random_codec
    from model.nn.weights_file import save_weights

    tmp = tmp_path_factory.mktemp("neural")
    weights = tmp / "weights"
    weights.mkdir()
    save_weights(random_codec("cdc-tiny").model, weights / "cdc-tiny.safetensors", {"name": "cdc-tiny"})
    plain_shards(tmp / "in", n_shards=1, per_shard=3, size=(64, 48))
    out = tmp / "archive"
    assert compress.main(["--input", str(tmp / "in"), "--output", str(out), "--codec",
                          str(weights / "cdc-tiny.safetensors"), "--actors", "1", "--no-progress"]) == 0
    return weights, out


def weights_copy(weights, folder, **card):
    """A copy of the weights folder in ``folder``, its card updated with ``card``."""
    shutil.copytree(weights, folder)
    if card:
        path = folder / "cdc-tiny.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **card}))
    return folder


def test_tiny_neural_codec_round_trip_and_refusal(tiny_archive, tmp_path, capsys):
    weights, out = tiny_archive
    weights = weights_copy(weights, tmp_path / "weights")
    rows = archive_rows(out)
    codec_id = rows[0]["codec_id"]
    assert len(rows) == 3 and codec_id.startswith("cdc-tiny@") and all(r["error"] is None for r in rows)
    assert json.loads((out / "_manifest.json").read_text())["weights_hash"] == codec_id.split("@")[1]

    capsys.readouterr()
    assert decompress.main(["--input", str(out), "--output", str(tmp_path / "refused"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "refusing to decode" in err and f"need codec '{codec_id}'" in err and "--weights-dir" in err
    assert not (tmp_path / "refused").exists()

    assert decompress.main(["--input", str(out), "--output", str(tmp_path / "decoded"), "--weights-dir",
                            str(weights), "--steps", "2", "--gamma", "0.5", "--seed", "7", "--format", "png",
                            "--actors", "1", "--no-progress"]) == 0
    pngs = sorted((tmp_path / "decoded").rglob("*.png"))
    assert [Image.open(p).size for p in pngs] == [(64, 48)] * 3
    decode = json.loads((tmp_path / "decoded" / "_manifest.json").read_text())["decode"]
    assert (decode["steps"], decode["gamma"], decode["seed"]) == (2, 0.5, 7)  # what reproduces this decode


def test_a_changed_card_default_decodes_the_shard_again(tiny_archive, tmp_path, capsys):
    """The decode marker holds the options each codec ran with, its card's defaults included."""
    weights, archive = tiny_archive
    weights = weights_copy(weights, tmp_path / "weights", default_steps=1)  # same weights, same codec id
    argv = ["--input", str(archive), "--output", str(tmp_path / "decoded"), "--weights-dir", str(weights),
            "--actors", "1", "--no-progress"]
    assert decompress.main(argv) == 0
    marker = json.loads((tmp_path / "decoded" / "shard-000000.decoded.json").read_text())
    assert [o["steps"] for o in marker["settings"]["codec_options"].values()] == [1]
    capsys.readouterr()
    assert decompress.main(argv) == 0  # the same defaults: trusted
    assert "again" not in capsys.readouterr().err

    card = weights / "cdc-tiny.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "default_steps": 2}))  # same weights, same codec id
    assert decompress.main(argv) == 0
    assert "decoding shard-000000 again: decoded with other settings" in capsys.readouterr().err
    marker = json.loads((tmp_path / "decoded" / "shard-000000.decoded.json").read_text())
    assert [o["steps"] for o in marker["settings"]["codec_options"].values()] == [2]

    del marker["settings"]["codec_options"]  # as markers were written before they held the codecs' options
    (tmp_path / "decoded" / "shard-000000.decoded.json").write_text(json.dumps(marker))
    assert decompress.main(argv) == 0
    assert "decoding shard-000000 again: decoded with other settings" in capsys.readouterr().err
