"""The calm-area lattice penalty: it costs a fine lattice painted over the photo's smooth areas,
not the same lattice over its textured ones, little for broad strokes, nothing for the photo's
own detail; its gradient takes the lattice off."""

from __future__ import annotations

import torch

from clipmorph.training.calm import calm_penalty, calmness

SIZE = 96


def half_busy_photo() -> torch.Tensor:
    """A grey sky on the left, a strongly textured right half (random 4-px blocks)."""
    photo = torch.full((1, 3, SIZE, SIZE), 0.6)
    generator = torch.Generator().manual_seed(0)
    blocks = torch.rand(1, 1, SIZE // 4, SIZE // 8, generator=generator)
    photo[..., SIZE // 2 :] = 0.2 + 0.6 * blocks.repeat_interleave(4, -2).repeat_interleave(4, -1)
    return photo


def lines(period: int, amplitude: float = 0.04) -> torch.Tensor:
    """Horizontal lines of the given period over the whole picture."""
    rows = torch.arange(SIZE, dtype=torch.float32)
    wave = amplitude * torch.sin(2 * torch.pi * rows / period)
    return wave.view(1, 1, SIZE, 1).expand(1, 3, SIZE, SIZE)


def on_half(pattern: torch.Tensor, left: bool) -> torch.Tensor:
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., : SIZE // 2] = float(left)
    mask[..., SIZE // 2 :] = float(not left)
    return pattern * mask


def test_the_photo_itself_costs_nothing():
    photo = half_busy_photo()
    assert float(calm_penalty(photo, photo)) == 0.0


def test_calmness_is_high_in_the_sky_and_low_in_the_texture():
    weight = calmness(half_busy_photo())[0, 0]
    assert float(weight[:, 8 : SIZE // 2 - 24].min()) > 0.9
    assert float(weight[:, SIZE // 2 + 24 : -8].max()) < 0.01


def test_a_fine_lattice_costs_in_the_sky_far_more_than_in_the_texture():
    photo = half_busy_photo()
    in_sky = float(calm_penalty(photo + on_half(lines(3), left=True), photo))
    in_texture = float(calm_penalty(photo + on_half(lines(3), left=False), photo))
    assert in_sky > 1e-5
    assert in_texture < in_sky / 100


def test_broad_strokes_cost_little_beside_a_lattice_of_the_same_amplitude():
    photo = half_busy_photo()
    lattice = float(calm_penalty(photo + lines(3), photo))
    strokes = float(calm_penalty(photo + lines(24), photo))
    assert strokes < lattice / 8


def test_its_gradient_takes_the_lattice_off():
    photo = half_busy_photo()
    painted = photo + on_half(lines(3), left=True)
    output = painted.clone().requires_grad_()
    optimizer = torch.optim.Adam([output], lr=2e-3)
    before = float(calm_penalty(painted, photo))
    for _ in range(60):
        optimizer.zero_grad()
        calm_penalty(output, photo).backward()
        optimizer.step()
    assert float(calm_penalty(output.detach(), photo)) < before / 10
    sky = (slice(None), slice(None), slice(8, -8), slice(8, SIZE // 2 - 8))
    assert float((output.detach() - photo)[sky].std()) < float((painted - photo)[sky].std()) / 3
