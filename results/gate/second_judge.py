"""SSIMULACRA2 of the decodes the gate wrote a strength for (``gate.json``'s content set): the AVIF base,
the full network and the gated decode. The gate chooses by squared error; this checks the other judge.

    OMP_NUM_THREADS=1 python results/gate/second_judge.py        # after results/gate/probe.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "results" / "engines" / "content"))

from probe import ROOT, inputs  # the content probe's images

from model.codecs.base_layer import read_base_payload
from model.evaluation.metrics import ssimulacra2
from model.format import unpack
from model.registry import load_codec


def main() -> int:
    images = inputs(ROOT.parent / "shared/data/kodak")
    cases = [c for c in json.loads((HERE / "gate.json").read_text())["text, graphics, flat"]["cases"] if c["strength"] < 1]
    codec, scores = load_codec("cdc-avif-mse"), []
    for case in cases:
        rgb = images[case["image"]]
        plain, gated = (codec.encode([rgb], quality=case["quality"], gate=g)[0] for g in (False, True))
        base = read_base_payload(unpack(gated).strings[0], *rgb.shape[:2], "probe").rgb
        scores.append([ssimulacra2(rgb, x) for x in (base, codec.decode([plain], engine="torch")[0],
                                                   codec.decode([gated], engine="torch")[0])])
    s = np.array(scores)
    print(f"{len(s)} gated decodes: mean SSIMULACRA2 base {s[:, 0].mean():.2f}, full network {s[:, 1].mean():.2f}, "
          f"gated {s[:, 2].mean():.2f}; more than 0.5 below: full < base {int((s[:, 1] < s[:, 0] - 0.5).sum())}, "
          f"gated < base {int((s[:, 2] < s[:, 0] - 0.5).sum())}, gated < full {int((s[:, 2] < s[:, 1] - 0.5).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
