"""`python -m bench [--quick] [--sections model,video,service,live,peer]` (also: creation, soak, training, gpu...)."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from bench import report

SECTIONS = ["model", "video", "service", "live", "peer"]
# creation, training: slow, need the trained catalogue; gpu*: need CUDA. Asked for by name.
EXTRA_SECTIONS = ["creation", "gpu", "gpu_video", "gpu_service", "soak", "training"]
HERE = Path(__file__).parent


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    cpu = names[0] if names else "unknown"
    flags = cpuinfo
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": torch.get_num_threads(),
        "bf16_instructions": [f for f in ("avx512_bf16", "amx_bf16") if f in flags],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def merged_machine(earlier: dict, now: dict, sections: str) -> dict:
    """The header names the machine of the default sections; a section measured apart (on
    another session's CPU, or on a GPU machine) names its own. A re-run of the default sections
    takes over the header, and a re-run replaces the notes of the sections it covers."""
    rerun = set(sections.split(","))
    notes = {
        name: when for name, when in earlier.get("merged_sections", {}).items() if not set(name.split(",")) <= rerun
    }
    if set(SECTIONS) <= rerun:
        return {**now, "merged_sections": notes}
    where = f"{now['cpu']}, {now['cores']} threads, GPU: {now['gpu'] or 'none'}, torch {now['torch']}"
    return {**earlier, "merged_sections": {**notes, sections: f"{now['date']} on {where}"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small subset (a minute or two)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument(
        "--merge", action="store_true", help="keep the rows of sections not re-run (GPU, creation) from results.json"
    )
    args = parser.parse_args(argv)
    info = machine()
    print(f"machine: {info}")
    rows: list[dict] = []
    measured: list[str] = []  # sections that gave rows (a GPU section on a CPU machine gives none)
    started = time.monotonic()
    for name in args.sections.split(","):
        section_started = time.monotonic()
        if name not in SECTIONS + EXTRA_SECTIONS:
            parser.error(f"unknown section {name!r}; choose from {', '.join(SECTIONS + EXTRA_SECTIONS)}")
        # Imported when asked for: sections need different packages (the GPU machine lacks PyAV).
        section_rows = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        rows += section_rows
        measured += [name] if section_rows else []
        print(f"-- {name}: {time.monotonic() - section_started:.0f} s", flush=True)
    if not measured:
        print("nothing was measured: the results are left as they were")
        return 0
    info["total_seconds"] = round(time.monotonic() - started)
    if args.merge and (args.out / "results.json").exists():
        earlier = json.loads((args.out / "results.json").read_text())
        kept = [r for r in earlier["rows"] if r["section"].split("-")[0] not in measured]
        rows = kept + rows
        info = merged_machine(earlier["machine"], info, ",".join(measured))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    report.write(info, rows, args.out)
    print(f"wrote {args.out / 'results.json'}, {args.out / 'RESULTS.md'}, {args.out / 'throughput.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
