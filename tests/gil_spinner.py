"""A child (``pipeline.io.child.start_child("gil_spinner")``) that holds the GIL for good once it has
said "spinning", as a native decoder looping in C would (compressai's rANS decoder holds the GIL):
its parent-watch thread never runs, so only PR_SET_PDEATHSIG can end it (tests/cluster_faults/test_orphans.py)."""

from __future__ import annotations

import re

from pipeline.io.child import child_streams, send

if __name__ == "__main__":
    _, proto_out = child_streams()
    send(proto_out, "spinning")
    re.match(r"(a+)+$", "a" * 64 + "b")  # backtracking inside the C regex engine: 2^64 steps, the GIL held
