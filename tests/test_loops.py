"""The loop counter: a dark ring drawn around a light centre is one loop where it was drawn; a
filled dot, a faint ring, a large outline, the photo's own rings, pixel noise and clean pictures
are not loops."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from clipmorph.training.loops import density, find_loops, painted_loops

GREY = (150, 150, 150)


def flat(size: int = 160, colour=GREY) -> np.ndarray:
    return np.full((size, size, 3), colour, np.uint8)


def with_ring(picture: np.ndarray, centre=(80, 60), radius: int = 5, colour=(20, 30, 25), filled=False) -> np.ndarray:
    marked = picture.copy()
    cv2.circle(marked, centre, radius, colour, -1 if filled else 2)
    return marked


def test_a_dark_ring_around_a_small_light_centre_is_one_loop_where_it_was_drawn():
    (loop,) = painted_loops(with_ring(flat()), flat())
    assert loop.x <= 80 <= loop.x + loop.width and loop.y <= 60 <= loop.y + loop.height
    assert 8 <= loop.hole_area <= 150


def test_a_filled_dot_a_faint_ring_and_a_large_outline_are_not_loops():
    assert find_loops(with_ring(flat(), filled=True)) == []  # no hole: a dot (the blob counters' job)
    assert find_loops(with_ring(flat(), colour=(130, 130, 130))) == []  # 20 levels darker: a soft mark
    assert find_loops(with_ring(flat(), radius=40)) == []  # the outline of a shape, not a small loop
    assert len(find_loops(with_ring(flat(), radius=6))) == 1


def test_the_photos_own_ring_is_not_counted_even_when_the_style_shifts_it_a_little():
    photo = with_ring(flat(), centre=(80, 60))
    painted = with_ring(flat(colour=(140, 160, 120)), centre=(82, 61))
    assert painted_loops(painted, photo) == []
    assert len(painted_loops(with_ring(painted, centre=(30, 120)), photo)) == 1  # a new one elsewhere


def test_a_ring_drawn_around_a_small_dark_thing_of_the_photo_is_the_networks():
    gondola = with_ring(flat(), radius=4, filled=True)  # dark all over in the photo
    (loop,) = painted_loops(with_ring(flat(), radius=5), gondola)
    assert loop.x <= 80 <= loop.x + loop.width


def test_photo_of_another_size_is_resized_to_the_output():
    small_photo = flat(80)
    assert len(painted_loops(with_ring(flat()), small_photo)) == 1


def test_coloured_pixel_noise_and_a_soft_stipple_close_no_loops():
    rng = np.random.default_rng(0)
    noisy = np.clip(flat().astype(np.float32) + rng.normal(0, 25, (160, 160, 3)), 0, 255).astype(np.uint8)
    assert len(find_loops(noisy)) <= 1
    stipple = cv2.GaussianBlur(rng.normal(0, 1, (160, 160)).astype(np.float32), (0, 0), 1.2)
    stippled = np.clip(flat().astype(np.float32) + (stipple / stipple.std() * 12)[..., None], 0, 255)
    assert find_loops(stippled.astype(np.uint8)) == []


def test_density_is_per_hundred_thousand_pixels():
    assert density(3, 200 * 500) == pytest.approx(3.0)
    assert density(0, 100) == 0.0


def test_a_clean_rendering_of_a_real_photo_paints_no_loops(shared_data: Path):
    from clipmorph.training.data import find_images
    from clipmorph.training.pictures import fit_long_side, load_rgb

    photos = find_images(shared_data / "content" / "sun-hays80")[3::11][:3]
    for path in photos:
        photo = np.asarray(fit_long_side(load_rgb(path), 384))
        softened = cv2.GaussianBlur(photo, (0, 0), 1.0)  # a style that only smooths
        tinted = np.clip(photo.astype(np.float32) * np.array([0.8, 0.9, 1.1]), 0, 255).astype(np.uint8)
        assert len(painted_loops(softened, photo)) <= 1
        assert len(painted_loops(tinted, photo)) <= 1
