"""Weights by name: codec ids, local folders, and a bucket (moto's S3 server) through a verified cache."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import s3fs
from shardkit import archive_rows, plain_shards

from model import (Weights, WeightsError, WeightsResolver, load_codec, load_codec_for_id, make_codec_id,
                   random_codec, split_codec_id)
from model.nn.weights_file import save_weights
from model.weights import WEIGHTS_DIR, WEIGHTS_SUFFIX, sha256_file

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_family.py"


def test_codec_ids_are_built_and_split_in_one_place():
    assert make_codec_id("cdc-s-q2", "3f9a1c07" + "0" * 56) == "cdc-s-q2@3f9a1c07"
    assert make_codec_id("webp-q75", None) == "webp-q75"
    assert split_codec_id("cdc-s-q2@3f9a1c07") == ("cdc-s-q2", "3f9a1c07")
    assert split_codec_id("webp-q75") == ("webp-q75", None)


def test_a_card_that_describes_other_weights_is_refused(tmp_path):
    save_weights(random_codec("hyperprior-tiny").model, tmp_path / "hp.safetensors", {"name": "hp"})
    card = json.loads((tmp_path / "hp.json").read_text())
    (tmp_path / "hp.json").write_text(json.dumps({**card, "sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="card describes other weights"):
        load_codec("hp", weights_dir=tmp_path)


@pytest.fixture()
def bucket(s3_endpoint, tmp_path):
    """s3://weights-N/v1/ holding hp-good (with its card) and hp-bad (bytes other than its card's sha256)."""
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, use_listings_cache=False)
    name = f"weights-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    fs.mkdir(name)
    local = tmp_path / "made"
    save_weights(random_codec("hyperprior-tiny", seed=1).model, local / "hp-good.safetensors", {"name": "hp-good"})
    save_weights(random_codec("hyperprior-tiny", seed=2).model, local / "hp-bad.safetensors", {"name": "hp-bad"})
    card = json.loads((local / "hp-good.json").read_text())
    (local / "hp-bad.json").write_text(json.dumps({**card, "name": "hp-bad"}))  # hp-good's hash
    for f in local.iterdir():
        fs.put(str(f), f"{name}/v1/{f.name}")
    return fs, f"s3://{name}/v1/", local, s3_endpoint


def test_bucket_weights_are_verified_cached_and_checked_against_the_codec_id(bucket, tmp_path):
    fs, url, local, endpoint = bucket
    resolver = WeightsResolver(dirs=(tmp_path / "none",), url=url, cache=tmp_path / "cache", endpoint_url=endpoint)
    codec = load_codec("hp-good", resolver=resolver)
    digest = sha256_file(local / "hp-good.safetensors")
    assert codec.codec_id == make_codec_id("hp-good", digest)
    cached = tmp_path / "cache" / digest / "hp-good.safetensors"
    assert sha256_file(cached) == digest

    blob = codec.encode([np.zeros((20, 30, 3), np.uint8)])[0]
    fs.rm(url.removeprefix("s3://") + "hp-good.safetensors")  # from now on only the cache has the file
    assert load_codec_for_id(codec.codec_id, resolver=resolver).decode([blob])[0].size == (30, 20)
    with pytest.raises(WeightsError, match="codec id asks for 00000000"):
        load_codec_for_id("hp-good@00000000", resolver=resolver)

    cached.write_bytes(b"damaged")  # a damaged cache entry is fetched again, and then it is missing
    with pytest.raises(WeightsError, match="exists but hp-good.safetensors beside it does not"):
        load_codec("hp-good", resolver=resolver)


def test_bucket_file_with_the_wrong_hash_is_refused(bucket, tmp_path):
    _, url, _, endpoint = bucket
    resolver = WeightsResolver(dirs=(tmp_path / "none",), url=url, cache=tmp_path / "cache", endpoint_url=endpoint)
    with pytest.raises(WeightsError, match="refusing it"):
        load_codec("hp-bad", resolver=resolver)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []  # nothing unverified is kept
    with pytest.raises(KeyError, match="unknown codec 'hp-none'"):
        load_codec("hp-none", resolver=resolver)


def test_jobs_take_weights_from_a_bucket(bucket, ray_local, tmp_path, monkeypatch):
    from plugin_family import write_lut_weights

    from jobs import compress, decompress

    fs, url, local, endpoint = bucket
    write_lut_weights(local / "lut-bucket.safetensors", levels=16)  # no torch in the workers: a quick test
    for suffix in (".safetensors", ".json"):
        fs.put(str(local / f"lut-bucket{suffix}"), url.removeprefix("s3://") + f"lut-bucket{suffix}")
    monkeypatch.setenv("DIFFARC_CODEC_PLUGINS", str(PLUGIN))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("DIFFARC_CACHE", str(tmp_path / "cache"))
    plain_shards(tmp_path / "in", n_shards=1, per_shard=2, size=(40, 24))
    out, empty = tmp_path / "archive", tmp_path / "no-weights-here"
    empty.mkdir()
    flags = ["--weights-dir", str(empty), "--weights-url", url, "--actors", "1", "--no-progress"]
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", "lut-bucket", *flags]) == 0
    rows = archive_rows(out)
    assert len(rows) == 2 and all(r["error"] is None and r["codec_id"].startswith("lut-bucket@") for r in rows)
    shutil.rmtree(tmp_path / "cache")  # the decode job fetches (and verifies) again
    assert decompress.main(["--input", str(out), "--output", str(tmp_path / "decoded"), "--format", "png",
                            *flags]) == 0
    assert len(list((tmp_path / "decoded").rglob("*.png"))) == 2


