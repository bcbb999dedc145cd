"""The GPU data path (crops cut on the training device), checked on the CPU: the same crops
as the loader path sample for sample, teacher targets included, and a training run on it that
resumes exactly."""

import numpy as np
import pytest
import torch
from PIL import Image

from media_factory import gradient_frame


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


@pytest.fixture
def photos_and_renderings(tmp_path):
    """Photos of different sizes and shapes, and a teacher's renderings of them in two styles
    (each rendering a recoloured photo, so a crop's place shows in its target)."""
    from clipmorph.training.pictures import load_rgb
    from clipmorph.training.teacher import render_missing

    photos = []
    for i, (width, height) in enumerate([(160, 120), (90, 200), (333, 101)]):
        path = tmp_path / "photos" / "set" / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gradient_frame(width, height, t=i)).save(path)
        photos.append(path)
    root = tmp_path / "teacher"

    def render(rgb, style_id):
        return rgb[..., ::-1].copy() if style_id == "a" else (255 - rgb)

    render_missing(root, {"a": None, "b": None}, photos, render, load_rgb)
    return photos, root


def test_device_crops_are_the_loader_crops_of_the_same_samples(photos_and_renderings):
    from clipmorph.training.data import RandomCrops
    from clipmorph.training.device_crops import DeviceCrops

    photos, root = photos_and_renderings
    options = dict(seed=5, teacher_root=root, style_ids=["a", "b"])
    loader = RandomCrops(photos, 64, **options)
    device = DeviceCrops(photos, 64, torch.device("cpu"), **options)
    samples = list(range(40, 52))
    content, targets = device.batch(samples)
    assert content.shape == (12, 3, 64, 64) and targets.shape == (12, 3, 16, 16)
    assert content.dtype == torch.float32 and content.min() >= 0 and content.max() <= 1
    for row, sample in enumerate(samples):
        photo, target = loader[sample]
        assert psnr(content[row], photo) > 30, sample  # same place, size and mirroring; other filters
        assert psnr(targets[row], target) > 30, sample
    other_seed = DeviceCrops(photos, 64, torch.device("cpu"), seed=6)
    assert psnr(other_seed.batch(samples), content) < 25  # the draws, not the photos, decide


def test_unreadable_photos_are_left_out_and_none_readable_is_a_clear_error(tmp_path, photos_and_renderings):
    from clipmorph.errors import BadInput
    from clipmorph.training.device_crops import DeviceCrops

    photos, _ = photos_and_renderings
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    crops = DeviceCrops([*photos, broken], 32, torch.device("cpu"))
    assert len(crops) == 3 and crops.nbytes == sum(np.prod(Image.open(p).size) * 3 for p in photos)
    with pytest.raises(BadInput, match="cannot be read"):
        DeviceCrops([broken], 32, torch.device("cpu"))


def test_a_run_on_device_crops_resumes_exactly_and_starts_like_the_loader_path(
    pictures, vgg_env, tmp_path, monkeypatch
):
    from test_train import tiny_config

    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    straight = train(tiny_config(pictures, tmp_path / "a", steps=4, crops="device"), show_bar=False)
    train(tiny_config(pictures, tmp_path / "b", steps=2, crops="device"), show_bar=False)
    resumed = train(tiny_config(pictures, tmp_path / "b", steps=4, crops="device"), resume=True, show_bar=False)
    (a,) = straight.library.backbones.values()
    (b,) = resumed.library.backbones.values()
    for key, value in a.state.items():
        assert torch.allclose(value, b.state[key], atol=1e-5), key
    # The first step on either path sees the same crops (through other resampling filters), so
    # from the same start its losses agree closely.
    first = {
        path: train(tiny_config(pictures, tmp_path / path, steps=1, crops=path), show_bar=False).losses
        for path in ("device", "loader")
    }
    for term in ("content", "style", "total"):
        assert first["device"][term] == pytest.approx(first["loader"][term], rel=0.02), term


def test_an_unknown_crop_path_is_refused(pictures, tmp_path):
    from test_train import tiny_config

    from clipmorph.errors import BadInput

    with pytest.raises(BadInput, match="crop path"):
        tiny_config(pictures, tmp_path, steps=1, crops="gpu")
