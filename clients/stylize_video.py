"""Stylize a video clip as a job on a running ClipMorph service, with a live progress bar.

    python clients/stylize_video.py clip.mov out.mp4 --style starrynight [--url http://127.0.0.1:3000]

Submits to /video_job/submit, follows /jobs/{id} (frames done, fps, ETA), downloads the
result. Ctrl-C cancels the job on the server.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("output", type=Path, nargs="?", help="default: <input>-<style>.mp4")
    parser.add_argument("--style", required=True)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--preserve-color", action="store_true")
    parser.add_argument("--max-side", type=int)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    args = parser.parse_args(argv)
    output = args.output or args.video.with_name(f"{args.video.stem}-{args.style.split('=')[0]}.mp4")
    fmt = "webm" if output.suffix.lower() == ".webm" else "mp4"

    client = httpx.Client(base_url=args.url, timeout=600)
    fields = {"style": args.style, "strength": str(args.strength), "preserve_color": str(args.preserve_color).lower(),
              "output_format": fmt}  # fmt: skip
    if args.max_side:
        fields["max_side"] = str(args.max_side)
    with args.video.open("rb") as handle:
        submitted = client.post("/video_job/submit", files={"video": (args.video.name, handle)}, data=fields)
    if submitted.status_code != 200:  # a bad clip or a full queue: the server says why
        print(f"refused ({submitted.status_code}): {submitted.text}", file=sys.stderr)
        return 1
    task_id = submitted.json()["job_id"]
    print(f"job {task_id} submitted (position {submitted.json().get('position')} in the queue)", file=sys.stderr)

    bar = tqdm(unit="frame", desc=args.video.name)
    try:
        record = follow(client, task_id, bar)
    except KeyboardInterrupt:
        client.post(f"/jobs/{task_id}/cancel")
        print("\ncancelled", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if record.get("state") != "succeeded":
        print(f"job {record.get('state')}: {record.get('error', '')}", file=sys.stderr)
        return 1
    with client.stream("GET", f"/jobs/{task_id}/result") as response, output.open("wb") as target:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            target.write(chunk)
    result = record["result"]
    print(f"wrote {output} ({result['frames']} frames, {result['width']}x{result['height']}, {result['fps']} frames/s)")
    return 0


def follow(client: httpx.Client, task_id: str, bar: tqdm) -> dict:
    """Poll the job's progress until it ends."""
    while True:
        response = client.get(f"/jobs/{task_id}")
        response.raise_for_status()
        record = response.json()
        if record.get("total"):
            bar.total = record["total"]
        bar.n = record.get("done", 0)
        bar.set_postfix(fps=record.get("fps"), eta=record.get("eta_seconds"))
        bar.refresh()
        if record.get("state") == "queued" and record.get("position"):
            bar.set_description(f"queued, position {record['position']}")
        if record.get("state") in ("succeeded", "failed", "cancelled"):
            return record
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