def test_the_same_weights_always_make_the_same_file(tmp_path):
    # safetensors writes its metadata in hash-map order: without a canonical header, one model saved
    # twice (or hashed in memory, then saved) could get two ids, and its bitstreams would not decode
    from model import random_codec
    from model.nn.weights_file import save_weights

    ids = set()
    for i in range(8):
        codec = random_codec("cdc-tiny", seed=0)
        digest = save_weights(codec.model, tmp_path / f"w{i}.safetensors", {"name": "w"})
        assert codec.codec_id == f"cdc-tiny@{digest}"  # in memory, the id of the file it would be
        ids.add(digest)
    assert len(ids) == 1


@pytest.mark.parametrize("fraction, loss, objective, gammas, dropout", [
    (1.0, {"final_gammas": (0.0,), "base_dropout": 0.0}, "restoration", [0.0], 0.0),  # cdc-avif-m-mse's run
    (0.2, {"base_dropout": 0.1}, "diffusion", [0.0, 0.0, 0.8, 1.0], 0.1),  # the prior's: the loss's own gammas
    (0.5, {}, "diffusion", [0.0, 0.0, 0.8, 1.0], 0.1),  # nothing given: the config's base dropout
])
def test_export_writes_the_training_objective_from_the_runs_settings(tmp_path, fraction, loss, objective, gammas,
                                                                    dropout):
    from safetensors.torch import save_file

    from model import build_network, named_config
    from model.training import TrainConfig, export

    ckpt = tmp_path / "run" / "ckpt"
    ckpt.mkdir(parents=True)
    save_file(build_network(named_config("cdc-avif-tiny")).state_dict(), ckpt / "ema.safetensors")
    (ckpt / "state.json").write_text(json.dumps({"step": 3, "elapsed_s": 1.0}))
    cfg = TrainConfig(config="cdc-avif-tiny", out=str(tmp_path / "run"), final_step_fraction=fraction,
                      loss_options=loss)
    weights = Weights.open(export(cfg, "x", tmp_path / "weights"))
    assert weights.objective == objective and weights.unconditional_prior == (objective == "diffusion")
    assert weights.card["objective_settings"] == {"final_step_fraction": fraction, "final_gammas": gammas,
                                                  "base_dropout": dropout}


def test_shipped_cdc_avif_cards_say_restoration_and_still_describe_their_files():
    """The objective was added to the cards, which are not inside the hashed files: codec ids (and so
    every archive and tests/vectors) are unchanged."""
    for name, short_hash in (("cdc-avif-m-mse", "c3bf6b22"), ("cdc-avif-mse", "fca83766")):
        weights = Weights.open(WEIGHTS_DIR / f"{name}{WEIGHTS_SUFFIX}")
        assert weights.objective == "restoration" and not weights.unconditional_prior
        assert weights.sha256 == weights.card["sha256"] and weights.sha256.startswith(short_hash)


def test_int8_weights_load_exactly_as_released_in_half_the_bytes_and_fp16_files_are_unchanged(tmp_path):
    # --precision int8: what the codec decodes with after saving is what a load gives back (the same
    # codec id, the same images); fp16 files keep their bytes (shipped codec ids depend on them)
    import torch

    from model import load_codec, random_codec
    from model.nn.weights_file import save_weights

    fp16 = save_weights(random_codec("cdc-avif-tiny", seed=0).model, tmp_path / "a.safetensors", {"name": "a"})
    again = save_weights(random_codec("cdc-avif-tiny", seed=0).model, tmp_path / "b.safetensors", {"name": "b"},
                         precision="fp16")
    assert fp16 == again and (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()

    codec = random_codec("cdc-avif-tiny", seed=0)
    with torch.no_grad():  # a trained-looking head, so the network changes the image
        for p in codec.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    card = {"name": "q", "description": "int8", "steps_trained": 0, "default_steps": 1}
    save_weights(codec.model, tmp_path / "q.safetensors", card, precision="int8")
    loaded = load_codec(str(tmp_path / "q.safetensors"))
    assert (tmp_path / "q.safetensors").stat().st_size < 0.7 * (tmp_path / "a.safetensors").stat().st_size
    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    in_memory = np.asarray(codec.decode(codec.encode([rgb], quality=20))[0])
    assert np.array_equal(np.asarray(loaded.decode(loaded.encode([rgb], quality=20))[0]), in_memory)
    for (name, a), b in zip(codec.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="precision 'int4'"):
        save_weights(codec.model, tmp_path / "x.safetensors", {"name": "x"}, precision="int4")
