"""Pack what a catalogue run needs onto a machine that has none of it (the lent GPU machine:
no internet, no ../shared, 64 MiB per call): resized photos, the paintings as they are (their
hashes go into the styles' metadata), the teacher's renderings of those photos where they are
cached (`build_catalogue.py teach`: then only photos it painted in every style are packed), and
the converted VGG19 weights in fp16, up to the deepest layer the objective uses (the loss
network runs under bf16 autocast there anyway).

    python training/pack_for_device.py --out .device-pack --photos 480

The pack mirrors the data folder's layout (content/<set>/, styles/), so
`CLIPMORPH_DATA=.device-pack/data CLIPMORPH_CACHE=.device-pack/vgg` and
`--teacher-dir .device-pack/teacher` are all a run needs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "training"))


def shrink(source: Path, target: Path, short_side: int, quality: int = 85) -> None:
    from PIL import Image

    from clipmorph.training.teacher import shrink_to_short_side

    with Image.open(source) as image:
        image = shrink_to_short_side(image.convert("RGB"), short_side, Image.Resampling.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=quality)


def pack_photos(data: Path, out: Path, count: int, short_side: int, teacher: Path | None, style_ids: list[str]) -> int:
    """``count`` photos spread evenly over the training sets, in the same folders;
    with ``teacher``, of the photos it painted in every style, their renderings beside them."""
    from build_catalogue import TRAIN_FOLDERS

    from clipmorph.training import teacher as anchor
    from clipmorph.training.data import find_images

    per_set = {name: find_images(data / "content" / name) for name in TRAIN_FOLDERS}
    if teacher is not None:
        per_set = {name: anchor.covered_photos(teacher, style_ids, paths) for name, paths in per_set.items()}
    every = [(name, path) for name, paths in per_set.items() for path in paths]
    packed = 0
    for name, path in anchor.spread(every, count):
        target = out / "data" / "content" / name / (path.stem + ".jpg")
        shrink(path, target, short_side)
        packed += 1
        for style_id in style_ids if teacher is not None else []:
            rendering = anchor.rendering_path(teacher, style_id, path)
            shrink(rendering, anchor.rendering_path(out / "teacher", style_id, target), TEACHER_SIDE)
    return packed


# A rendering's short side in the pack: the teacher is compared after 4x4 averaging, so a
# 256-px crop of at least half a photo needs about 64 px of its rendering.
TEACHER_SIDE = 64


def pack_vgg(out: Path) -> Path:
    from safetensors.torch import load_file, save_file

    from clipmorph.environment import cache_dir
    from clipmorph.model.vgg import WEIGHTS_FILE, deepest_needed
    from clipmorph.training.objective import ALL_LAYERS

    last = deepest_needed(ALL_LAYERS)
    state = load_file(str(cache_dir() / WEIGHTS_FILE))
    target = out / "vgg" / WEIGHTS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half() for k, v in state.items() if int(k.split(".")[0]) <= last}, str(target))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="default $CLIPMORPH_DATA or ../shared/data")
    parser.add_argument("--out", type=Path, default=REPO / ".device-pack")
    parser.add_argument("--photos", type=int, default=480, help="about this many, evenly spread")
    parser.add_argument("--photo-side", type=int, default=256, help="short side of the packed photos")
    parser.add_argument("--teacher-dir", type=Path, help="cached teacher renderings to pack with their photos")
    args = parser.parse_args(argv)
    from build_catalogue import CATALOGUE, data_root

    from clipmorph.training.config import styles_from_toml

    data = data_root(args)
    style_ids = [s.id for s in styles_from_toml(CATALOGUE, data / "styles")[1]] if args.teacher_dir else []
    photos = pack_photos(data, args.out, args.photos, args.photo_side, args.teacher_dir, style_ids)
    for painting in sorted((data / "styles").iterdir()):
        if painting.is_file():
            (args.out / "data" / "styles").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(painting, args.out / "data" / "styles" / painting.name)
    vgg = pack_vgg(args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    renderings = f", {photos * len(style_ids)} teacher renderings" if style_ids else ""
    print(f"packed {photos} photos{renderings}, the paintings and {vgg.name} into {args.out}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
