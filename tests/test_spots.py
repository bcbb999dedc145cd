"""The droplet penalty: it costs a painted blob, not the photo's own highlight, and its
gradient removes the blob the detector finds."""

from __future__ import annotations

import numpy as np
import torch

from clipmorph.training.droplets import find_droplets
from clipmorph.training.spots import gaussian_blur, spot_penalty
from tests.test_droplets import smooth_picture, with_oval


def tensor(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255


def test_a_painted_blob_costs_and_a_clean_output_does_not():
    photo = smooth_picture()
    assert float(spot_penalty(tensor(photo), tensor(photo))) == 0.0
    assert float(spot_penalty(tensor(with_oval(photo, 100, 80, 9, 7)), tensor(photo))) > 1e-4


def test_the_photos_own_highlight_costs_nothing():
    photo = with_oval(smooth_picture(), 100, 80, 9, 7)
    assert float(spot_penalty(tensor(photo), tensor(photo))) == 0.0


def test_the_blur_keeps_flat_pictures_flat():
    flat = torch.full((1, 1, 40, 50), 0.3)
    assert torch.allclose(gaussian_blur(flat, 4.0), flat)


def test_its_gradient_removes_the_droplet():
    photo = smooth_picture()
    painted = with_oval(photo, 100, 80, 9, 7)
    assert len(find_droplets(painted, photo)) == 1
    output = tensor(painted).requires_grad_()
    optimizer = torch.optim.SGD([output], lr=2e4)
    for _ in range(30):
        optimizer.zero_grad()
        spot_penalty(output, tensor(photo)).backward()
        optimizer.step()
    repainted = (output.detach()[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    assert find_droplets(repainted, photo) == []
    assert np.abs(repainted.astype(int) - painted.astype(int)).max() > 30  # the blob itself was darkened
