"""A style's colour treatment, calibrated (clipmorph.model.color): how much of the photo's colour
it puts back follows from its painting; the chroma gain is measured on photos it was trained on,
so that its pictures come halfway (in ratio) to the painting's colourfulness.

Found by looking and measuring (docs/training.md, "Colour"): every catalogue style painted about
20 % less colourfully than its painting (Hasler-Suesstrunk colourfulness on eight held-out photos:
Starry Night 36.9 against the painting's 47.0, Scream 38.6 against 50.3), and Starry Night's and
Monet's pictures lost the subject's own colours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipmorph.model.color import MAX_COLOURFULNESS, ColourTreatment, colourfulness, treat_colour
from clipmorph.styles.library import Style, StyleLibrary

MIN_COLOURFULNESS = 0.5
# How far the gain goes toward the painting's colourfulness, as a power of the ratio: all the way
# (1.0) took Starry Night's style-distance ratio on the REPORT's held-out photos from 0.094 to
# 0.236 and made O'Keeffe neon; halfway (0.5) 0.145, vivid but the painting's palette (the
# peer: 0.309). docs/training.md, "Colour".
MATCH = 0.5
# The share of the photo's colour a style puts back (``calibrate(share=...)`` to choose another):
# 0.3 gave Starry Night's baboon its red nose and a table its warm wood under blue strokes and
# kept the painting's palette in charge (0.6 looked like the photo with texture: one look, five
# photos). A painting with no colour of its own (a pencil sketch) puts none back.
PHOTO_COLOUR = 0.3
GREY_PAINTING = 5.0  # colourfulness at or below which a painting counts as without colour
COLOURED_PAINTING = 15.0  # "slightly colourful" (Hasler-Suesstrunk) and above: the full share
PHOTO_SIDE = 256  # calibration photos' long side
CALIBRATION_PHOTOS = 8  # training photos the gain is measured on
PAINTING_SIDE = 512  # as the paintings' Gram targets in training


def _tensor(pictures: Sequence[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.array(p)).permute(2, 0, 1)[None].float().div(255.0) for p in pictures]


def fitted(path: Path, side: int) -> np.ndarray:
    """The picture at ``path``, RGB, its long side at most ``side``."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.LANCZOS)
        return np.asarray(image)


def without_colour(library: StyleLibrary) -> StyleLibrary:
    """The same styles with no colour treatment: what their networks paint."""
    plain = StyleLibrary()
    for backbone in library.backbones.values():
        plain.add_backbone(backbone)
    for style in library.styles.values():
        metadata = {k: v for k, v in style.metadata.items() if k != "colour"}
        plain.add_style(Style(style.id, style.backbone, style.params, metadata, style.thumbnail))
    return plain


def painting_colourfulness(painting: np.ndarray) -> float:
    """The painting's colourfulness, measured once and handed to ``photo_colour_for`` and
    ``gain_to_match`` (a live preview asks for its gain at every drawing)."""
    return float(colourfulness(_tensor([painting])[0]))


def photo_colour_for(painting_colour: float, share: float = PHOTO_COLOUR) -> float:
    """``share``, scaled down to 0 for paintings with little or no colour of their own
    (``painting_colour``, their colourfulness: putting the photo's colour into a pencil sketch
    tints it)."""
    return share * float(np.clip((painting_colour - GREY_PAINTING) / (COLOURED_PAINTING - GREY_PAINTING), 0.0, 1.0))


def gain_to_match(
    painted: Sequence[np.ndarray], photos: Sequence[np.ndarray], painting_colour: float, keep: float
) -> float:
    """The chroma gain that brings ``painted`` (the network's pictures of ``photos``), with
    ``keep`` of the photos' chroma put back, ``MATCH`` of the way to the painting's colourfulness
    ``painting_colour`` on average (as a power of the ratio; colourfulness is linear in a chroma
    gain before clipping)."""
    blended = [
        treat_colour(y, x, torch.tensor([keep]), torch.tensor([1.0]))
        for y, x in zip(_tensor(painted), _tensor(photos), strict=True)
    ]
    ours = float(torch.cat([colourfulness(b) for b in blended]).mean())
    if ours <= 0:
        return 1.0
    return float(np.clip((painting_colour / ours) ** MATCH, MIN_COLOURFULNESS, MAX_COLOURFULNESS))


def calibrate(
    library: StyleLibrary,
    paintings: Mapping[str, Path],
    photos: Sequence[Path],
    share: float = PHOTO_COLOUR,
) -> StyleLibrary:
    """``library`` with each style's ``colour`` metadata set: the photo's colour share
    (``photo_colour_for`` its painting's colourfulness) and the measured gain; styles whose
    painting is not at hand keep the treatment they had."""
    from clipmorph.inference.engine import Engine
    from clipmorph.inference.options import StyleMix, StylizeOptions

    plain = without_colour(library)
    engine = Engine(plain)
    arrays = [fitted(path, PHOTO_SIDE) for path in photos]
    calibrated = StyleLibrary()
    for backbone in plain.backbones.values():
        calibrated.add_backbone(backbone)
    for style in plain.styles.values():
        metadata = dict(library.styles[style.id].metadata)  # no painting: its treatment as it was
        if style.id in paintings and arrays:
            painting_colour = painting_colourfulness(fitted(paintings[style.id], PAINTING_SIDE))
            keep = photo_colour_for(painting_colour, share)
            options = StylizeOptions(StyleMix.single(style.id), max_side=None)
            painted = engine.stylize_frames(arrays, options)
            gain = gain_to_match(painted, arrays, painting_colour, keep)
            metadata["colour"] = ColourTreatment(keep, gain).to_metadata()
        calibrated.add_style(Style(style.id, style.backbone, style.params, metadata, style.thumbnail))
    return calibrated
