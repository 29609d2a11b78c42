"""Write the committed test vectors: small bitstreams of every shipped codec and the hash of their decode.

    python tests/vectors/make_vectors.py      # writes the vectors that are not there yet

The first vectors were written by the code of commit 3ee793a (before the codec registry refactor);
the test ``tests/codecs/test_vectors.py`` decodes each one and compares the sha256 of the decoded pixels, so
every bitstream written by earlier code keeps decoding bit for bit. Existing vectors are never
rewritten: a new family adds its entries to ``VECTORS`` or ``encoded_groups``. Decoding runs on one thread.

The ``encoded_groups`` vectors (issue 33: every shipped cdc-avif weights file at each effort and under rate
control, each weights card's decode presets, diffc-avif and diffc with two prefixes at each bitstream
version) also record how they were encoded (``encode``: codec name, options, source image, DiffC
prefix step) and the sha256 of their bytes: the test re-encodes them and wants the same bytes, so an
encoder change that moves any byte fails. AVIF at a fixed quality and effort, and DiffC over it, encode
deterministically (here: every vector is encoded twice and must match).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# (codec, decode options) per vector group; each group encodes every source image.
VECTORS = [
    ("jpeg-q60", {}),
    ("webp-q60", {}),
    ("avif-q60", {}),
    ("hyperprior-s-q2", {}),
    ("cdc-s-q2", {"steps": 1, "gamma": 0.0}),
    ("cdc-s-q2", {"steps": 1, "gamma": 0.8, "seed": 3}),
]
EFFORTS = ("fast", "medium", "best")
# rate control: a byte cap for every weights file; a PSNR target (the decoder runs in the encoder, ~0.5 s
# a vector) for the default codec's
RATE_CONTROL = {"max_bytes": 250}
PSNR_CONTROLLED = {"cdc-avif-mse": {"target_psnr": 32.0}}
# the encoder's gate (a strength byte where the network loses to the base: the grey image 0/16, the colour 2/16)
GATED = {"cdc-avif-mse": {"gate": True}}
DIFFC_PREFIXES = (1, 2)  # coded steps kept by the two prefix vectors (of 4 for diffc-avif, 5 for diffc)
DIFFC_VERSIONS = (1, 2)  # DiffC bitstream versions (model/diffc/stream.py): 1 big-integer rANS, 2 constriction


def encoded_groups() -> list[tuple[str, dict, dict, tuple[int, ...]]]:
    """(codec name, encode options, decode options, DiffC prefix steps) per group of encoded vectors:
    every shipped cdc-avif weights file at each effort and under rate control, each decode preset its
    card names, the encoder's gate for the default codec, and both DiffC families over the shipped prior."""
    from model.weights import WeightsResolver

    groups = []
    for weights in WeightsResolver().local():
        if weights.family == "cdc-avif":
            groups += [(weights.name, {"effort": e}, {}, ()) for e in EFFORTS]
            groups.append((weights.name, RATE_CONTROL, {}, ()))
            if weights.name in PSNR_CONTROLLED:
                groups.append((weights.name, PSNR_CONTROLLED[weights.name], {}, ()))
            if weights.name in GATED:
                groups.append((weights.name, GATED[weights.name], {}, ()))
            groups += [(weights.name, {}, {"preset": p}, ()) for p in weights.card.get("decode_presets", {})]
    return groups + [(family, {"bitstream_version": version}, {}, DIFFC_PREFIXES)
                     for family in ("diffc-avif", "diffc") for version in DIFFC_VERSIONS]


def source_images() -> dict[str, Image.Image]:
    """A 64x48 colour crop of the example corpus and a 40x24 grey image."""
    with tarfile.open(REPO / "examples" / "corpus" / "shard-000000.tar") as tar:
        data = tar.extractfile("img0001.jpg").read()
    colour = Image.open(io.BytesIO(data)).convert("RGB").crop((40, 60, 104, 108))
    yy, xx = np.mgrid[0:24, 0:40]
    grey = Image.fromarray(((xx * 6 + yy * 3 + (xx * yy) % 17) % 256).astype(np.uint8), "L")
    return {"colour": colour, "grey": grey}


def pixel_sha256(img: Image.Image) -> str:
    return hashlib.sha256(img.mode.encode() + repr(img.size).encode() + img.tobytes()).hexdigest()


def options_suffix(options: dict) -> str:
    """``-steps1-gamma0`` for {"steps": 1, "gamma": 0.0}: the options in a file name."""
    return "".join(f"-{k}{v:g}" if isinstance(v, (int, float)) else f"-{k}-{v}" for k, v in options.items())


def vector_decode(codec, blob: bytes, decode: dict) -> Image.Image:
    """A vector's decode: the entry's options with eager torch pinned where the codec has decode engines
    (``model/engine.py``; a preset naming an engine included), so the pixels are the same on every machine;
    the engines' own outputs are held to bounds of eager in tests/codecs/test_engines.py."""
    from model.codec import declared

    pinned = {"engine": "torch"} if "engine" in declared(codec.options, "decode") else {}
    return codec.decode([blob], **{**decode, **pinned})[0]


def reencoded(codec, image: Image.Image, options: dict, truncate_step: int | None) -> bytes:
    """The bitstream the vector's ``encode`` record describes (a DiffC prefix: the stream truncated)."""
    from model.diffc.stream import truncate

    blob = codec.encode([image], **options)[0]
    return blob if truncate_step is None else truncate(blob, step=truncate_step)


def main() -> None:
    import torch

    from model import load_codec

    torch.set_num_threads(1)
    images = source_images()
    index = HERE / "vectors.json"
    entries = json.loads(index.read_text()) if index.exists() else []
    written = {e["file"] for e in entries}

    def write(file: str, blob: bytes, codec, decode: dict, encode: dict | None = None) -> None:
        decoded = vector_decode(codec, blob, decode)
        (HERE / file).write_bytes(blob)
        entry = {"file": file, "codec_id": codec.codec_id, "decode": decode, "mode": decoded.mode,
                 "size": list(decoded.size), "pixels_sha256": pixel_sha256(decoded)}
        if encode is not None:
            entry |= {"encode": encode, "bitstream_sha256": hashlib.sha256(blob).hexdigest()}
        entries.append(entry)

    for codec_name, options in VECTORS:
        codec = load_codec(codec_name)
        for image_name, image in images.items():
            file = f"{codec_name}{options_suffix(options)}-{image_name}.darc"
            if file not in written:
                write(file, codec.encode([image])[0], codec, options)
    for codec_name, encode, decode, prefixes in encoded_groups():
        codec = load_codec(codec_name)
        for image_name, image in images.items():
            stem = f"{codec_name}{options_suffix(encode)}{options_suffix(decode)}"
            for step in (None, *prefixes):
                file = f"{stem}{'' if step is None else f'-step{step}'}-{image_name}.darc"
                if file in written:
                    continue
                blob = reencoded(codec, image, encode, step)
                if blob != reencoded(codec, image, encode, step):
                    raise SystemExit(f"{file}: {codec_name} {encode} encodes differently twice: not a vector")
                write(file, blob, codec, decode, {"codec": codec_name, "options": encode, "source": image_name,
                                                  "truncate_step": step})
    index.write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main()
