"""A style's colour treatment: the YCbCr arithmetic, its calibration, and the engine applying it."""

import numpy as np
import pytest
import torch
from PIL import Image

from clipmorph.inference.engine import Engine
from clipmorph.inference.options import StyleMix, StylizeOptions
from clipmorph.model.color import ColourTreatment, colourfulness, rgb_to_ycc, treat_colour
from clipmorph.styles.library import Style, StyleLibrary
from clipmorph.training import colour

from conftest import random_library
from media_factory import gradient_frame


def tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255


def with_treatment(library: StyleLibrary, style_id: str, treatment: ColourTreatment) -> StyleLibrary:
    changed = StyleLibrary()
    for backbone in library.backbones.values():
        changed.add_backbone(backbone)
    for style in library.styles.values():
        metadata = dict(style.metadata) | ({"colour": treatment.to_metadata()} if style.id == style_id else {})
        changed.add_style(Style(style.id, style.backbone, style.params, metadata))
    return changed


def muted(frame: np.ndarray, factor: float) -> np.ndarray:
    """The frame with its chroma scaled (less colourful below 1), luma kept."""
    scaled = treat_colour(tensor(frame), tensor(frame), torch.zeros(1), torch.tensor([factor]))
    return scaled[0].permute(1, 2, 0).mul(255).round().byte().numpy()


def test_identity_treatment_returns_the_stylized_picture():
    stylized, photo = tensor(gradient_frame(40, 30)), tensor(gradient_frame(40, 30, t=2.0))
    same = treat_colour(stylized, photo, torch.zeros(1), torch.ones(1))
    assert (same - stylized).abs().max() < 1e-5


def calm(frame: np.ndarray) -> np.ndarray:
    """The frame's colours away from 0 and 255, where a chroma change is not clipped."""
    return (frame.astype(np.float32) * 0.5 + 64).astype(np.uint8)


def test_photo_share_moves_the_chroma_toward_the_photo_and_keeps_the_luma():
    stylized, photo = tensor(calm(gradient_frame(40, 30))), tensor(calm(gradient_frame(40, 30, t=2.0)))
    half = rgb_to_ycc(treat_colour(stylized, photo, torch.tensor([0.5]), torch.ones(1)))
    a, b = rgb_to_ycc(stylized), rgb_to_ycc(photo)
    assert (half[:, 0] - a[:, 0]).abs().max() < 1e-4
    assert (half[:, 1:] - (a[:, 1:] + b[:, 1:]) / 2).abs().max() < 1e-4


def test_colourfulness_grows_with_the_gain_and_is_zero_for_grey():
    picture = tensor(calm(gradient_frame(48, 48)))
    more = treat_colour(picture, picture, torch.zeros(1), torch.tensor([1.3]))
    assert float(colourfulness(more)[0] / colourfulness(picture)[0]) == pytest.approx(1.3, rel=0.02)
    assert float(colourfulness(torch.full((1, 3, 8, 8), 0.4))[0]) == pytest.approx(0.0, abs=1e-4)


def test_treatment_validates_and_round_trips_through_metadata():
    with pytest.raises(ValueError):
        ColourTreatment(photo_colour=1.5)
    with pytest.raises(ValueError):
        ColourTreatment(colourfulness=0.0)
    treatment = ColourTreatment(0.3, 1.25)
    assert ColourTreatment.from_metadata({"colour": treatment.to_metadata()}) == treatment
    assert ColourTreatment.from_metadata({}).is_identity and ColourTreatment().version_text() == ""


def test_a_treatment_changes_the_style_version_and_none_keeps_it():
    library = random_library()
    plain = library.styles["rand-0"]
    treated = with_treatment(library, "rand-0", ColourTreatment(0.3, 1.2)).styles["rand-0"]
    untouched = with_treatment(library, "rand-0", ColourTreatment()).styles["rand-0"]
    assert treated.version != plain.version and untouched.version == plain.version


def test_the_engine_applies_a_styles_treatment_and_preserve_color_overrides_it():
    library = random_library()
    treatment = ColourTreatment(0.3, 1.4)
    plain, treated = (
        Engine(library, dtype="float32"),
        Engine(with_treatment(library, "rand-0", treatment), dtype="float32"),
    )
    frame = gradient_frame(48, 40)
    options = StylizeOptions(StyleMix.single("rand-0"))
    [raw], [painted] = plain.stylize_frames([frame], options), treated.stylize_frames([frame], options)
    expected = treat_colour(tensor(raw), tensor(frame), torch.tensor([0.3]), torch.tensor([1.4]))
    assert np.abs(painted.astype(int) - (expected[0].permute(1, 2, 0) * 255).round().numpy()).max() <= 2
    [other_raw], [other] = (
        e.stylize_frames([frame], StylizeOptions(StyleMix.single("rand-1"))) for e in (plain, treated)
    )
    assert np.array_equal(other_raw, other)  # the other style has no treatment
    kept = StylizeOptions(StyleMix.single("rand-0"), preserve_color=True)
    [a], [b] = plain.stylize_frames([frame], kept), treated.stylize_frames([frame], kept)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_a_blend_weighs_its_styles_treatments():
    library = with_treatment(random_library(), "rand-0", ColourTreatment(0.0, 1.5))
    engine = Engine(library, dtype="float32")
    weights = torch.tensor([[0.5, 0.5]])
    options = [StylizeOptions(StyleMix.parse("rand-0=1,rand-1=1"))]
    assert engine._colour(next(iter(engine.networks)), weights, options).tolist() == [[0.0, 1.25]]


