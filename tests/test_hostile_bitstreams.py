"""Hostile bitstreams in an archive (tests/hostile.py: 15 of them, valid CRCs, every shipped family):
the decode job exits normally, each one is exactly one error row saying what is wrong, every honest
row in the same shard decodes to the pixels a direct decode gives, and the decoding process stays
under its memory bound."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
from hostile import hostile_corpus
from PIL import Image
from shardkit import photo, plain_shards, rewrite_archive_shard

from jobs import compress, decompress
from model import load_codec

CODECS = ("hyperprior-s-q2", "cdc-s-q2", "webp-q80", "jpeg-q80", "avif-q60")
PEAK_RSS_BOUND = 2 << 30  # the decoding process holding both shipped neural codecs, all corpus decoded


def test_hostile_bitstreams_are_error_rows_and_the_rest_decodes(ray_local, tmp_path, capsys):
    plain_shards(tmp_path / "in", n_shards=1, per_shard=1, size=(64, 48))
    archive = tmp_path / "archive"
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(archive), "--codec", "webp-q80",
                          "--no-progress"]) == 0
    codecs = {name: load_codec(name) for name in CODECS}
    honest = {name: codec.encode([photo(64, 48, seed=i)])[0] for i, (name, codec) in enumerate(codecs.items())}
    corpus = hostile_corpus(*honest.values())
    assert len(corpus) >= 12

    def with_corpus(rows):
        template = rows[0]
        good = [{**template, "key": f"good-{k}-{name}", "codec_id": codecs[name].codec_id, "bitstream": blob}
                for k in range(3) for name, blob in honest.items()]
        bad = [{**template, "key": f"bad-{name}", "codec_id": codec_id, "bitstream": blob}
               for name, (codec_id, blob, _) in corpus.items()]
        return [x for pair in zip(good, bad) for x in pair]  # hostile rows between honest ones

    rewrite_archive_shard(archive, "shard-000000", with_corpus)
    out = tmp_path / "decoded"
    assert decompress.main(["--input", str(archive), "--output", str(out), "--actors", "1", "--batch-size", "4",
                            "--decoder-memory-gb", "3", "--allow-errors", "--no-progress"]) == 0

    marker = json.loads((out / "shard-000000.decoded.json").read_text())
    errors = {r["key"]: r["error"] for r in marker["failed_rows"]}
    assert sorted(errors) == sorted(f"bad-{name}" for name in corpus)  # one error row each, nothing else
    for name, (_, _, phrase) in corpus.items():
        assert phrase in errors[f"bad-{name}"], (name, errors[f"bad-{name}"])
    with tarfile.open(out / "shard-000000.tar") as tar:
        decoded = {m.name[: -len(".png")]: np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())))
                   for m in tar.getmembers() if m.name.endswith(".png")}
    assert sorted(decoded) == sorted(f"good-{k}-{name}" for k in range(3) for name in CODECS)
    for name, blob in honest.items():
        direct = np.asarray(codecs[name].decode([blob])[0])
        assert all(np.array_equal(decoded[f"good-{k}-{name}"], direct) for k in range(3)), name
    assert marker["decoder"]["deaths"] == [] and 0 < marker["decoder"]["peak_rss_bytes"] < PEAK_RSS_BOUND
