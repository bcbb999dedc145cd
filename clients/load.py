"""A bounded load generator for a running ClipMorph service.

    python clients/load.py --clients 4 --seconds 20 [--url http://127.0.0.1:3000] [--sizes 256,512] [--json out.json]

N threads each send /stylize requests back to back for T seconds, cycling through every
style the server lists and the given image sizes, then the script prints throughput and
latency percentiles (and writes them as JSON when asked).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def test_image(side: int, seed: int) -> bytes:
    """A smooth random image (PNG) of side x (3/4 side): stands in for a photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((side, side * 3 // 4), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(url: str, clients: int, seconds: float, sizes: list[int], styles: list[str] | None = None) -> dict:
    with httpx.Client(base_url=url, timeout=300) as client:
        styles = styles or [s["id"] for s in client.post("/styles", json={}).json()]
    if not styles:
        raise SystemExit("the server has no styles")
    images = {side: test_image(side, side) for side in sizes}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        plan = itertools.cycle([(style, side) for style in styles for side in sizes])
        for _ in range(index):
            next(plan)
        with httpx.Client(base_url=url, timeout=300) as client:
            while time.monotonic() < deadline:
                style, side = next(plan)
                started = time.perf_counter()
                try:
                    response = client.post("/stylize", files={"image": ("x.png", images[side])}, data={"style": style})
                    outcome = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    if outcome is None:
                        latencies.append(elapsed)
                    else:
                        errors[outcome] = errors.get(outcome, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "sizes": sizes,
        "styles": styles,
        "requests_ok": len(latencies),
        "errors": errors,
        "throughput_rps": round(len(latencies) / wall, 3),
        "latency_p50_s": round(percentile(latencies, 50), 4),
        "latency_p95_s": round(percentile(latencies, 95), 4),
        "latency_p99_s": round(percentile(latencies, 99), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--sizes", default="256,512", help="long sides of the test images, comma separated")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds > 0")
    result = run(args.url, args.clients, args.seconds, [int(s) for s in args.sizes.split(",")])
    print(
        f"{result['clients']} clients, {result['seconds']} s: {result['requests_ok']} ok, errors {result['errors']}, "
        f"{result['throughput_rps']} req/s, p50 {result['latency_p50_s']} s, p95 {result['latency_p95_s']} s, "
        f"p99 {result['latency_p99_s']} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["requests_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
