"""Turn a painting into a new served style on a running ClipMorph service.

    python clients/create_style.py painting.jpg --name "My painting" [--preset fast|best|tiny]
        [--url http://127.0.0.1:3000] [--token ...] [--preview preview.jpg]

Uploads to /create_style, follows /jobs/{id} (step, losses, ETA) and keeps the newest preview
(photo | the photo in the new style) in --preview. Ctrl-C cancels the job on the server.
The admin token comes from --token or $CLIPMORPH_ADMIN_TOKEN (needed only when the server sets one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx
from tqdm import tqdm

ENDED = ("succeeded", "failed", "cancelled")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("painting", type=Path)
    parser.add_argument("--name", required=True, help="style name; its id is derived from it")
    parser.add_argument("--preset", default="fast", choices=["tiny", "fast", "best"])
    parser.add_argument("--author", default="")
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", default=os.environ.get("CLIPMORPH_ADMIN_TOKEN", ""))
    parser.add_argument("--preview", type=Path, help="keep the newest training preview here")
    args = parser.parse_args(argv)

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    client = httpx.Client(base_url=args.url, timeout=120, headers=headers)
    with args.painting.open("rb") as handle:
        response = client.post(
            "/create_style",
            files={"painting": (args.painting.name, handle)},
            data={"name": args.name, "preset": args.preset, "author": args.author},
        )
    if response.status_code != 200:
        print(f"refused ({response.status_code}): {response.text}", file=sys.stderr)
        return 1
    job = response.json()
    print(f"job {job['job_id']}: training style {job['style']!r} ({job['preset']}, {job['steps']} steps)")
    bar = tqdm(total=job["steps"], unit="step", desc=job["style"])
    try:
        record = follow(client, job["job_id"], bar, args.preview)
    except KeyboardInterrupt:
        client.post(f"/jobs/{job['job_id']}/cancel", headers={"X-Owner-Key": job["owner_key"]})
        print("\ncancelled", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if record["state"] != "succeeded":
        print(f"job {record['state']}: {record.get('error', '')}", file=sys.stderr)
        return 1
    result = record["result"]
    print(f"style {result['style']!r} is served now ({result['steps']} steps, {result['seconds']} s of training)")
    return 0


def follow(client: httpx.Client, job_id: str, bar: tqdm, preview: Path | None) -> dict:
    last_preview = None
    while True:
        record = client.get(f"/jobs/{job_id}").json()
        bar.n = record.get("step", 0)
        bar.set_postfix({k: f"{v:.3g}" for k, v in record.get("losses", {}).items() if k in ("style", "content")})
        bar.refresh()
        url = record.get("preview_url")
        if preview and url and url != last_preview:
            image = client.get(url)
            if image.status_code == 200:
                preview.write_bytes(image.content)
                last_preview = url
        if record.get("state") in ENDED:
            return record
        time.sleep(0.7)


if __name__ == "__main__":
    sys.exit(main())
