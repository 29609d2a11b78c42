"""The jobs' flags become frozen, typed settings (``RunSettings``, ``DecompressFlags``, ``DecodeSettings``)
without any helper changing the parsed flags; the decode options inside stay a mapping that cannot
change, that pickles to the workers and the decoding process, and that a marker records as before."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import FrozenInstanceError

import pytest

from jobs import compress, decompress
from pipeline.decode.settings import DecodeSettings
from pipeline.records.archive import RowGroups
from pipeline.run.runner import RunSettings

# a decoded shard's marker "settings" as written before the settings were frozen: resume compares them
MARKER_SETTINGS = (
    '{"options": {"gamma": 0.8, "steps": 2}, "format": "png", "keys_sha256": '
    '"7e18f737311b2dc3b2f269dd78396b0351f14fb66efa879f768cb23181883c78", "batch_size": 4, "max_pixels": 1000, '
    '"max_row_group_bytes": 1048576, "codec_options": {"cdc-avif-m-mse@ab12": '
    '{"decoder": null, "gamma": 0.8, "seed": 0, "steps": 2}}}')


def test_flags_become_frozen_settings_and_the_parsed_flags_stay_as_given():
    argv = ["--input", "arc", "--output", "out", "--keys", "keys.txt", "--audit", "in/shard-{0..1}.tar",
            "--steps", "3", "--preset", "realism", "--batch-size", "2", "--decode-timeout", "5", "--no-progress"]
    args = decompress.build_parser().parse_args(argv)
    parsed = dict(vars(args))
    flags = decompress.DecompressFlags.from_args(args)
    assert vars(args) == parsed  # nothing set on the caller's Namespace
    assert (flags.run.input, flags.run.output, flags.keys) == tuple(
        os.path.abspath(p) for p in ("arc", "out", "keys.txt"))
    assert flags.audit == os.path.abspath("in/shard-{0..1}.tar") and not flags.run.progress
    assert flags.decode.options == {"steps": 3} and flags.decode.preset == "realism"
    assert (flags.decode.batch_size, flags.decode.limits.seconds_per_image) == (2, 5.0)
    with pytest.raises(FrozenInstanceError):
        flags.run.output = "elsewhere"
    with pytest.raises(TypeError):
        flags.decode.options["steps"] = 4

    compress_args = compress.build_parser().parse_args(["--input", "s3://b/in/", "--output", "arc"])
    run = RunSettings.from_args(compress_args)
    assert (run.input, run.output, compress_args.output) == ("s3://b/in/", os.path.abspath("arc"), "arc")


def test_decode_settings_pickle_frozen_and_mark_shards_as_before():
    given = {"steps": 2, "gamma": 0.8}
    per_codec = {"cdc-avif-m-mse@ab12": {"steps": 2, "gamma": 0.8, "seed": 0, "decoder": None}}
    settings = DecodeSettings(options=given, batch_size=4, format="png", keys=frozenset({"b", "a"}), max_pixels=1000,
                              row_groups=RowGroups(bytes=2**20), codec_options=per_codec)
    given["steps"] = 9  # the caller's dicts, changed later, do not reach the settings
    per_codec["cdc-avif-m-mse@ab12"]["seed"] = 9
    assert json.dumps(settings.fingerprint()) == MARKER_SETTINGS
    sent = pickle.loads(pickle.dumps(settings))  # as to the actors and the decoding process
    assert sent == settings and json.dumps(sent.fingerprint()) == MARKER_SETTINGS
    with pytest.raises(TypeError):
        sent.codec_options["cdc-avif-m-mse@ab12"]["seed"] = 1

