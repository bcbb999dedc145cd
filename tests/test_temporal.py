"""Temporal-stability losses and the training data stream: fast, no VGG needed."""

import numpy as np
import pytest
import torch
from PIL import Image

from clipmorph.errors import BadInput
from clipmorph.training import data, temporal


def test_identity_motion_keeps_the_image_and_all_pixels():
    images = torch.rand(2, 3, 32, 40)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    warped, valid = temporal.warp(images, identity)
    assert torch.allclose(warped, images, atol=1e-5)
    assert valid.min() == 1.0


def test_random_motion_stays_within_its_range():
    motion = temporal.MotionRange(shift=0.05, rotation_degrees=3.0, zoom=0.02)
    theta = temporal.random_motion(256, motion, torch.Generator().manual_seed(0))
    assert theta.shape == (256, 2, 3)
    assert theta[:, :, 2].abs().max() <= 2 * 0.05 + 1e-6
    scale = 1 / torch.sqrt(theta[:, 0, 0] ** 2 + theta[:, 1, 0] ** 2)
    assert (scale - 1).abs().max() <= 0.02 + 1e-5
    assert theta[:, :, 2].std() > 0.01  # really random


def test_a_shift_moves_content_and_marks_the_uncovered_border_invalid():
    images = torch.zeros(1, 1, 16, 16)
    images[..., 8, 8] = 1.0
    shift = torch.tensor([[[1.0, 0, 2 * 2 / 16], [0, 1.0, 0]]])  # sample 2 px to the right
    warped, valid = temporal.warp(images, shift)
    assert warped[0, 0, 8, 6] > 0.99
    assert valid[0, 0, :, -1].sum() == 0 and valid[0, 0, :, :10].min() == 1


def test_warp_consistency_is_zero_for_a_motion_equivariant_network_and_not_for_others():
    still = temporal.MotionRange(brightness=0.0, noise=0.0)
    content = torch.rand(2, 3, 32, 32)

    def equivariant(x):
        return x.flip(1)  # per-pixel: commutes with any warp

    def position_dependent(x):
        ramp = torch.linspace(0, 1, x.shape[-1]).view(1, 1, 1, -1)
        return x * ramp

    generator = torch.Generator().manual_seed(1)
    zero = temporal.warp_consistency_loss(equivariant, content, equivariant(content), still, generator)
    assert zero < 1e-4
    generator = torch.Generator().manual_seed(1)
    big = temporal.warp_consistency_loss(position_dependent, content, position_dependent(content), still, generator)
    assert big > 10 * zero and big > 1e-4


def test_noise_stability_punishes_a_network_that_amplifies_noise():
    content = torch.full((2, 3, 16, 16), 0.5)
    calm = temporal.noise_stability_loss(lambda x: x * 0 + 0.5, content, content, 0.05)
    jumpy = temporal.noise_stability_loss(lambda x: (x - 0.5) * 10 + 0.5, content, content, 0.05)
    assert calm == 0 and jumpy > 0.1


def test_temporal_weights_scale_each_styles_own_images():
    """A busy style's temporal weight raises its images' share of the loss, not its neighbours'."""
    content = torch.full((2, 3, 16, 16), 0.5)

    def jumpy_second(x):  # the second image amplifies noise, the first is steady
        return torch.cat([x[:1] * 0 + 0.5, (x[1:] - 0.5) * 10 + 0.5])

    def loss(weights):
        generator = torch.Generator().manual_seed(3)
        return temporal.noise_stability_loss(jumpy_second, content, content, 0.05, generator, weights)

    plain = loss(None)
    assert torch.isclose(loss(torch.tensor([1.0, 1.0])), plain)
    assert torch.isclose(loss(torch.tensor([1.0, 3.0])), 3 * plain)
    assert loss(torch.tensor([3.0, 1.0])) == plain  # the steady image's weight changes nothing


def _photo(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(path)


def test_find_images_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    for path in (tmp_path / "z.jpg", tmp_path / "a" / "b" / "y.PNG", tmp_path / ".cache" / "x.jpg"):
        _photo(path, 0)
    (tmp_path / "notes.txt").write_text("not an image")
    assert data.find_images(tmp_path) == [tmp_path / "a" / "b" / "y.PNG", tmp_path / "z.jpg"]
    with pytest.raises(BadInput, match="no images"):
        data.find_images(_empty(tmp_path))
    with pytest.raises(BadInput, match="does not exist"):
        data.find_images(tmp_path / "missing")


def _empty(root):
    (root / "empty").mkdir()
    return root / "empty"


def test_random_crops_are_reproducible_varied_and_survive_a_corrupt_file(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"{i}.jpg", i)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    crops = data.RandomCrops(data.find_images(tmp_path), size=32, seed=7)
    first = [crops[i] for i in range(12)]
    again = [crops[i] for i in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(c.shape == (3, 32, 32) and c.min() >= 0 and c.max() <= 1 for c in first)
    assert len({c.sum().item() for c in first}) > 6
    other_seed = data.RandomCrops(data.find_images(tmp_path), size=32, seed=8)
    assert not torch.equal(first[0], other_seed[0])


def test_sample_stream_resumes_where_it_stopped():
    stream = iter(data.SampleStream(start=40))
    assert [next(stream) for _ in range(3)] == [40, 41, 42]
