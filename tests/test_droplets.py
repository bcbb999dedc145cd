"""The droplet measure: it finds a bright compact blob the network painted, and stays silent
on clean pictures, on the photo's own highlights, on strokes and on fine texture."""

from __future__ import annotations

import numpy as np
import pytest

from clipmorph.training.droplets import find_droplets


def smooth_picture(width: int = 256, height: int = 192) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 40 * np.sin(x / 40), 80 + 30 * np.cos(y / 30), 90 + 0 * x], -1)
    return base.clip(0, 255).astype(np.uint8)


def with_oval(picture: np.ndarray, cx: int, cy: int, rx: int, ry: int, value: int = 250) -> np.ndarray:
    height, width = picture.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    marked = picture.copy()
    marked[inside] = value
    return marked


def test_a_painted_oval_is_one_droplet_where_the_photo_has_none():
    photo = smooth_picture()
    output = with_oval(photo, 100, 80, 9, 7)
    [droplet] = find_droplets(output, photo)
    assert abs(droplet.x + droplet.width / 2 - 100) <= 2 and abs(droplet.y + droplet.height / 2 - 80) <= 2
    assert droplet.rise > 0.3


def test_clean_outputs_have_none():
    photo = smooth_picture()
    assert find_droplets(photo, photo) == []
    rng = np.random.default_rng(0)
    recoloured = (255 - photo.astype(int))[..., ::-1] + rng.normal(0, 12, photo.shape)  # new palette, fine grain
    assert find_droplets(recoloured.clip(0, 255).astype(np.uint8), photo) == []


def test_the_photos_own_highlight_is_not_the_networks_doing():
    photo = with_oval(smooth_picture(), 100, 80, 9, 7)  # a lamp in the photo
    assert find_droplets(photo.copy(), photo) == []


@pytest.mark.parametrize(
    "mark",
    [
        lambda p: with_oval(p, 120, 90, 60, 3),  # a long bright stroke, not a blob
        lambda p: with_oval(p, 120, 90, 2, 2),  # a speck of texture
        lambda p: with_oval(p, 128, 96, 80, 60),  # a large light area of the picture
    ],
)
def test_strokes_specks_and_large_light_areas_are_not_droplets(mark):
    photo = smooth_picture()
    assert find_droplets(mark(photo), photo) == []


def test_an_output_of_another_size_is_compared_with_the_photo_resized():
    photo = smooth_picture(512, 384)
    output = with_oval(smooth_picture(), 100, 80, 9, 7)
    assert len(find_droplets(output, photo)) == 1
