"""How good is a style? Distance to its painting, distance to the photo, and video flicker.

* style distance: Gram distance (VGG relu1_2..relu4_3) between the stylized photo and the
  painting, also given as a ratio to the same distance for the unstylized photo (< 1: closer
  to the painting than the photo was);
* content distance: relu2_2 feature distance between stylized and original photo;
* warping error (Lai et al. 2018): dense optical flow between consecutive *input* frames
  (OpenCV DIS), occlusions removed by a forward-backward check, stylized frame t warped onto
  t+1, mean absolute difference over the rest. The headline is its ratio to the same error of
  the input video: 1.0 means the stylized video flickers no more than the source.

Frames are stylized through the ``Engine``, exactly as users get them.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from clipmorph.fsutil import sha256_file
from clipmorph.inference.engine import Engine
from clipmorph.inference.options import StyleMix, StylizeOptions
from clipmorph.model.color import ColourTreatment
from clipmorph.model.vgg import VGGFeatures
from clipmorph.styles.library import StyleLibrary
from clipmorph.training import objective
from clipmorph.training.blobs import find_blobs, painting_blobs
from clipmorph.training.droplets import find_droplets
from clipmorph.training.loops import density, find_loops, painted_loops
from clipmorph.training.pictures import fit_long_side, load_rgb
from clipmorph.training.record import total_steps
from clipmorph.training.stripes import VISIBLE as STRIPES_VISIBLE
from clipmorph.training.stripes import stripe_score


@dataclass
class StyleScores:
    style: str
    style_distance: float | None  # Gram distance stylized photo <-> painting (None: painting unavailable)
    style_distance_ratio: float | None  # the same over the unstylized photo's distance
    content_distance: float
    warping_error: float | None
    warping_error_ratio: float | None  # over the input video's own warping error
    droplets: int = 0  # droplet artifacts found on the photos (clipmorph.training.droplets)
    blobs: int = 0  # spots and streaks of colour where the photo is calm (clipmorph.training.blobs)
    stripes: float = 0.0  # the highest stripe score over the photos (clipmorph.training.stripes)
    striped: int = 0  # photos whose stripes show at 1:1 (score above stripes.VISIBLE)
    loops: float = 0.0  # small dark loops the photos do not have, per 100k px (clipmorph.training.loops)
    painting_loops: float | None = None  # the painting's own, per 100k px at the photos' size (None: no painting)
    # The painting's own blobs on as many pixels as the photos together, seen at their size (None: no painting)
    painting_blobs: float | None = None


@dataclass
class EvalSettings:
    photo_side: int = 384  # long side photos are stylized and measured at
    style_side: int = 512  # long side of the painting for its Gram targets (as in training)
    video_frames: int = 48
    video_side: int = 480


# --- optical flow and warping error ---


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def flow_and_mask(previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow (current -> previous, for warping ``previous`` onto ``current``) and the
    mask of pixels that pass the forward-backward consistency check (not occluded)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a, b = _gray(previous), _gray(current)
    backward = dis.calc(b, a, None)  # for each pixel of current: where it was in previous
    forward = dis.calc(a, b, None)
    height, width = backward.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    round_trip = backward + forward_there
    magnitude = (backward**2).sum(-1) + (forward_there**2).sum(-1)
    consistent = (round_trip**2).sum(-1) < 0.01 * magnitude + 0.5
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return np.stack([map_x, map_y], -1), consistent & inside


def clip_flows(frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flow and visibility mask for every pair of consecutive frames."""
    return [flow_and_mask(a, b) for a, b in itertools.pairwise(frames)]


