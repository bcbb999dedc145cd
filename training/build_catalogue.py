"""Build the shipped catalogue (models/) from training/catalogue.toml, in resumable stages.

    python training/build_catalogue.py teach                       # cache the teacher's renderings (CPU)
    python training/build_catalogue.py train --max-minutes 80      # repeat until it is good enough
    python training/build_catalogue.py refine --styles scream      # learn some styles again, backbone frozen
    python training/build_catalogue.py ablation --steps 200        # temporal terms on/off, small scale
    python training/build_catalogue.py finish --lite-minutes 10    # distil lite, evaluate, write models/
    python training/build_catalogue.py finish --lite-refine-minutes 30  # ... then refine the lite styles

`train` resumes from training/runs/catalogue-full/checkpoint.pt; with no checkpoint there,
`--init-from models` starts from the shipped weights instead of from scratch (a new optimiser;
the earlier run's record is kept in the metadata). `finish` takes the checkpoint as it is (its
step count is recorded in every style's metadata). `ablation` writes models/ablation.json, which
`finish` puts in REPORT.md. `refine` learns the named styles' vectors again on the frozen
backbone of models/ (or --full-from), with the weights catalogue.toml's [refine] gives them, and writes
training/runs/refined for `finish --full-from`. The photos and paintings are read from --data (default
$CLIPMORPH_DATA, else ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "training" / "runs"  # --runs overrides
CATALOGUE = REPO / "training" / "catalogue.toml"
TRAIN_FOLDERS = ["bsds500", "imagenet-sample", "urban100", "coco2014-224"]
LITE_BACKBONE = "catalogue-lite"  # the distilled student; its styles' ids end in LITE_SUFFIX
LITE_SUFFIX = "-lite"
HELD_OUT = "sun-hays80"  # never trained on: used for the distances
SHEET_PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"]  # shipped in scikit-image


def runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs) if args.runs else RUNS


def data_root(args: argparse.Namespace) -> Path:
    from clipmorph.environment import data_root as configured_root

    return configured_root(args.data, REPO.parent / "shared" / "data")


def catalogue_config(args: argparse.Namespace, steps: int | None = None):
    from clipmorph.training.config import TrainConfig, styles_from_toml
    from clipmorph.training.penalties import PENALTY_SETTINGS

    data = data_root(args)
    backbone, sources = styles_from_toml(CATALOGUE, data / "styles")
    tv_weight = getattr(args, "tv_weight", None)  # 0 is a choice: no smoothing
    teacher_weight = args.teacher_weight
    if teacher_weight is None:  # the recipe's, from catalogue.toml
        teacher_weight = float(backbone.get("teacher_weight", 0.0))
    if getattr(args, "refine_weights", False):  # the [refine] multipliers in the joint training too
        sources = [replace(s, style_weight=s.style_weight * refine_weights().get(s.id, 1.0)) for s in sources]
    return TrainConfig(
        styles=sources,
        content=[data / "content" / folder for folder in TRAIN_FOLDERS],
        checkpoint_dir=runs_dir(args) / backbone["name"],
        width=backbone["width"],
        backbone_name=backbone["name"],
        init_from=args.init_from,
        style_weight=float(backbone.get("style_weight", TrainConfig.style_weight)),
        steps=steps or args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        workers=args.workers,
        crops=args.crops,
        compile=args.compile,
        checkpoint_every=100,
        sample_every=250,
        max_minutes=args.max_minutes,
        wandb=not args.no_wandb,
        norm=args.norm or str(backbone.get("norm", "instance")),
        lr=args.lr,
        spot_weight=args.spot_weight,
        **{setting: getattr(args, setting, 0.0) for setting in PENALTY_SETTINGS},
        tv_weight=float(backbone.get("tv_weight", TrainConfig.tv_weight) if tv_weight is None else tv_weight),
        teacher_dir=teacher_dir(args) if teacher_weight else None,
        teacher_weight=teacher_weight,
        coarse_scales=tuple(getattr(args, "coarse_scales", None) or ()),
        any_direction=bool(getattr(args, "any_direction", False)),
    )


def teacher_dir(args: argparse.Namespace) -> Path:
    return Path(args.teacher_dir) if args.teacher_dir else runs_dir(args) / "teacher"


def training_photos(args: argparse.Namespace, count: int) -> list[Path]:
    """About ``count`` training photos spread evenly over the training sets."""
    from clipmorph.training.data import find_images
    from clipmorph.training.teacher import spread

    content = data_root(args) / "content"
    every = [path for name in TRAIN_FOLDERS if (content / name).is_dir() for path in find_images(content / name)]
    return spread(every, count)


def teacher_photos(args: argparse.Namespace) -> list[Path]:
    """The photos the teacher renders (``--teacher-photos`` of them)."""
    return training_photos(args, args.teacher_photos)


def colour_photos(args: argparse.Namespace) -> list[Path]:
    """Training photos the styles' colour treatments are calibrated on (held-out ones measure)."""
    from clipmorph.training.colour import CALIBRATION_PHOTOS

    return training_photos(args, CALIBRATION_PHOTOS)


