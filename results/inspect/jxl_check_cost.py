"""CPU seconds of JPEG XL recompression against the reconstruct check compress now makes before keeping a
jpeg-xl row (pipeline/encode/keeping.py), on 60 JPEGs of a folder (every 10th file, sorted by name).

    OMP_NUM_THREADS=1 python results/inspect/jxl_check_cost.py ../shared/data/train
"""

import sys
import time
from pathlib import Path

from pipeline.imagefiles.lossless import jpeg_to_jxl, jxl_to_jpeg


def main() -> None:
    files = sorted(Path(sys.argv[1]).glob("*.jpg"))[::10][:60]
    enc = dec = 0.0
    nbytes = same = 0
    for p in files:
        data = p.read_bytes()
        nbytes += len(data)
        t = time.process_time()
        jxl = jpeg_to_jxl(data)
        enc += time.process_time() - t
        t = time.process_time()
        back = jxl_to_jpeg(jxl)
        dec += time.process_time() - t
        same += back == data
    print(f"{len(files)} JPEGs, {nbytes / 1e6:.1f} MB: recompress {enc:.2f} CPU s, reconstruct check {dec:.2f} CPU s "
          f"(+{100 * dec / enc:.0f}%), {same}/{len(files)} byte-exact")


if __name__ == "__main__":
    main()
