"""Write the committed test vectors: small bitstreams of every family and the hash of their decode.

    python tests/vectors/make_vectors.py      # writes the vectors that are not there yet

The first vectors were written by the code of commit 3ee793a (before the codec registry refactor);
the test ``tests/codecs/test_vectors.py`` decodes each one and compares the sha256 of the decoded pixels, so
every bitstream written by earlier code keeps decoding bit for bit. Existing vectors are never
rewritten: a new family adds its entries to ``VECTORS``. Decoding runs on one thread.
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


def main() -> None:
    import torch

    from model import load_codec

    torch.set_num_threads(1)
    images = source_images()
    index = HERE / "vectors.json"
    entries = json.loads(index.read_text()) if index.exists() else []
    written = {e["file"] for e in entries}
    for codec_name, options in VECTORS:
        codec = load_codec(codec_name)
        suffix = "".join(f"-{k}{v:g}" for k, v in options.items())
        for image_name, image in images.items():
            file = f"{codec_name}{suffix}-{image_name}.darc"
            if file in written:
                continue
            blob = codec.encode([image])[0]
            decoded = codec.decode([blob], **options)[0]
            (HERE / file).write_bytes(blob)
            entries.append({"file": file, "codec_id": codec.codec_id, "decode": options, "mode": decoded.mode,
                            "size": list(decoded.size), "pixels_sha256": pixel_sha256(decoded)})
    index.write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main()
