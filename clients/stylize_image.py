"""Stylize an image through a running ClipMorph service.

python clients/stylize_image.py photo.jpg out.png --style starrynight [--strength 0.8] [--url http://127.0.0.1:3000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--style", required=True, help="style id, or 'a=0.7,b=0.3'")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--preserve-color", action="store_true")
    parser.add_argument("--max-side", type=int)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    args = parser.parse_args(argv)

    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(args.output.suffix.lower(), "png")
    fields = {"style": args.style, "strength": str(args.strength), "preserve_color": str(args.preserve_color).lower(),
              "output_format": fmt}  # fmt: skip
    if args.max_side:
        fields["max_side"] = str(args.max_side)
    with args.image.open("rb") as handle:
        response = httpx.post(
            f"{args.url}/stylize", files={"image": (args.image.name, handle)}, data=fields, timeout=600
        )
    if response.status_code != 200:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    args.output.write_bytes(response.content)
    print(f"wrote {args.output} ({len(response.content)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
