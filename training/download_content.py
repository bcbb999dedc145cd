"""Download training photos (COCO) for `clipmorph train --content`, for users with internet.

    python training/download_content.py data/coco --dataset coco-val2017 [--limit 5000] [--long-side 512]

Fetches the official zip (resuming an interrupted download), extracts the JPEG files and,
with --long-side, shrinks them (training crops are small; this saves disk and decode time).
Any `http(s)://` or `file://` URL can be given with --url instead of a named dataset.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

DATASETS = {
    # COCO 2017 validation set: 5,000 photos, 778 MB. The 2014/2017 train sets are larger (13-19 GB).
    "coco-val2017": "http://images.cocodataset.org/zips/val2017.zip",
    "coco-train2014": "http://images.cocodataset.org/zips/train2014.zip",
}
CHUNK = 1 << 20


def download(url: str, target: Path) -> Path:
    """Download ``url`` to ``target``, continuing a partial ``.part`` file when the server allows it."""
    partial = target.with_name(target.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url)
    if done and url.startswith("http"):
        request.add_header("Range", f"bytes={done}-")
    with urllib.request.urlopen(request) as response:
        resumed = getattr(response, "status", 200) == 206
        with partial.open("ab" if resumed else "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    partial.replace(target)
    return target


def extract_photos(archive: Path, folder: Path, limit: int | None, long_side: int | None) -> int:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(archive) as bundle:
        for name in sorted(bundle.namelist()):
            if not name.lower().endswith((".jpg", ".jpeg", ".png")) or name.endswith("/"):
                continue
            target = folder / Path(name).name  # flat: no paths from the archive are trusted
            with bundle.open(name) as source:
                if long_side:
                    with Image.open(source) as image:
                        image = image.convert("RGB")
                        image.thumbnail((long_side, long_side))
                        image.save(target.with_suffix(".jpg"), quality=90)
                else:
                    with target.open("wb") as out:
                        shutil.copyfileobj(source, out)
            count += 1
            if limit and count >= limit:
                break
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the photos go")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="coco-val2017")
    parser.add_argument("--url", help="download this zip instead of a named dataset")
    parser.add_argument("--limit", type=int, help="keep at most this many photos")
    parser.add_argument("--long-side", type=int, help="shrink photos to this long side (px)")
    parser.add_argument("--keep-zip", action="store_true")
    args = parser.parse_args(argv)
    url = args.url or DATASETS[args.dataset]
    args.folder.mkdir(parents=True, exist_ok=True)
    archive = download(url, args.folder / Path(url.split("?")[0]).name)
    count = extract_photos(archive, args.folder, args.limit, args.long_side)
    if not args.keep_zip:
        archive.unlink()
    print(f"{count} photos in {args.folder}: clipmorph train ... --content {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