def warp_with(frame: np.ndarray, maps: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(frame, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warping_error(frames: Sequence[np.ndarray], flows: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean absolute difference (0..1 scale) between frame t warped onto t+1 and frame t+1."""
    total, count = 0.0, 0
    for (maps, mask), previous, current in zip(flows, frames[:-1], frames[1:], strict=True):
        diff = np.abs(warp_with(previous, maps).astype(np.float32) - current.astype(np.float32)) / 255.0
        total += float(diff[mask].sum())
        count += int(mask.sum()) * diff.shape[-1]
    return total / max(count, 1)


def read_frames(video: Path, count: int, long_side: int) -> list[np.ndarray]:
    from clipmorph.inference.media import VideoReader  # PyAV: only when a clip is measured

    reader = VideoReader(video)
    frames = []
    try:
        for frame, _ in reader:
            image = Image.fromarray(frame)
            if max(image.size) > long_side:
                image = fit_long_side(image, long_side)
            frames.append(np.asarray(image))
            if len(frames) >= count:
                break
    finally:
        reader.close()
    return frames


# --- perceptual distances ---


class Distances:
    """The training objective's distances between single images' VGG features."""

    def __init__(self, vgg: VGGFeatures) -> None:
        self.vgg = vgg

    @torch.no_grad()
    def features(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255.0)
        return self.vgg(x, objective.ALL_LAYERS)

    @staticmethod
    def gram_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return float(objective.style_distance(a, objective.grams(b)).sum())

    @staticmethod
    def content_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return float(objective.content_distance(a, b))


def evaluate_library(
    library: StyleLibrary,
    engine: Engine,
    vgg: VGGFeatures,
    photos: Sequence[Path],
    style_images: dict[str, Path],
    video: Path | None,
    settings: EvalSettings | None = None,
    styles: Sequence[str] | None = None,
) -> tuple[list[StyleScores], dict]:
    """Scores per style plus run-wide figures (the input video's own warping error...)."""
    settings = settings or EvalSettings()
    distances = Distances(vgg)
    photo_arrays = [np.asarray(fit_long_side(load_rgb(p), settings.photo_side)) for p in photos]
    photo_feats = [distances.features(p) for p in photo_arrays]
    photo_pixels = sum(p.shape[0] * p.shape[1] for p in photo_arrays)  # the area the paintings' blobs are counted on
    frames = read_frames(video, settings.video_frames, settings.video_side) if video else []
    flows = clip_flows(frames)
    input_error = warping_error(frames, flows) if len(frames) > 1 else None
    results = []
    for style_id in styles or sorted(library.styles):
        options = StylizeOptions(StyleMix.single(style_id), max_side=None)
        outputs = engine.stylize_frames(photo_arrays, options)  # the engine groups them by size
        droplets = sum(len(find_droplets(o, p)) for o, p in zip(outputs, photo_arrays, strict=True))
        blobs = sum(len(find_blobs(o, p)) for o, p in zip(outputs, photo_arrays, strict=True))
        banding = [stripe_score(o, p) for o, p in zip(outputs, photo_arrays, strict=True)]
        loops = density(
            sum(len(painted_loops(o, p)) for o, p in zip(outputs, photo_arrays, strict=True)),
            sum(o.shape[0] * o.shape[1] for o in outputs),
        )
        out_feats = [distances.features(o) for o in outputs]
        content = float(
            np.mean([distances.content_distance(o, p) for o, p in zip(out_feats, photo_feats, strict=True)])
        )
        style_distance = ratio = painting_loops = painting_blob_count = None
        painting = style_images.get(style_id)
        if painting is not None:
            painting_rgb = load_rgb(painting)
            seen = np.asarray(fit_long_side(painting_rgb, settings.photo_side))  # at the photos' size, for its loops
            painting_loops = density(len(find_loops(seen)), seen.shape[0] * seen.shape[1])
            painting_blob_count = len(painting_blobs(seen)) * photo_pixels / (seen.shape[0] * seen.shape[1])
            target = distances.features(np.asarray(fit_long_side(painting_rgb, settings.style_side)))
            style_distance = float(np.mean([distances.gram_distance(o, target) for o in out_feats]))
            baseline = float(np.mean([distances.gram_distance(p, target) for p in photo_feats]))
            ratio = style_distance / baseline if baseline else None
        error = error_ratio = None
        if input_error is not None:
            stylized = engine.stylize_frames(frames, options)
            error = warping_error(stylized, flows)
            error_ratio = error / input_error if input_error else None
        striped = sum(score > STRIPES_VISIBLE for score in banding)
        scores = (droplets, blobs, max(banding, default=0.0), striped, loops, painting_loops, painting_blob_count)
        results.append(StyleScores(style_id, style_distance, ratio, content, error, error_ratio, *scores))
    run = {
        "photos": len(photo_arrays),
        "video": str(video.name) if video else None,
        "video_frames": len(frames),
        "input_warping_error": input_error,
        "settings": asdict(settings),
    }
    return results, run


def style_images_for(library: StyleLibrary, styles_dir: Path | None) -> dict[str, Path]:
    """Find each style's painting in ``styles_dir`` by the file name and sha256 in its metadata."""
    found: dict[str, Path] = {}
    if not styles_dir:
        return found
    for style in library.styles.values():
        name = style.metadata.get("style_image")
        path = Path(styles_dir) / str(name) if name else None
        if path and path.is_file():
            expected = style.metadata.get("style_image_sha256")
            if expected and sha256_file(path) != expected:
                continue  # a different picture under the same name: its distance would mislead
            found[style.id] = path
    return found


# --- reports ---


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def markdown_table(scores: Sequence[StyleScores], library: StyleLibrary) -> str:
    lines = [
        "| style | steps | device | style dist. (ratio to photo) | content dist. | warping error (ratio to input) "
        "| droplets | blobs (painting's) | stripes (photos striped) | loops /100k px (painting's) "
        "| colour (photo's share, gain) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        metadata = library.styles[s.style].metadata if s.style in library.styles else {}
        training = metadata.get("training", {})
        colour = ColourTreatment.from_metadata(metadata)
        steps = total_steps(training) if "steps" in training else "n/a"
        lines.append(
            f"| {s.style} | {steps} | {training.get('device', 'n/a')} "
            f"| {_fmt(s.style_distance)} ({_fmt(s.style_distance_ratio, 2)}) | {_fmt(s.content_distance)} "
            f"| {_fmt(s.warping_error)} ({_fmt(s.warping_error_ratio, 3)}) | {s.droplets} "
            f"| {s.blobs} ({_fmt(s.painting_blobs, 2)}) "
            f"| {s.stripes:.2f} ({s.striped}) | {s.loops:.1f} ({_fmt(s.painting_loops, 2)}) "
            f"| {colour.photo_colour:.2f}, {colour.colourfulness:.2f} |"
        )
    return "\n".join(lines) + "\n"


def contact_sheet(engine: Engine, styles: Sequence[str], photos: Sequence[Path], cell: int = 256) -> Image.Image:
    """One row per style (label on the left), one column per photo; first row: the photos."""
    label_width = 150
    arrays = [np.asarray(fit_long_side(load_rgb(p), cell * 2)) for p in photos]
    rows = [("photo", arrays)]
    for style_id in styles:
        options = StylizeOptions(StyleMix.single(style_id), max_side=None)
        rows.append((style_id, engine.stylize_frames(arrays, options)))
    sheet = Image.new("RGB", (label_width + cell * len(arrays), cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        draw.text((8, r * cell + cell // 2 - 6), label, fill="black")
        for c, image in enumerate(images):
            tile = Image.fromarray(image)
            tile.thumbnail((cell, cell))
            sheet.paste(tile, (label_width + c * cell + (cell - tile.width) // 2, r * cell + (cell - tile.height) // 2))
    return sheet


def write_report(scores: Sequence[StyleScores], run: dict, library: StyleLibrary, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "eval.json", "markdown": folder / "eval.md"}
    paths["json"].write_text(json.dumps({"run": run, "styles": [asdict(s) for s in scores]}, indent=2) + "\n")
    paths["markdown"].write_text(markdown_table(scores, library))
    return paths


def scores_metadata(score: StyleScores, run: dict) -> dict:
    """What goes into a style's store metadata under ``evaluation``."""
    values = {k: v for k, v in asdict(score).items() if k != "style" and v is not None}
    return {k: round(v, 5) for k, v in values.items()} | {"video": run.get("video"), "photos": run.get("photos")}
