"""Where a `full` 1080p frame's GPU time goes, and what torch.compile (inductor) changes:
`python -m bench.gpu_profile [out.md]` on a CUDA machine writes a markdown report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from bench.gpu import device_name, fp16_inputs, fp16_network, timed

BATCH, HEIGHT, WIDTH = 8, 1080, 1920


def profile_table(step, rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=60)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("gpu-profile.md")
    net = fp16_network("full")
    x, styles = fp16_inputs(BATCH, HEIGHT, WIDTH)
    lines = [f"# full, {WIDTH}x{HEIGHT}, batch {BATCH}, fp16 channels_last on {device_name()}", ""]
    with torch.inference_mode():
        eager_fps, _ = timed(lambda: net(x, styles), BATCH)
        lines += [f"eager: {eager_fps:.1f} frames/s", "", "```", profile_table(lambda: net(x, styles)), "```", ""]
        print(f"eager {eager_fps:.1f} frames/s", flush=True)
        compiled = torch.compile(net)
        started = time.perf_counter()
        compiled(x, styles)
        compile_s = time.perf_counter() - started
        compiled_fps, _ = timed(lambda: compiled(x, styles), BATCH)
        print(f"compiled {compiled_fps:.1f} frames/s (compile {compile_s:.0f} s)", flush=True)
        lines += [f"torch.compile (inductor, default mode): {compiled_fps:.1f} frames/s, compiled in {compile_s:.0f} s"]
        lines += ["", "```", profile_table(lambda: compiled(x, styles)), "```", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
