"""Decode presets: a weights card names sets of decode options (``decode_presets``), the user asks for
one by name (the API, ``python -m model decode --preset``, ``jobs/decompress.py --preset``); an
unknown name is refused with the card's list, and decompress resumes only under the same effective
options. Also the ancestral sampler (``eta``) that a realism preset may name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model import BitstreamError, load_codec, named_config
from model.codec import OptionError
from model.nn.restoration import AvifRestorationModel
from model.nn.weights_file import save_weights
from model.weights import WeightsError

REALISM = {"steps": 2, "gamma": 0.8, "eta": 1.0}


def tiny_weights(folder, presets=None, name="cdc-avif-p"):
    torch.manual_seed(0)
    model = AvifRestorationModel(named_config("cdc-avif-tiny"))
    torch.nn.init.normal_(model.denoiser.head[-1].weight, std=0.05)  # not the identity
    card = {"name": name, "description": "test", "steps_trained": 0, "default_steps": 1}
    save_weights(model, folder / f"{name}.safetensors", {**card, **({"decode_presets": presets} if presets else {})})
    return folder / f"{name}.safetensors"


def photo(h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)], -1) * 80 + 128
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_a_cards_preset_decodes_as_its_options_and_flags_beside_it_win(tmp_path):
    codec = load_codec(str(tiny_weights(tmp_path, {"realism": REALISM, "sharp": {"steps": 1}})))
    blob = codec.encode([photo()], quality=20)[0]
    by_name = pixels(codec.decode([blob], preset="realism")[0])
    assert np.array_equal(by_name, pixels(codec.decode([blob], **REALISM)[0]))
    assert not np.array_equal(by_name, pixels(codec.decode([blob])[0]))  # the card's default: 1 step, γ 0
    seeded = pixels(codec.decode([blob], preset="realism", seed=3)[0])
    assert np.array_equal(seeded, pixels(codec.decode([blob], **REALISM, seed=3)[0]))
    assert not np.array_equal(seeded, by_name)
    with pytest.raises(OptionError, match=r"no decode preset 'real'.*realism \(steps 2, gamma 0.8, eta 1.0\), sharp"):
        codec.decode([blob], preset="real")
    plain = load_codec(str(tiny_weights(tmp_path, name="cdc-avif-q")))
    with pytest.raises(OptionError, match="no decode preset 'realism' .*names none"):
        plain.decode([plain.encode([photo()], quality=20)[0]], preset="realism")


def test_a_card_whose_preset_names_an_unknown_option_is_refused_naming_the_card(tmp_path):
    path = tiny_weights(tmp_path, {"realism": {"steps": 4, "temperature": 0.9}})
    with pytest.raises(WeightsError, match=r"cdc-avif-p\.json: decode_presets: .*'temperature'"):
        load_codec(str(path))
    card = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**card, "decode_presets": {"realism": {"steps": 0}}}))
    with pytest.raises(WeightsError, match="option 'steps' must be in 1"):
        load_codec(str(path))


def test_the_ancestral_sampler_draws_fresh_noise_reproducibly(tmp_path):
    codec = load_codec(str(tiny_weights(tmp_path)))
    blob = codec.encode([photo()], quality=20)[0]
    ddim, ancestral = (pixels(codec.decode([blob], steps=3, gamma=0.8, eta=e)[0]) for e in (0.0, 1.0))
    assert not np.array_equal(ddim, ancestral)
    assert np.array_equal(ancestral, pixels(codec.decode([blob], steps=3, gamma=0.8, eta=1.0)[0]))
    # batching does not change an image's noise
    other = codec.encode([photo(seed=1)], quality=20)[0]
    assert np.array_equal(ancestral, pixels(codec.decode([blob, other], steps=3, gamma=0.8, eta=1.0)[0]))


def test_the_command_line_decodes_a_preset_and_lists_the_cards_presets(tmp_path, capsys):
    from model.__main__ import main

    path = tiny_weights(tmp_path, {"realism": REALISM})
    codec = load_codec(str(path))
    from PIL import Image

    Image.fromarray(photo()).save(tmp_path / "a.png")
    assert main(["encode", str(tmp_path / "a.png"), str(tmp_path / "a.cdc"), "--codec", str(path),
                 "--quality", "20"]) == 0
    assert main(["decode", str(tmp_path / "a.cdc"), str(tmp_path / "b.png"), "--codec", str(path),
                 "--preset", "realism"]) == 0
    expected = codec.decode([(tmp_path / "a.cdc").read_bytes()], **REALISM)[0]
    assert np.array_equal(pixels(Image.open(tmp_path / "b.png")), pixels(expected))
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "a.cdc"), str(tmp_path / "c.png"), "--codec", str(path),
                 "--preset", "dreamy"]) != 0
    assert "no decode preset 'dreamy'" in capsys.readouterr().err and not (tmp_path / "c.png").exists()


def test_decompress_decodes_a_preset_and_resumes_only_under_the_same_effective_options(ray_local, tmp_path,
                                                                                       capsys):
    from shardkit import plain_shards

    from jobs import compress, decompress

    weights = tmp_path / "weights"
    weights.mkdir()
    path = tiny_weights(weights, {"realism": REALISM})
    plain_shards(tmp_path / "in", n_shards=1, per_shard=2, size=(64, 48))
    archive = tmp_path / "archive"
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(archive), "--codec", str(path),
                          "--quality", "20", "--actors", "1", "--no-progress"]) == 0
    out = tmp_path / "decoded"
    job = ["--input", str(archive), "--output", str(out), "--weights-dir", str(weights), "--actors", "1",
           "--no-progress"]
    capsys.readouterr()
    assert decompress.main(job + ["--preset", "dreamy"]) == 2
    assert "no decode preset 'dreamy'" in capsys.readouterr().err and not out.exists()

    assert decompress.main(job + ["--preset", "realism"]) == 0
    marker = json.loads(next(out.glob("*.decoded.json")).read_text())
    assert {k: marker["settings"]["options"][k] for k in REALISM} == REALISM  # the effective options
    decode = json.loads((out / "_manifest.json").read_text())["decode"]
    assert decode["preset"] == "realism" and (decode["steps"], decode["gamma"], decode["eta"]) == (2, 0.8, 1.0)

    # the same options given as flags: nothing to do again; another card value: decoded again
    assert decompress.main(job + ["--steps", "2", "--gamma", "0.8", "--eta", "1"]) == 0
    assert json.loads((out / "_manifest.json").read_text())["counts"]["skipped"] == 1
    card = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**card, "decode_presets": {"realism": {**REALISM, "steps": 3}}}))
    assert decompress.main(job + ["--preset", "realism"]) == 0
    assert json.loads((out / "_manifest.json").read_text())["counts"]["done"] == 1


def test_presets_make_a_new_codec_and_leave_the_loaded_one_as_it_was(tmp_path):
    codec = load_codec(str(tiny_weights(tmp_path, {"realism": REALISM})))
    steps, names = dict(codec.presets), dict(codec.decode_presets)
    tuned = codec.with_presets(quality=50, steps=2).with_decode_presets({"sharp": {"steps": 1}})
    capped = codec.with_max_pixels(10)
    assert tuned is not codec and tuned.model is codec.model  # one network, shared
    assert dict(codec.presets) == steps and dict(codec.decode_presets) == names
    assert tuned.presets == {**steps, "quality": 50, "steps": 2} and set(tuned.decode_presets) == {"realism", "sharp"}
    blob = codec.encode([photo()])[0]
    assert blob != tuned.encode([photo()])[0]  # quality 30 (the declared default) against 50
    with pytest.raises(BitstreamError, match="over the decode cap of 10"):
        capped.decode([blob])
    assert codec.max_pixels > 10 and codec.decode([blob])[0].size == (96, 64)
    with pytest.raises(OptionError):
        codec.with_presets(temperature=1.0)
    assert dict(codec.presets) == steps
