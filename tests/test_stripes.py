"""The stripe measure: banding that runs one way across a picture scores high; a clean picture,
an even stipple however strong, and stripes the photo itself has score low; and on real crops
our striped Scream scores above the line and the peer's clean pictures below it."""

import cv2
import numpy as np
import pytest
from PIL import Image

from clipmorph.training.stripes import VISIBLE, stripe_score

from conftest import REPO


def photo(size: int = 256, shirt: bool = False) -> np.ndarray:
    """A smooth gradient with a dark disc (an edge that is the subject's) and, with ``shirt``,
    a striped patch of the photo's own."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    picture = np.stack([200 - 60 * y, 150 - 40 * x, 120 + 30 * x * y], -1)
    cv2.circle(picture, (size // 3, size // 2), size // 6, (60, 50, 40), -1)
    if shirt:
        rows = np.arange(size)[:, None] % 10 < 5
        patch = np.zeros((size, size), bool)
        patch[size // 2 :, size // 2 :] = True
        picture[patch & rows] *= 0.6
    return np.clip(cv2.GaussianBlur(picture, (0, 0), 1.0), 0, 255).astype(np.uint8)


def painted(picture: np.ndarray) -> np.ndarray:
    """A colour treatment that keeps the photo's shapes (what a clean style does at least)."""
    out = picture.astype(np.float32)[..., ::-1] * np.array([0.6, 0.7, 1.1], np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def banded(picture: np.ndarray, angle: float = 0.0, period: float = 10.0, amplitude: float = 14.0) -> np.ndarray:
    """Stripes at ``angle`` degrees (0: horizontal lines) over the whole picture."""
    y, x = np.mgrid[0 : picture.shape[0], 0 : picture.shape[1]].astype(np.float32)
    theta = np.deg2rad(angle)
    across = -x * np.sin(theta) + y * np.cos(theta)
    bands = amplitude * np.sin(2 * np.pi * across / period)
    return np.clip(picture.astype(np.float32) + bands[..., None] * np.array([1.0, 0.5, 0.3]), 0, 255).astype(np.uint8)


def stippled(picture: np.ndarray, sigma: float, amplitude: float = 30.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, picture.shape).astype(np.float32), (0, 0), sigma)
    return np.clip(picture + noise / noise.std() * amplitude, 0, 255).astype(np.uint8)


def test_a_clean_picture_scores_about_nothing():
    assert stripe_score(painted(photo()), photo()) < 0.1
    assert stripe_score(photo(), photo()) < 0.05


@pytest.mark.parametrize("angle", [0, 30, 90, 135])
def test_banding_one_way_across_the_picture_is_found_in_any_direction(angle):
    assert stripe_score(banded(painted(photo()), angle), photo()) > 2 * VISIBLE
    faint = stripe_score(banded(painted(photo()), angle, amplitude=5.0), photo())
    assert faint > VISIBLE  # a few levels of banding still line up


def test_scan_lines_three_pixels_apart_are_found():
    """Scream's scan lines at 1:1 repeat every 3 px or so, finer than the lags looked at."""
    assert stripe_score(banded(painted(photo()), 0, period=3.0, amplitude=5.0), photo()) > VISIBLE


def test_a_woven_grid_counts_as_much_as_lines_one_way():
    """Lines both ways (Basquiat's woven grid) split the detail between two directions: each
    alone would score the grid half as high as the same lines one way."""
    lines = banded(painted(photo()), 0, period=4.0, amplitude=5.0)
    grid = banded(banded(painted(photo()), 0, period=4.0, amplitude=5.0), 90, period=4.0, amplitude=5.0)
    assert stripe_score(grid, photo()) > VISIBLE
    assert stripe_score(grid, photo()) > 0.8 * stripe_score(lines, photo())


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.0])
def test_an_even_stipple_however_strong_is_not_stripes(sigma):
    assert stripe_score(stippled(painted(photo()), sigma), photo()) < VISIBLE


def test_stripes_the_photo_has_are_not_the_networks():
    shirt = photo(shirt=True)
    assert stripe_score(painted(shirt), shirt) < VISIBLE
    assert stripe_score(banded(painted(shirt), 90), shirt) > VISIBLE  # new ones across them still count


def test_on_real_crops_our_striped_scream_is_above_the_line_and_the_peers_pictures_below():
    """../shared/looks/set14-ours-vs-peer.jpg: 300 px crops at 1:1 (baboon, face) of the photo,
    then ours and the peer's for Starry Night, Scream and Monet (ours: the catalogue before the
    teacher anchor, with Scream's scan lines)."""
    sheet_path = REPO.parent / "shared" / "looks" / "set14-ours-vs-peer.jpg"
    if not sheet_path.is_file():
        pytest.skip(f"{sheet_path} not found")
    sheet = np.asarray(Image.open(sheet_path).convert("RGB"))
    columns = ["photo", *(f"{p} {w}" for p in ("starrynight", "scream", "monet") for w in ("ours", "peer"))]
    for top in (24, 324):
        crops = {name: sheet[top : top + 300, 300 * i : 300 * (i + 1)] for i, name in enumerate(columns)}
        scores = {name: stripe_score(crop, crops["photo"]) for name, crop in crops.items()}
        assert scores["scream ours"] > VISIBLE, scores
        assert all(scores[name] < VISIBLE for name in columns if name.endswith("peer")), scores
        assert scores["scream ours"] > 3 * scores["scream peer"], scores