def test_a_grey_painting_keeps_none_of_the_photos_colour():
    grey = np.repeat(gradient_frame(64, 64)[..., :1], 3, axis=2)
    assert colour.photo_colour_for(colour.painting_colourfulness(grey)) == 0.0
    coloured = colour.painting_colourfulness(gradient_frame(64, 64))
    assert colour.photo_colour_for(coloured) == pytest.approx(colour.PHOTO_COLOUR)


def test_the_gain_brings_muted_pictures_part_of_the_way_to_the_paintings_colourfulness():
    painting = calm(gradient_frame(64, 64))
    pale = muted(painting, 0.64)  # 1 / 1.5625 of the painting's colourfulness
    expected = 1.5625**colour.MATCH
    vivid = colour.painting_colourfulness(painting)
    assert colour.gain_to_match([pale], [painting], vivid, keep=0.0) == pytest.approx(expected, rel=0.03)
    assert colour.gain_to_match([painting], [painting], vivid, keep=0.0) == pytest.approx(1.0, abs=0.01)
    grey = colour.painting_colourfulness(muted(painting, 0.0))
    assert colour.gain_to_match([painting], [painting], grey, keep=0.0) == colour.MIN_COLOURFULNESS


def test_calibrate_sets_what_the_engine_then_paints(tmp_path):
    library = random_library()
    painting = tmp_path / "painting.png"
    Image.fromarray(gradient_frame(96, 80, t=1.0)).save(painting)
    photos = []
    for index in range(2):
        photos.append(tmp_path / f"photo-{index}.png")
        Image.fromarray(gradient_frame(80, 64, t=index)).save(photos[-1])
    calibrated = colour.calibrate(library, {"rand-0": painting}, photos)
    treatment = ColourTreatment.from_metadata(calibrated.styles["rand-0"].metadata)
    assert treatment.photo_colour == pytest.approx(colour.PHOTO_COLOUR) and treatment.colourfulness != 1.0
    assert "colour" not in calibrated.styles["rand-1"].metadata  # no painting: as it was
    again = colour.calibrate(calibrated, {"rand-0": painting}, photos)  # measured on the network's own colours
    assert ColourTreatment.from_metadata(again.styles["rand-0"].metadata) == treatment


def test_openvino_treats_colour_inside_its_graph_as_pytorch_does_after_the_network():
    """The fast uint8 path keeps styles with a treatment (and preserve_color) on it, with the pixels
    the PyTorch path paints; a blend or a resize goes through PyTorch, treated there."""
    library = with_treatment(random_library(), "rand-0", ColourTreatment(0.3, 1.4))
    frames = [gradient_frame(64, 40), gradient_frame(64, 40, t=1.0), gradient_frame(64, 40, t=2.0)]
    mixes = [
        StylizeOptions(StyleMix.single("rand-0")),
        StylizeOptions(StyleMix.parse("rand-0=0.5,rand-1=0.5")),
        StylizeOptions(StyleMix.single("rand-1"), preserve_color=True),
    ]
    reference = Engine(library, dtype="float32").stylize_frames(frames, mixes)
    engine = Engine(library, dtype="float32", backend="openvino")
    for got, want in zip(engine.stylize_frames(frames, mixes), reference, strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
    half = [StylizeOptions(StyleMix.single("rand-0"), strength=0.5)]
    [through_torch], [want] = (
        engine.stylize_frames(frames[:1], half),
        Engine(library, dtype="float32").stylize_frames(frames[:1], half),
    )
    assert np.abs(through_torch.astype(int) - want.astype(int)).max() <= 2


def test_a_treatment_applies_to_one_uint8_picture_as_to_a_batch():
    painted, photo = calm(gradient_frame(40, 30)), calm(gradient_frame(40, 30, t=2.0))
    treatment = ColourTreatment(0.3, 1.2)
    expected = treat_colour(tensor(painted), tensor(photo), torch.tensor([0.3]), torch.tensor([1.2]))
    got = treatment.apply(painted, photo)
    assert got.dtype == np.uint8 and got.shape == painted.shape
    assert np.abs(got.astype(int) - (expected[0].permute(1, 2, 0) * 255).round().numpy()).max() <= 1
    assert np.array_equal(ColourTreatment().apply(painted, photo), painted)


def test_the_style_jobs_live_preview_shows_the_colours_the_style_will_have(tmp_path):
    from clipmorph.serving.jobs.style_worker import PreviewColours

    painting = tmp_path / "painting.png"
    Image.fromarray(gradient_frame(96, 80, t=1.0)).save(painting)
    side = 32
    rows = [
        np.concatenate([gradient_frame(side, side, t=i), muted(gradient_frame(side, side, t=i), 0.5)], axis=1)
        for i in range(2)
    ]
    grid = np.concatenate(rows, axis=0)  # as the trainer draws it: per photo, the photo then the new style
    preview = PreviewColours(painting, side)
    shown = preview(grid)
    assert np.array_equal(shown[:, :side], grid[:, :side])  # the photos as they are
    photos, painted = zip(*preview.pairs(grid), strict=True)
    gain = colour.gain_to_match(list(painted), list(photos), preview.painting_colour, preview.keep)
    treatment = ColourTreatment(colour.PHOTO_COLOUR, gain)
    assert gain > 1.0  # the muted pictures are brought toward the painting
    for row, (photo, picture) in enumerate(zip(photos, painted, strict=True)):
        assert np.array_equal(shown[row * side : (row + 1) * side, side:], treatment.apply(picture, photo))
