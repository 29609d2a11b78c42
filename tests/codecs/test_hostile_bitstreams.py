"""Hostile bitstreams in an archive (tests/hostile.py: 32 of them, valid CRCs, every family; cdc-avif and
DiffC on tiny random weights in a --weights-dir beside the shipped ones):
the decode job exits normally, each one is exactly one error row saying what is wrong, every honest
row in the same shard decodes to the pixels a direct decode gives, and the decoding process stays
under its memory bound."""

from __future__ import annotations

import io
import json
import tarfile
from itertools import zip_longest

import numpy as np
import torch
from hostile import hostile_corpus, new_family_corpus
from PIL import Image
from shardkit import photo, plain_shards, rewrite_archive_shard

from jobs import compress, decompress
from model import build_network, load_codec, named_config
from model.nn.weights_file import save_weights
from model.weights import CARD_SUFFIX, WEIGHTS_DIR, WEIGHTS_SUFFIX, objective_card

SHIPPED = ("hyperprior-s-q2", "cdc-s-q2")
CODECS = (*SHIPPED, "webp-q80", "jpeg-q80", "avif-q60")
NEW_FAMILIES = ("cdc-avif-tiny-q30", "diffc-avif-cdc-avif-tiny-q30", "diffc-cdc-avif-tiny")
ENCODE_OPTIONS = {"diffc-avif-cdc-avif-tiny-q30": {"cap_bits": 6}, "diffc-cdc-avif-tiny": {"cap_bits": 6}}
PEAK_RSS_BOUND = 2 << 30  # the decoding process holding both shipped neural codecs, all corpus decoded


def weights_dir(folder):
    """The shipped weights the corpus uses (linked) and a tiny random cdc-avif network, which the
    cdc-avif and both DiffC families load."""
    folder.mkdir()
    for name in SHIPPED:
        for suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
            (folder / f"{name}{suffix}").symlink_to(WEIGHTS_DIR / f"{name}{suffix}")
    torch.manual_seed(0)
    model = build_network(named_config("cdc-avif-tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # not the zero head: the diffusion decoder changes pixels
    save_weights(model, folder / f"cdc-avif-tiny{WEIGHTS_SUFFIX}",
                 {"name": "cdc-avif-tiny", "description": "random, for tests", "steps_trained": 0, "default_steps": 1,
                  **objective_card(0.2, None, 0.1)})  # a prior: the DiffC families load it
    return folder


def test_hostile_bitstreams_are_error_rows_and_the_rest_decodes(ray_local, tmp_path, capsys):
    plain_shards(tmp_path / "in", n_shards=1, per_shard=1, size=(64, 48))
    archive = tmp_path / "archive"
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(archive), "--codec", "webp-q80",
                          "--no-progress"]) == 0
    weights = weights_dir(tmp_path / "weights")
    codecs = {name: load_codec(name, weights_dir=weights) for name in CODECS + NEW_FAMILIES}
    honest = {name: codec.encode([photo(64, 48, seed=i)], **ENCODE_OPTIONS.get(name, {}))[0]
              for i, (name, codec) in enumerate(codecs.items())}
    corpus = {**hostile_corpus(*(honest[name] for name in CODECS)),
              **new_family_corpus(*(honest[name] for name in NEW_FAMILIES))}
    assert len(corpus) >= 12 + 12

    def with_corpus(rows):
        template = rows[0]
        good = [{**template, "key": f"good-{k}-{name}", "codec_id": codecs[name].codec_id, "bitstream": blob}
                for k in range(3) for name, blob in honest.items()]
        bad = [{**template, "key": f"bad-{name}", "codec_id": codec_id, "bitstream": blob}
               for name, (codec_id, blob, _) in corpus.items()]
        return [x for pair in zip_longest(good, bad) for x in pair if x]  # hostile rows between honest ones

    rewrite_archive_shard(archive, "shard-000000", with_corpus)
    out = tmp_path / "decoded"
    assert decompress.main(["--input", str(archive), "--output", str(out), "--actors", "1", "--batch-size", "4",
                            "--decoder-memory-gb", "3", "--weights-dir", str(weights), "--allow-errors",
                            "--no-progress"]) == 0

    marker = json.loads((out / "shard-000000.decoded.json").read_text())
    errors = {r["key"]: r["error"] for r in marker["failed_rows"]}
    assert sorted(errors) == sorted(f"bad-{name}" for name in corpus)  # one error row each, nothing else
    for name, (_, _, phrase) in corpus.items():
        assert phrase in errors[f"bad-{name}"], (name, errors[f"bad-{name}"])
    with tarfile.open(out / "shard-000000.tar") as tar:
        decoded = {m.name[: -len(".png")]: np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())))
                   for m in tar.getmembers() if m.name.endswith(".png")}
    assert sorted(decoded) == sorted(f"good-{k}-{name}" for k in range(3) for name in honest)
    for name, blob in honest.items():
        direct = np.asarray(codecs[name].decode([blob])[0])
        assert all(np.array_equal(decoded[f"good-{k}-{name}"], direct) for k in range(3)), name
    assert marker["decoder"]["deaths"] == [] and 0 < marker["decoder"]["peak_rss_bytes"] < PEAK_RSS_BOUND
