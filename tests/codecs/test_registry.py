"""The codec contract and the registry: declared options, families, plugins from outside model/."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shardkit import archive_rows, plain_shards

from model import (Codec, Family, OptionError, ParsedName, get_family, list_codecs, load_codec, load_codec_for_id,
                   register_family, unpack)
from model.plugins import PLUGINS_ENV

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_family.py"
REPO = PLUGIN.parents[1]


@pytest.fixture()
def plugin(monkeypatch):
    monkeypatch.setenv(PLUGINS_ENV, str(PLUGIN))
    return get_family("tinyraw")


def _image(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_options_are_declared_checked_and_defaulted():
    codec = load_codec("webp-q60")
    assert codec.resolve_options("encode", {}) == {"quality": 60}  # the name's preset
    assert codec.resolve_options("encode", {"quality": None}) == {"quality": 60}
    with pytest.raises(OptionError, match=r"no decode options 'steps' \(valid: none\)"):
        codec.decode(codec.encode([_image()]), steps=4)
    with pytest.raises(OptionError, match=r"'qualty'.*valid: quality"):
        codec.encode([_image()], qualty=10)
    with pytest.raises(OptionError, match="takes int"):
        codec.encode([_image()], quality="high")
    with pytest.raises(OptionError, match="0..100"):
        codec.encode([_image()], quality=101)
    assert codec.select_options("decode", {"steps": 4, "gamma": 0.8}) == {}


def test_encode_option_changes_the_bitstream_and_its_id():
    codec = load_codec("jpeg-q90")
    low, high = codec.encode([_image()], quality=5)[0], codec.encode([_image()])[0]
    assert len(low) < len(high)
    assert (unpack(low).codec_id, unpack(high).codec_id) == ("jpeg-q5", "jpeg-q90")
    assert codec.decode([low])[0].size == (30, 20)  # any JPEG codec decodes any JPEG quality
    assert load_codec_for_id("jpeg-q5").codec_id == "jpeg-q5"


def test_weights_are_claimed_by_the_cards_family_not_the_name(tmp_path):
    from model import random_codec
    from model.nn.weights_file import save_weights

    # a hyperprior file named like a CDC one: its card decides
    save_weights(random_codec("hyperprior-tiny").model, tmp_path / "cdc-looks-q1.safetensors", {"name": "cdc-looks-q1"})
    codec = load_codec("cdc-looks-q1", weights_dir=tmp_path)
    assert codec.family == "hyperprior" and codec.options == ()
    card = json.loads((tmp_path / "cdc-looks-q1.json").read_text())
    (tmp_path / "cdc-looks-q1.json").write_text(json.dumps({**card, "family": "nobody"}))
    with pytest.raises(KeyError, match="unknown codec"):
        load_codec("cdc-looks-q1", weights_dir=tmp_path)
    assert [i.family for i in list_codecs(tmp_path) if i.path] == ["nobody"]


def test_a_card_default_sets_the_steps_default(tmp_path):
    from model import random_codec
    from model.nn.weights_file import save_weights

    save_weights(random_codec("cdc-tiny").model, tmp_path / "c.safetensors", {"name": "c", "default_steps": 3})
    codec = load_codec(str(tmp_path / "c.safetensors"))
    assert codec.resolve_options("decode", {}) == {"steps": 3, "gamma": 0.0, "seed": 0}
    assert codec.stochastic_decoder


def test_a_family_registered_twice_from_another_module_is_refused():
    pillow = get_family("pillow")
    with pytest.raises(ValueError, match="already registered"):
        register_family(Family(name="pillow", load=lambda request: None))
    assert get_family("pillow") is pillow


def test_plugin_family_encodes_decodes_and_is_listed(plugin, capsys):
    codec = load_codec("tinyraw-l8")
    assert isinstance(codec, Codec) and codec.family == "tinyraw"
    img = _image()
    blob = codec.encode([img])[0]
    assert unpack(blob).codec_id == "tinyraw-l8"
    centre, edge = (np.asarray(codec.decode([blob], centre=c)[0]) for c in (True, False))
    assert np.abs(centre.astype(int) - img).max() <= 16 and (centre.astype(int) - edge == 16).all()
    finer = codec.encode([img], levels=64)[0]
    assert unpack(finer).codec_id == "tinyraw-l64" and len(finer) > len(blob)
    assert plugin.parse("tinyraw-x") is None and plugin.parse("tinyraw-l4") == ParsedName(None, {"levels": 4})


def test_plugin_appears_in_model_list_subprocess(plugin):
    import os

    env = {**os.environ, PLUGINS_ENV: str(PLUGIN)}
    out = subprocess.run([sys.executable, "-m", "model", "list"], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "tinyraw-lN" in out.stdout and "webp-qN" in out.stdout
    without = subprocess.run([sys.executable, "-m", "model", "list"], cwd=REPO, capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != PLUGINS_ENV})
    assert without.returncode == 0 and "webp-qN" in without.stdout  # listed, without the plugin
    assert "tinyraw" not in without.stdout


def test_plugin_family_through_the_compress_and_decompress_jobs(plugin, ray_local, tmp_path):
    from jobs import compress, decompress

    plain_shards(tmp_path / "in", n_shards=1, per_shard=3, size=(40, 24))
    out = tmp_path / "archive"
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "tinyraw-l16",
                          "--levels", "32", "--actors", "1", "--no-progress"]) == 0
    rows = archive_rows(out)
    assert len(rows) == 3 and all(r["error"] is None and r["codec_id"] == "tinyraw-l32" for r in rows)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["codec_id"] == "tinyraw-l32"
    decoded = tmp_path / "decoded"
    assert decompress.main(["--input", str(out), "--output", str(decoded), "--format", "png", "--centre", "false",
                            "--actors", "1", "--no-progress"]) == 0
    pngs = sorted(decoded.rglob("*.png"))
    assert len(pngs) == 3
    step = 256 // 32  # --levels 32; --centre false puts every value on a bin's lower edge, not its middle
    assert all((np.asarray(Image.open(p)) % step == 0).all() for p in pngs)
    manifest = json.loads((decoded / "_manifest.json").read_text())
    assert manifest["decode"]["centre"] is False


@pytest.mark.parametrize("config, family, cls", [("cdc-tiny", "cdc", "LatentCodec"),
                                                 ("hyperprior-tiny", "hyperprior", "LatentCodec"),
                                                 ("cdc-avif-tiny", "cdc-avif", "AvifDiffusionCodec")])
def test_an_in_memory_network_becomes_its_familys_codec(config, family, cls):
    from model import random_codec

    codec = random_codec(config)
    assert type(codec).__name__ == cls and codec.family == family
    blob = codec.encode([_image(32, 48)])[0]
    assert unpack(blob).codec_id == codec.codec_id and codec.codec_id.startswith(f"{config}@")
    assert codec.decode([blob])[0].size == (48, 32)
    other = random_codec(config, seed=1)
    assert other.codec_id != codec.codec_id  # the id hashes the weights: other weights, other id


def test_the_order_of_registration_decides_no_name(monkeypatch):
    """Names go to families by their declared prefixes (longest first), then by the weights card's family:
    the built-ins registered in reverse resolve every name alike."""
    from model import registry

    names = ["avif-q40", "jpeg-q5", "diffc-avif-q40", "diffc-avif-cdc-avif-m-prior-q30", "diffc", "cdc-avif-mse-q40",
             "cdc-s-q2", "hyperprior-s-q2"]
    offered = {n: [f.name for f in registry.offered_to(n)] for n in names}
    monkeypatch.setattr(registry, "_FAMILIES", dict(reversed(list(registry._FAMILIES.items()))))
    assert {n: [f.name for f in registry.offered_to(n)] for n in names} == offered
    assert offered["diffc-avif-q40"][:2] == ["diffc-avif", "diffc"]  # the longer prefix first
    # weights names go to the families without prefixes (plugins registered earlier may be among them): the
    # card's family tells them apart
    assert {"cdc", "hyperprior"} <= set(offered["cdc-s-q2"]) and not {"pillow", "diffc"} & set(offered["cdc-s-q2"])
    # where the built-ins' order decided before, the same families now (the others: their cards decide)
    assert {n: load_codec(n).family for n in ("avif-q40", "jpeg-q5", "diffc-avif-q40", "diffc")} == {
        "avif-q40": "pillow", "jpeg-q5": "pillow", "diffc-avif-q40": "diffc-avif", "diffc": "diffc"}
