"""The stray-line penalty: it costs a dark line or ring the photo does not draw there, not the
photo's own lines (even a pixel or two off), not faint marks nor dark areas wider than a line;
its gradient lightens the stray line."""

from __future__ import annotations

import torch

from clipmorph.training.stray_lines import stray_excess, stray_penalty

SIZE = 64


def grey(level: float = 0.7) -> torch.Tensor:
    return torch.full((1, 3, SIZE, SIZE), level)


def with_ring(image: torch.Tensor, centre: tuple[int, int], radius: float, darkness: float) -> torch.Tensor:
    """A 2-px dark ring drawn on a copy of ``image``."""
    axis = torch.arange(SIZE, dtype=torch.float32)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    distance = ((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2).sqrt()
    ring = ((distance - radius).abs() <= 1.0).float()
    return image - darkness * ring


def with_bar(image: torch.Tensor, column: int, width: int, darkness: float) -> torch.Tensor:
    out = image.clone()
    out[..., column : column + width] -= darkness
    return out


def test_the_photo_itself_costs_nothing():
    photo = with_ring(with_bar(grey(), 10, 2, 0.5), (40, 40), 8, 0.5)
    assert float(stray_penalty(photo, photo)) == 0.0


def test_a_ring_the_photo_does_not_have_costs():
    assert float(stray_penalty(with_ring(grey(), (32, 32), 8, 0.4), grey())) > 0.005


def test_the_photos_own_ring_a_pixel_off_is_free():
    photo = with_ring(grey(), (32, 32), 8, 0.4)
    shifted = with_ring(grey(), (33, 31), 8, 0.4)
    assert float(stray_penalty(shifted, photo)) == 0.0


def test_an_echo_beside_the_photos_line_costs():
    """A second line 6 px beside the photo's own (Starry Night's doubled outlines)."""
    photo = with_bar(grey(), 20, 2, 0.5)
    echoed = with_bar(photo, 27, 2, 0.4)
    assert float(stray_penalty(echoed, photo)) > 0.005


def test_faint_marks_and_broad_dark_areas_are_free():
    assert float(stray_penalty(with_ring(grey(), (32, 32), 8, 0.03), grey())) == 0.0
    broad = with_bar(grey(), 16, 24, 0.5)  # a dark band three times the line size
    assert float(stray_penalty(broad, grey())) == 0.0


def test_per_image_and_the_gradient_lightens_the_line():
    photo = grey().repeat(2, 1, 1, 1)
    output = torch.cat([with_ring(grey(), (32, 32), 8, 0.4), grey()]).requires_grad_(True)
    per_image = stray_excess(output, photo)
    values = per_image.detach()
    assert values.shape == (2,) and float(values[0]) > 0 and float(values[1]) == 0
    per_image.sum().backward()
    on_ring = with_ring(grey(), (32, 32), 8, 1.0)[0, 0] < 0  # the ring's pixels
    assert float(output.grad[0, :, on_ring].sum()) < 0  # brighter there lowers the penalty