def stage_teach(args: argparse.Namespace) -> None:
    """Cache the teacher's renderings of the catalogue's paintings on the teacher photos
    (resumable: what is cached is kept), and print how close a crop's rendering is to a crop
    of the whole photo's rendering."""
    import time

    import numpy as np

    from clipmorph.training.config import styles_from_toml
    from clipmorph.training.pictures import fit_long_side, load_rgb
    from clipmorph.training.teacher import arbitrary_renderer, crop_agreement, render_for

    _, sources = styles_from_toml(CATALOGUE, data_root(args) / "styles")
    if args.styles:  # only the paintings about to be trained (refine --styles)
        sources = [s for s in sources if s.id in args.styles.split(",")]
    photos = teacher_photos(args)
    root = teacher_dir(args)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 200 == 0 or done == total:
            print(f"  {done}/{total} renderings, {(time.monotonic() - started) / done:.3f} s each", flush=True)

    count = render_for(sources, photos, root, progress=progress)
    print(f"teacher: {count} new renderings of {len(photos)} photos x {len(sources)} paintings in {root}")
    checked = {s.id: s for s in sources if s.id in ("starrynight", "scream", "monet")}
    render = arbitrary_renderer({i: np.asarray(fit_long_side(load_rgb(s.image), 512)) for i, s in checked.items()})
    agreement = [
        crop_agreement(lambda rgb, s=style: render(rgb, s), np.asarray(fit_long_side(load_rgb(photo), 384)))
        for photo, style in zip(photos[:: max(1, len(photos) // 6)][:6], sorted(checked) * 2, strict=False)
    ]
    print(f"crop of the rendering vs rendering of the crop (half the photo, pooled): PSNR {np.round(agreement, 1)} dB")


def stage_train(args: argparse.Namespace) -> None:
    from clipmorph.styles import catalogue
    from clipmorph.training.trainer import train

    config = catalogue_config(args)
    result = train(config, resume=True)
    print(f"catalogue backbone: step {result.step}, {result.seconds / 60:.1f} min of training so far")
    if result.seconds:  # of the whole run (this chunk, or the resumed run it continues)
        rate = result.step * config.batch_size / result.seconds
        print(f"throughput: {rate:.1f} crops/s at {config.image_size} px, batch {config.batch_size}")
    if args.export:  # the full library with its record: small, and `finish --full-from` takes it
        catalogue.write_catalogue(result.library, args.export)
        print(f"exported to {args.export}")


def stage_refine(args: argparse.Namespace) -> None:
    """Learn some styles again on a frozen backbone (the full one, or with ``--width lite`` the
    distilled student's), from their own vectors and with the style weights catalogue.toml's
    [refine] table gives them: only their scale/shift vectors change, so no other style moves.
    Writes the whole catalogue with them replaced (`report --full-from` ships it as it is;
    `finish --full-from` takes its full part)."""
    from clipmorph.styles import catalogue
    from clipmorph.training import colour
    from clipmorph.training.distill import plain_ids, rename_styles
    from clipmorph.training.evaluate import style_images_for
    from clipmorph.training.trainer import train

    source = catalogue.read_catalogue(args.full_from or Path(args.models))
    lite = args.width == "lite"
    part = source.only_backbone(LITE_BACKBONE if lite else catalogue_config(args).backbone_name)
    if lite:  # the paintings, teacher renderings and catalogue.toml's weights go by the full ids
        part = plain_ids(part, LITE_SUFFIX)
    config = refine_config(args, part)
    result = train(config, resume=True, base=part)
    refined = lively(result.library, part, args)
    # Their colour treatment measured again for the new vectors, so the export looks as it would ship.
    refined = colour.calibrate(refined, style_images_for(refined, data_root(args) / "styles"), colour_photos(args))
    part.merge(refined)  # same ids: the refined styles replace the old ones
    source.merge(rename_styles(part, LITE_SUFFIX) if lite else part)
    out = args.export or runs_dir(args) / "refined"
    catalogue.write_catalogue(source, out)
    print(f"refined {', '.join(s.id for s in config.styles)} ({args.width}): step {result.step}, "
          f"{result.seconds / 60:.1f} min; wrote {out}")  # fmt: skip


def refine_config(args: argparse.Namespace, library, wanted: list[str] | None = None, max_minutes=None):
    """The catalogue's settings for the named styles, as add-a-style training on ``library``'s
    one backbone (the full one, or the distilled lite student)."""
    from clipmorph.training.presets import STYLE_LR

    base = catalogue_config(args)
    (backbone,) = library.backbones.values()
    weights = refine_weights(lite=backbone.name == LITE_BACKBONE)
    if wanted is None:
        wanted = args.styles.split(",") if args.styles else list(weights)  # by default, those the list names
    if not wanted:
        raise SystemExit("refine: name the styles, e.g. --styles picasso,scream")
    unknown = sorted(set(wanted) - set(library.styles))
    if unknown:
        raise SystemExit(f"refine: {', '.join(unknown)} not in the catalogue")
    styles = [replace(s, style_weight=float(weights.get(s.id, s.style_weight))) for s in base.styles]
    return replace(
        base,
        styles=[s for s in styles if s.id in wanted],
        add_to=backbone.name,
        backbone_name=backbone.name,
        checkpoint_dir=runs_dir(args) / f"refine-{backbone.version}",  # never resumed onto another backbone
        lr=getattr(args, "style_lr", None) or STYLE_LR,
        style_size=args.style_size,
        max_minutes=max_minutes if max_minutes is not None else base.max_minutes,
    )


def refine_lite(args: argparse.Namespace, lite):
    """The distilled student's styles learned again on its frozen backbone against the paintings
    themselves: copying the teacher's pixels averages away texture the narrower network cannot
    reproduce exactly, and its own style loss puts the marks back."""
    from clipmorph.training.trainer import train

    wanted = args.styles.split(",") if args.styles else sorted(lite.styles)
    config = refine_config(args, lite, wanted, max_minutes=args.lite_refine_minutes)
    result = train(config, resume=True, base=lite, show_bar=False)
    lite.merge(lively(result.library, lite, args))
    print(f"refined lite styles: {result.step} steps in {result.seconds / 60:.1f} min", flush=True)
    return lite


FLAT = 4.0  # spread (0-255) below which a style's picture is one flat colour


def lively(refined, before, args: argparse.Namespace):
    """The refined styles without those that collapsed: vectors that push the last layer's sigmoid
    into saturation paint one flat colour, where neither the style nor the temporal losses have a
    gradient left to pull them back. Such a style keeps the vectors it had (``before``)."""
    kept = type(refined)()
    for backbone in refined.backbones.values():
        kept.add_backbone(backbone)
    photos = check_photos(args)
    ids = sorted(refined.styles)
    now, earlier = spreads(refined, photos, ids), spreads(before, photos, ids)
    for style_id, style in refined.styles.items():
        if now[style_id] < FLAT <= earlier[style_id]:
            print(f"{style_id}: the refined vectors paint one flat colour ({now[style_id]:.1f}): kept the earlier ones")
            style = before.styles[style_id]
        kept.add_style(style)
    return kept


def check_photos(args: argparse.Namespace, count: int = 3) -> list:
    """A few small held-out photos (training photos where the held-out set is absent)."""
    import numpy as np

    from clipmorph.training.data import find_images
    from clipmorph.training.pictures import load_rgb

    content = data_root(args) / "content"
    folder = next((f for f in [content / HELD_OUT, *(content / t for t in TRAIN_FOLDERS)] if f.is_dir()), None)
    paths = find_images(folder)[:count] if folder else []
    return [np.asarray(load_rgb(p).resize((128, 96))) for p in paths]


def spreads(library, photos: list, style_ids: list[str]) -> dict[str, float]:
    """Each named style's smallest colour spread over the photos (0-255 per channel, averaged)."""
    from clipmorph.inference.engine import Engine
    from clipmorph.inference.options import StyleMix, StylizeOptions

    engine = Engine(library, device="cpu", dtype="float32")
    found = {}
    for style_id in style_ids:
        outputs = engine.stylize_frames(photos, StylizeOptions(StyleMix.single(style_id))) if photos else []
        found[style_id] = min((float(o.reshape(-1, 3).std(0).mean()) for o in outputs), default=FLAT)
    return found


def refine_weights(lite: bool = False) -> dict[str, float]:
    """catalogue.toml's [refine] style-weight multipliers; for the lite student, its
    [refine.lite_style_weight] entries replace them (a narrower network can need a gentler pull)."""
    import tomllib

    refine = tomllib.loads(CATALOGUE.read_text()).get("refine", {})
    table = refine.get("style_weight", {}) | (refine.get("lite_style_weight", {}) if lite else {})
    return {style_id: float(weight) for style_id, weight in table.items()}


def listed_mark_scales() -> dict[str, float]:
    """Each style's ``mark_scale`` as catalogue.toml names it: how it is shown, not how it is
    trained, so shipping stamps it on the full and lite styles alike, trained this time or not."""
    import tomllib

    from clipmorph.inference.options import mark_scale_of

    listed = tomllib.loads(CATALOGUE.read_text()).get("style", [])
    return {entry["id"]: mark_scale_of(entry, entry["id"]) for entry in listed if "mark_scale" in entry}


def checkpoint_step(config) -> int:
    import torch

    return int(torch.load(config.checkpoint_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["step"])


# Temporal terms compared: ours (noise stability + warp consistency), the seed project's (noise
# stability alone) and none.
ABLATION = {
    "temporal": {},
    "noise-only": {"warp_weight": 0.0},
    "no-temporal": {"noise_weight": 0.0, "warp_weight": 0.0},
}
ABLATION_HEADING = "## Temporal terms on and off"


def stage_ablation(args: argparse.Namespace) -> None:
    """Same seed, data and steps, lite width, three styles: only the temporal weights differ.
    Updates REPORT.md's ablation section when there is one (no need to rerun `finish`)."""
    from clipmorph.training.trainer import train

    base = catalogue_config(args)
    picked = [s for s in base.styles if s.id in ("starrynight", "kanagawa", "scream")]
    runs = {}
    for label, extra in ABLATION.items():
        config = replace(
            base,
            styles=picked,
            width="lite",
            backbone_name=f"ablation-{label}",
            checkpoint_dir=runs_dir(args) / f"ablation-{label}",
            init_from=None,
            steps=args.steps,
            max_minutes=None,
            **extra,
        )
        result = train(config, resume=True)
        runs[label] = result.library
    scores = {}
    for label, library in runs.items():
        rows, run = evaluate(args, library)
        scores[label] = {"styles": [asdict(r) for r in rows], "run": run}
    out = Path(args.models) / "ablation.json"  # beside REPORT.md, committed: the runs folder is not
    out.write_text(json.dumps({"steps": args.steps, "scores": scores}, indent=2) + "\n")
    print(f"wrote {out}")
    report = Path(args.models) / "REPORT.md"
    text = report.read_text() if report.is_file() else ""
    if ABLATION_HEADING in text:
        kept = text.split(ABLATION_HEADING)[0]
        report.write_text(kept + "\n".join([ABLATION_HEADING, "", *ablation_lines(json.loads(out.read_text()))]) + "\n")
        print(f"updated {report}")


def evaluate(args: argparse.Namespace, library):
    from clipmorph.inference.engine import Engine
    from clipmorph.model.vgg import VGGFeatures
    from clipmorph.training.data import find_images
    from clipmorph.training.evaluate import EvalSettings, evaluate_library, style_images_for

    data = data_root(args)
    photos = find_images(data / "content" / HELD_OUT)[:: max(1, 80 // args.eval_photos)][: args.eval_photos]
    engine = Engine(library)
    paintings = style_images_for(library, data / "styles")
    settings = EvalSettings(video_frames=args.eval_frames)
    video = data / "videos" / "ski.mov"
    return evaluate_library(library, engine, VGGFeatures.load(), photos, paintings, video, settings)


def sheet_photos() -> list[Path]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [folder / name for name in SHEET_PHOTOS]


def thumbnails(engine, styles: list[str], side: int = 160) -> dict[str, bytes]:
    """Gallery pictures: a shipped sample photo (scikit-image's cat) in each style."""
    import numpy as np
    from PIL import Image

    from clipmorph.inference import media
    from clipmorph.inference.options import StyleMix, StylizeOptions

    with Image.open(sheet_photos()[2]) as photo:
        photo = photo.convert("RGB")
        photo.thumbnail((side * 2, side * 2))
    pictures = {}
    for style_id in styles:
        [out] = engine.stylize_frames([np.asarray(photo)], StylizeOptions(StyleMix.single(style_id)))
        pictures[style_id] = media.jpeg_tile(Image.fromarray(out), side)
    return pictures


def stage_finish(args: argparse.Namespace) -> None:
    from clipmorph.styles import catalogue
    from clipmorph.training.distill import distill, rename_styles
    from clipmorph.training.trainer import train

    if args.full_from:  # exported by `train --export` (on another machine, say), or a shipped catalogue
        full = catalogue.read_catalogue(args.full_from).only_backbone(catalogue_config(args).backbone_name)
    else:
        config = catalogue_config(args)
        config = replace(config, steps=checkpoint_step(config), max_minutes=None, wandb=False)
        full = train(config, resume=True, show_bar=False).library
    data = data_root(args)
    earlier_lite = None
    if args.lite_from:  # go on from an earlier student (the shipped lite) instead of from scratch
        earlier_lite = catalogue.read_catalogue(args.lite_from).only_backbone(LITE_BACKBONE)
    lite = distill(
        full,
        [data / "content" / f for f in TRAIN_FOLDERS],
        name=LITE_BACKBONE,
        steps=100_000,
        max_minutes=args.lite_minutes,
        image_size=args.image_size,
        start=earlier_lite,
    )
    print(f"distilled lite: {lite.steps} steps in {lite.seconds / 60:.1f} min, loss {lite.loss:.4f}")
    student = refine_lite(args, lite.library) if args.lite_refine_minutes else lite.library
    ship(args, {"full": full, "lite": rename_styles(student, LITE_SUFFIX)}, Path(args.models))


def stage_report(args: argparse.Namespace) -> None:
    """Measure a finished catalogue again (new measures, other photos) and rewrite it with its
    REPORT, contact sheet and thumbnails, without training."""
    from clipmorph.styles import catalogue

    source = catalogue.read_catalogue(Path(args.full_from or args.models))
    libraries = {"full": source.only_backbone("catalogue-full"), "lite": source.only_backbone(LITE_BACKBONE)}
    ship(args, libraries, Path(args.models))


def ship(args: argparse.Namespace, libraries: dict, models: Path) -> None:
    """Calibrate the styles' colour treatments (clipmorph.training.colour), evaluate the full and
    lite libraries, then write them into ``models`` as the catalogue, with the scores in each
    style's metadata, the REPORT, contact sheet and thumbnails."""
    from clipmorph.inference.engine import Engine
    from clipmorph.styles import catalogue
    from clipmorph.styles.library import Style, StyleLibrary
    from clipmorph.training import colour
    from clipmorph.training.evaluate import contact_sheet, scores_metadata, style_images_for

    shipped = StyleLibrary()
    report_rows = {}
    mark_scales = listed_mark_scales()
    photos = colour_photos(args)
    for width in list(libraries):
        library = libraries[width]
        libraries[width] = colour.calibrate(library, style_images_for(library, data_root(args) / "styles"), photos)
    for width, library in libraries.items():
        scores, run = evaluate(args, library)
        report_rows[width] = (scores, run)
        pictures = thumbnails(Engine(library), sorted(library.styles))
        for backbone in library.backbones.values():
            shipped.add_backbone(backbone)
        for score in scores:
            style = library.styles[score.style]
            meta = {k: v for k, v in style.metadata.items() if k != "mark_scale"}
            meta |= {"evaluation": scores_metadata(score, run), "width": width}
            full_id = style.metadata.get("full_id", style.id)
            if full_id in mark_scales:
                meta["mark_scale"] = mark_scales[full_id]
            shipped.add_style(Style(style.id, style.backbone, style.params, meta, pictures[style.id]))
    models.mkdir(parents=True, exist_ok=True)
    for stale in list((models / "styles").glob("*.safetensors")) + list((models / "backbones").glob("*.safetensors")):
        stale.unlink()
    catalogue.write_catalogue(shipped, models)
    full = libraries["full"]
    engine = Engine(full)
    contact_sheet(engine, sorted(full.styles), sheet_photos(), cell=200).save(models / "contact-sheet.jpg", quality=85)
    write_report(models / "REPORT.md", report_rows, libraries, models / "ablation.json")
    print(f"wrote {models}")
    redraw_gallery(models, data_root(args))
    name_in_bentofiles(models)


def redraw_gallery(models: Path, data: Path) -> None:
    """A catalogue that has a gallery beside the peer gets it drawn again from the networks just
    written (and listed in the new REPORT), so it never shows the styles as they were. The verdict
    (gallery/verdict.md) is kept: whoever changed a style looks again and updates it."""
    gallery = models / "gallery"
    if not any(gallery.glob("*.jpg")):
        return
    command = [sys.executable, str(REPO / "training" / "gallery.py"), "--models", str(models), "--out", str(gallery)]
    if subprocess.run([*command, "--data", str(data)], check=False).returncode:
        print(f"the gallery in {gallery} could not be drawn again: REPORT.md lists none", flush=True)


def name_in_bentofiles(models: Path) -> None:
    """A catalogue written into the repository's own models/ is what the bento packs, so the
    bentofiles' model lists follow it at once (a stale list fails `bentoml build` and a test)."""
    if models.resolve() == (REPO / "models").resolve():
        subprocess.run([sys.executable, str(REPO / "deploy" / "bento_models.py")], check=True)


def lite_continuation(library) -> str:
    (backbone,) = library.backbones.values()
    earlier = backbone.metadata.get("training", {}).get("continued_from_steps")
    return f", going on from the earlier lite student ({earlier} steps of distillation before)" if earlier else ""


def write_report(path: Path, rows: dict, libraries: dict, ablation: Path) -> None:
    from clipmorph.training.evaluate import markdown_table
    from clipmorph.training.record import total_steps
    from clipmorph.training.stripes import VISIBLE as STRIPES_VISIBLE

    (backbone,) = libraries["full"].backbones.values()
    trained = backbone.metadata["training"]
    (lite_backbone,) = libraries["lite"].backbones.values()
    student = lite_backbone.metadata["training"]
    run = rows["full"][1]
    lines = [
        "# ClipMorph style catalogue: training and evaluation report",
        "",
        "Written by `python training/build_catalogue.py finish` (or `report`, which measures a finished "
        "catalogue again); every number below was measured by it.",
        "",
        f"- Backbone `{backbone.name}` (`full` width), {total_steps(trained)} steps in all:",
        *training_history(trained),
        *refinement_lines(libraries["full"]),
        f"- `lite` backbone: distilled from it, {student['steps']} steps in {student['seconds'] / 60:.1f} min"
        + lite_continuation(libraries["lite"])
        + " (ids end in `-lite`).",
        *refinement_lines(libraries["lite"], "`lite` "),
        f"- Distances on {run['photos']} held-out photos ({HELD_OUT}, never trained on) at "
        f"{run['settings']['photo_side']} px; warping error on the first {run['video_frames']} frames of "
        f"`{run['video']}` at {run['settings']['video_side']} px, whose own warping error is "
        f"{run['input_warping_error']:.4f} (ratio 1.0 = no more flicker than the source).",
        "",
        "Style distance: Gram distance to the painting (in brackets: relative to the unstylized photo's). "
        "Droplets: compact bright blobs the network painted where the photo has none, counted over the "
        "held-out photos (`clipmorph/training/droplets.py`). Blobs: spots and short streaks of colour standing out "
        "from the picture's own texture where the photo is calm, counted over the held-out photos; in brackets the "
        "painting's own lone marks on as many pixels, found as if the whole photo were calm: a painter's dabs are "
        "its style, not a fault (`clipmorph/training/blobs.py`). Stripes: the "
        "highest banding score over the held-out photos (fine detail lined up one way, or both ways as a woven "
        "grid, where the photo is calm and does not explain it; clean pictures score up to about 0.1) and, in "
        "brackets, how many photos score "
        f"above {STRIPES_VISIBLE:g}, where stripes show at 1:1 (`clipmorph/training/stripes.py`). "
        "Loops: small closed dark lines around a light centre (a ring drawn around a gondola, a window "
        "drawn as an 'o') that the photos do not have there, per 100,000 pixels of the held-out photos; in "
        "brackets the painting's own at the same size, since some paintings draw loops themselves; the photos "
        "score 0 to 1 (`clipmorph/training/loops.py`). "
        "Colour: after its network each style puts back this share of the photo's colour (chroma), so the "
        "subject keeps its colours, and multiplies the chroma by a gain measured so that its pictures of "
        "eight training photos are as colourful as its painting; the brush work (luminance) is untouched "
        '(`clipmorph/training/colour.py`, docs/training.md "Colour"). Every figure above is of the '
        "treated pictures.",
        "",
        "![contact sheet](contact-sheet.jpg)",
        "",
        "## full",
        "",
        markdown_table(rows["full"][0], libraries["full"]),
        "## lite",
        "",
        markdown_table(rows["lite"][0], libraries["lite"]),
    ]
    if ablation.is_file():
        lines += [ABLATION_HEADING, "", *ablation_lines(json.loads(ablation.read_text()))]
    path.write_text("\n".join(lines) + "\n")


def training_history(trained: dict) -> list[str]:
    """One line per training run, oldest first: a run that started from exported weights
    records the run before it, and loss weights may differ between them."""
    earlier = trained.get("started_from", {}).get("training")
    line = (
        f"  - {trained['steps']} steps of batch {trained['batch_size']} at {trained['image_size']} px, "
        f"{trained['seconds'] / 3600:.2f} h on {trained['device']}, {trained['precision']} autocast, "
        f"{trained['content_images']} training photos; style weight {trained['style_weight']}, content "
        f"{trained['content_weight']}, TV {trained['tv_weight']}, noise {trained['noise_weight']}, "
        f"warp {trained['warp_weight']}, learning rate {trained['lr']:g}"
        + (f", {trained['norm']}-only normalisation" if trained.get("norm", "instance") != "instance" else "")
        + (f", teacher anchor {trained['teacher_weight']:g}" if trained.get("teacher_weight") else "")
        + (", starting from the weights above (new optimiser)." if earlier else ".")
    )
    return [*(training_history(earlier) if earlier else []), line]


def own_weight(style, run: dict) -> float:
    """The style's own loss multiplier in that run. Records written before runs kept it have
    none: a refinement then used catalogue.toml's [refine] weights, other runs 1."""
    if "style_loss_weight" in run:
        return float(run["style_loss_weight"])
    return refine_weights().get(style.id.removesuffix(LITE_SUFFIX), 1.0) if run.get("mode") == "refine" else 1.0


def refine_runs(trained: dict) -> list[dict]:
    """The `refine` runs in a style's record, the one it continued from included."""
    earlier = trained.get("started_from", {}).get("training")
    own = [trained] if trained.get("mode") == "refine" else []
    return own + (refine_runs(earlier) if earlier else [])


def refinement_lines(library, backbone: str = "") -> list[str]:
    """One line per `refine` run: which styles it learned again on the frozen backbone, and how."""
    runs: dict[str, list] = {}
    for style in sorted(library.styles.values(), key=lambda s: s.id):
        for run in refine_runs(style.metadata.get("training", {})):
            runs.setdefault(run["finished_at"], []).append((style, run))
    lines = []
    for pairs in sorted(runs.values(), key=lambda p: p[0][1]["finished_at"]):
        styles, t = [s for s, _ in pairs], pairs[0][1]
        weights = ", ".join(f"{s.id} {r['style_weight'] * own_weight(s, r):g}" for s, r in pairs)
        lines.append(
            f"- Then {', '.join(s.id for s in styles)} learned again on the frozen {backbone}backbone (their own "
            f"scale/shift vectors only, no other style moved): {t['steps']} steps of batch {t['batch_size']} at "
            f"{t['image_size']} px, paintings at {painting_sizes(pairs)} px, {t['seconds'] / 60:.0f} min on "
            f"{t['device']}; style weight {weights}{other_weights(pairs)}."
        )
    return lines


def each_style(values: dict[str, str]) -> str:
    """A setting of a refinement's styles: the one value when they share it, else each style's
    (those that have one), e.g. "512" or "basquiat 512, okeeffe 256"."""
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{style_id} {value}" for style_id, value in values.items() if value)


def painting_sizes(pairs: list) -> str:
    """The paintings' long side in a refinement: one number, or each style's where they differ."""
    return each_style({s.id: str(r["style_size"]) for s, r in pairs})


def other_weights(pairs: list) -> str:
    """The temporal and teacher weights of a refinement, each style's own multiplier applied
    (runs recorded before the multipliers were kept say nothing of them), and its TV weight where
    it is not the default, the style term's coarse scales and the calm-area and stray-line penalties where
    they are used."""
    from clipmorph.training.config import TrainConfig
    from clipmorph.training.penalties import STYLE_PENALTIES

    run = pairs[0][1]
    temporal = [(s.id, r["temporal_loss_weight"]) for s, r in pairs if "temporal_loss_weight" in r]
    text = ""
    if temporal:
        noise, warp = run["noise_weight"], run["warp_weight"]
        text += "; noise and warp weights " + ", ".join(f"{i} {noise * m:g} and {warp * m:g}" for i, m in temporal)
    if run.get("teacher_weight"):
        teacher = ", ".join(f"{s.id} {run['teacher_weight'] * r.get('teacher_loss_weight', 1.0):g}" for s, r in pairs)
        text += f"; teacher anchor {teacher}"
    if run.get("tv_weight", TrainConfig.tv_weight) != TrainConfig.tv_weight:
        text += f"; TV {run['tv_weight']:.3g}"
    for penalty in STYLE_PENALTIES:
        weights = {s.id: f"{r[penalty.setting]:.3g}" if r.get(penalty.setting) else "" for s, r in pairs}
        if any(weights.values()):
            text += f"; {penalty.title} {each_style(weights)}"
    scales = {s.id: ", ".join(f"{f:g}x" for f in r.get("coarse_scales") or ()) for s, r in pairs}
    if any(scales.values()):
        text += f"; style term also at {each_style(scales)} size"
    turned = [s.id for s, r in pairs if r.get("any_direction")]
    if turned:
        text += "; strokes in any direction" + ("" if len(turned) == len(pairs) else f" ({', '.join(turned)})")
    return text


def ablation_lines(data: dict) -> list[str]:
    """Warping-error and style-distance ratios per style and variant (those the file holds)."""
    names = {"temporal": "noise + warp (ours)", "noise-only": "noise only (seed)", "no-temporal": "none"}
    variants = [v for v in ABLATION if v in data["scores"]]
    by_variant = {v: {r["style"]: r for r in data["scores"][v]["styles"]} for v in variants}
    lines = [
        f"`lite` networks for starrynight, kanagawa and scream, {data['steps']} steps each, same seed and data; "
        "only the temporal weights differ. Warping-error ratio: lower is steadier; style-distance ratio: "
        "lower is closer to the painting.",
        "",
        "| style | "
        + " | ".join(f"warping ratio, {names[v]}" for v in variants)
        + " | "
        + " | ".join(f"style ratio, {names[v]}" for v in variants)
        + " |",
        "|---|" + "---|" * 2 * len(variants),
    ]
    for style in sorted(by_variant["temporal"]):
        cells = [f"{by_variant[v][style]['warping_error_ratio']:.3f}" for v in variants]
        cells += [f"{by_variant[v][style]['style_distance_ratio']:.3f}" for v in variants]
        lines.append(f"| {style} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def scale_factors(text: str) -> list[float]:
    """--coarse-scales: comma-separated factors, e.g. 0.5 or 0.5,0.25."""
    return [float(factor) for factor in text.split(",") if factor]


def main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["teach", "train", "refine", "ablation", "finish", "report"])
    parser.add_argument("--data", type=Path, help="default $CLIPMORPH_DATA or ../shared/data")
    parser.add_argument("--steps", type=int, default=40_000, help="train: planned steps; ablation: steps per run")
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--max-minutes", type=float, help="train: stop (with a checkpoint) after this long")
    parser.add_argument("--lite-minutes", type=float, default=10.0, help="finish: distillation time budget")
    parser.add_argument(
        "--lite-refine-minutes",
        type=float,
        default=0.0,
        help="finish: then learn the lite styles again on the frozen student, against the paintings",
    )
    parser.add_argument("--lite-from", type=Path, help="finish: an earlier catalogue whose lite student to go on from")
    parser.add_argument("--eval-photos", type=int, default=16)
    parser.add_argument("--eval-frames", type=int, default=48)
    parser.add_argument("--no-wandb", action="store_true")
    parser.add_argument("--init-from", type=Path, help="train: start a new run from an exported catalogue's weights")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--refine-weights", action="store_true", help="train: apply catalogue.toml's [refine] style weights too"
    )
    parser.add_argument(
        "--norm",
        choices=["instance", "mean", "mean-after-encoder"],
        help="train: normalisation (default: catalogue.toml's [backbone] norm)",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="train: Adam learning rate")
    parser.add_argument("--spot-weight", type=float, default=0.0, help="train, refine: droplet penalty weight")
    parser.add_argument(
        "--calm-weight", type=float, default=0.0,
        help="train, refine: weight of the fine-lattice penalty in the photo's calm areas, for the styles "
        "without their own calm_weight in catalogue.toml (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--line-weight", type=float, default=0.0,
        help="train, refine: weight of the penalty on dark lines the photo does not draw, for the styles "
        "without their own line_weight in catalogue.toml (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--tv-weight", type=float, help="train, refine: total-variation weight (default: catalogue.toml's, else 1000)"
    )
    parser.add_argument(
        "--coarse-scales",
        type=scale_factors,
        help="train, refine: also take the style term with output and painting shrunk by these factors, "
        "e.g. 0.5 (the painting's marks at twice their size; default: one scale)",
    )
    parser.add_argument(
        "--any-direction",
        action="store_true",
        help="train, refine: Gram targets from each painting turned every 45 degrees, so its strokes may run "
        "any way (default: catalogue.toml's any_direction per style, else the painting's own directions)",
    )
    parser.add_argument("--workers", type=int, default=1, help="photo loading processes")
    parser.add_argument("--compile", action="store_true", help="train: torch.compile the network and the loss network")
    parser.add_argument(
        "--crops",
        choices=["auto", "device", "loader"],
        default="auto",
        help="train: cut crops on the device (photos decoded once) or in loader processes (auto: device on a GPU)",
    )
    parser.add_argument("--teacher-dir", type=Path, help="teach, train: renderings (default <runs>/teacher)")
    parser.add_argument("--teacher-photos", type=int, default=240, help="teach: about this many photos, evenly spread")
    parser.add_argument(
        "--teacher-weight", type=float, help="distance to the teacher (default: catalogue.toml's; 0: none)"
    )
    parser.add_argument(
        "--export",
        type=Path,
        help="train: also write the full library as a catalogue folder; "
        "refine: where to write it (default training/runs/refined)",
    )
    parser.add_argument("--full-from", type=Path, help="finish, refine: the full library from an exported folder")
    parser.add_argument(
        "--width",
        choices=("full", "lite"),
        default="full",
        help="refine: the backbone whose styles learn again (lite: the student's; --styles by their full ids)",
    )
    parser.add_argument(
        "--styles",
        help="refine: style ids to learn again (default: catalogue.toml's [refine]); teach: only these; "
        "finish: the lite styles --lite-refine-minutes learns again (default: all)",
    )
    parser.add_argument(
        "--style-lr",
        type=float,
        help="refine: Adam learning rate of the style vectors (default: the add-a-style rate, 0.02; "
        "a refinement of good vectors moves less far with a smaller one)",
    )
    parser.add_argument("--style-size", type=int, default=512, help="refine, finish: long side of the paintings")
    parser.add_argument("--runs", type=Path, help="checkpoints (default training/runs)")
    parser.add_argument("--models", type=Path, default=REPO / "models", help="catalogue folder to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = main_parser().parse_args(argv)
    stages = {
        "teach": stage_teach,
        "train": stage_train,
        "refine": stage_refine,
        "ablation": stage_ablation,
        "finish": stage_finish,
        "report": stage_report,
    }
    stages[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
