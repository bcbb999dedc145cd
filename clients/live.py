"""Stream frames to a running ClipMorph service's live route, as the web page's Live tab does.

    python clients/live.py --style scream-lite [--viewers 2] [--seconds 10] [--size 640x360]
                           [--photo PATH] [--url http://127.0.0.1:3000] [--json out.json]

Each viewer keeps two frames in flight (the page's window) and measures, after its first
painted frame (the warm-up, reported apart): painted frames per second, round-trip latency
percentiles, frames the server dropped (a newer one was waiting) or sent back unpainted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

WINDOW = 2
ANSWER = struct.Struct(">IB")  # frame number, 0 painted / 1 unpainted


def camera_frames(size: tuple[int, int], photo: Path | None = None, count: int = 8) -> list[bytes]:
    """JPEG frames a camera might send: a photo (or a smooth pattern) panning slowly."""
    width, height = size
    if photo is not None:
        source = Image.open(photo).convert("RGB").resize((width + count * 4, height))
    else:
        rng = np.random.default_rng(0)
        source = Image.fromarray(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8)).resize(
            (width + count * 4, height), Image.BICUBIC
        )
    frames = []
    for shift in range(count):
        buffer = io.BytesIO()
        source.crop((shift * 4, 0, shift * 4 + width, height)).save(buffer, format="JPEG", quality=80)
        frames.append(buffer.getvalue())
    return frames


async def viewer(
    url: str, style: str, frames: list[bytes], seconds: float, settle: float = 0.0, warmup_limit: float = 300
) -> dict:
    """One viewer's stream; its measures start ``settle`` seconds after its first painted frame
    (the server may still be choosing the painting size then)."""
    ws_url = url.replace("http://", "ws://").replace("https://", "wss://") + "/live/ws"
    sent: dict[int, float] = {}
    latencies: list[float] = []
    painted = dropped = unpainted = 0
    started = time.monotonic()
    first_painted: float | None = None
    measuring_since: float | None = None
    painting_at = None
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, params={"style": style}) as ws:
        ready = await ws.receive_json(timeout=60)
        if not ready.get("ready"):
            raise RuntimeError(f"the server refused the stream: {ready}")
        number = 0

        async def send_one() -> None:
            nonlocal number
            sent[number] = time.monotonic()
            await ws.send_bytes(struct.pack(">I", number) + frames[number % len(frames)])
            number += 1

        for _ in range(WINDOW):
            await send_one()
        while True:
            now = time.monotonic()
            if measuring_since is not None and now - measuring_since >= seconds:
                break
            if measuring_since is None and now - started > warmup_limit:
                raise RuntimeError(f"no painted frame within {warmup_limit} s")
            message = await ws.receive(timeout=120)
            now = time.monotonic()
            if message.type == aiohttp.WSMsgType.BINARY:
                answered, kind = ANSWER.unpack_from(message.data)
                at = sent.pop(answered, None)
                if kind == 0:
                    first_painted = first_painted or now
                    if measuring_since is None and now - first_painted >= settle:
                        measuring_since, warmup = now, now - started
                    elif measuring_since is not None:
                        painted += 1
                        latencies.append(now - at if at is not None else float("nan"))
                elif measuring_since is not None:
                    unpainted += 1
            elif message.type == aiohttp.WSMsgType.TEXT:
                notice = json.loads(message.data)
                if "error" in notice:
                    raise RuntimeError(f"the server ended the stream: {notice['error']}")
                sent.pop(notice.get("dropped"), None)
                painting_at = notice.get("painting_at", painting_at)
                if measuring_since is not None and "dropped" in notice:
                    dropped += 1
            else:
                raise RuntimeError(f"the stream closed: {message.type} {message.extra}")
            while len(sent) < WINDOW:  # a frame was answered (painted, unpainted or dropped): send the next
                await send_one()
    elapsed = time.monotonic() - measuring_since
    return {"fps": painted / elapsed, "latencies": latencies, "dropped": dropped, "unpainted": unpainted,
            "warmup_s": warmup, "painting_at": "x".join(map(str, painting_at or []))}  # fmt: skip


def wait_for_no_sessions(url: str, seconds: float = 60) -> None:
    """Until the server's /metrics counts no live session (viewers that just left are closing)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = [line for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
                if line.startswith("clipmorph_live_sessions ")]  # fmt: skip
        if not rows or float(rows[0].split()[1]) == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"live sessions still open after {seconds} s")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(url: str, viewers: int, seconds: float, style: str, frames: list[bytes], settle: float = 0.0) -> dict:
    """``viewers`` streams at once; frames/s per viewer (mean and slowest) and latency over all."""

    async def together() -> list[dict]:
        return await asyncio.gather(*(viewer(url, style, frames, seconds, settle) for _ in range(viewers)))

    results = asyncio.run(together())
    latencies = [value for result in results for value in result["latencies"]]
    return {
        "viewers": viewers,
        "style": style,
        "fps_per_viewer": round(float(np.mean([r["fps"] for r in results])), 2),
        "slowest_viewer_fps": round(min(r["fps"] for r in results), 2),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "dropped": sum(r["dropped"] for r in results),
        "unpainted": sum(r["unpainted"] for r in results),
        "warmup_s": round(max(r["warmup_s"] for r in results), 2),
        "painting_at": results[0]["painting_at"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--style", required=True)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--size", default="640x360", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--photo", type=Path, help="a photo to pan across (default: a smooth pattern)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the first painted frame before measuring"
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.lower().split("x"))
    frames = camera_frames((width, height), args.photo)
    result = run(args.url, args.viewers, args.seconds, args.style, frames, args.settle)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
