"""Where a `full` 1080p frame's GPU time goes, and what torch.compile (inductor) and reshaping the
RGB convolutions (padded to 8 channels, or folded into pixel blocks) change:
`python -m bench.gpu_profile [out.md]` on a CUDA machine writes a markdown report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from bench.gpu import device_name, fp16_inputs, fp16_network, timed
from clipmorph.model.fast_convs import with_blocked_rgb_convs, with_padded_rgb_convs

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
    if not torch.cuda.is_available():
        print("gpu_profile: no CUDA device here; nothing written")
        return 1
    net = fp16_network("full")
    x, styles = fp16_inputs(BATCH, HEIGHT, WIDTH)
    lines = [f"# full, {WIDTH}x{HEIGHT}, batch {BATCH}, fp16 channels_last on {device_name()}", ""]
    variants = {
        "eager": lambda: net,
        "torch.compile (inductor, default mode)": lambda: torch.compile(net),
        "torch.compile, RGB convolutions padded to 8 channels": lambda: torch.compile(with_padded_rgb_convs(net)),
        "torch.compile, RGB convolutions in 4x4 pixel blocks": lambda: torch.compile(with_blocked_rgb_convs(net)),
    }
    with torch.inference_mode():
        for label, build in variants.items():
            model = build()
            started = time.perf_counter()
            model(x, styles)  # compiles, where it does
            first_s = time.perf_counter() - started
            fps, _ = timed(lambda model=model: model(x, styles), BATCH)
            print(f"{label}: {fps:.1f} frames/s (first call {first_s:.0f} s)", flush=True)
            lines += [f"{label}: {fps:.1f} frames/s, first call {first_s:.0f} s", ""]
            lines += ["```", profile_table(lambda model=model: model(x, styles)), "```", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
