"""The blob detector: a lone streak of colour on a calm area is found; an even stipple, the
photo's own spots and clean pictures are not."""

import cv2
import numpy as np
from PIL import Image

from clipmorph.training.blobs import find_blobs, painting_blobs


def calm_photo(size: int = 256) -> np.ndarray:
    """A smooth skin-toned gradient: nothing in it stands out."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return np.stack([200 - 40 * y, 150 - 30 * x, 130 + 0 * x], -1).astype(np.uint8)


def painted_blue(photo: np.ndarray, seed: int = 0, stipple: float = 0.0) -> np.ndarray:
    """The photo turned blue, with an optional even brush stipple (blurred noise) all over."""
    rng = np.random.default_rng(seed)
    out = photo.astype(np.float32)[..., ::-1] * np.array([0.5, 0.6, 1.0])
    if stipple:
        noise = cv2.GaussianBlur(rng.normal(0, 1, photo.shape[:2]).astype(np.float32), (0, 0), 1.2)
        out += (noise / noise.std() * stipple)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def with_streak(picture: np.ndarray, centre=(150, 90), axes=(14, 5), colour=(240, 220, 60)) -> np.ndarray:
    marked = picture.copy()
    cv2.ellipse(marked, centre, axes, 20, 0, 360, colour, -1)
    return marked


def test_a_yellow_streak_on_a_calm_blue_cheek_is_one_blob_where_it_was_painted():
    photo = calm_photo()
    (blob,) = find_blobs(with_streak(painted_blue(photo)), photo)
    assert blob.x <= 150 <= blob.x + blob.width and blob.y <= 90 <= blob.y + blob.height
    assert blob.contrast > 22


def test_an_even_stipple_is_texture_not_blobs_and_a_streak_on_it_still_shows():
    photo = calm_photo()
    stippled = painted_blue(photo, stipple=18.0)
    assert find_blobs(stippled, photo) == []
    assert len(find_blobs(with_streak(stippled), photo)) == 1


def test_a_spot_the_photo_has_is_not_the_networks_doing():
    photo = with_streak(calm_photo())
    assert find_blobs(with_streak(painted_blue(photo)), photo) == []


def test_clean_pictures_have_none(shared_data):
    for path in sorted((shared_data / "content" / "set14").glob("*.jpg"))[:6]:
        with Image.open(path) as image:
            image.thumbnail((384, 384))
            picture = np.asarray(image.convert("RGB"))
        assert find_blobs(picture, picture) == [], path.name  # a photo adds nothing to itself
        smoothed = cv2.bilateralFilter(picture, 9, 60, 9)  # a clean, painterly rendering of it
        assert find_blobs(smoothed, picture) == [], path.name


def test_a_paintings_own_level_counts_its_lone_dabs_and_not_its_even_texture():
    """The level a style's blobs are read against: the painting's own lone marks, as if the
    photo were calm everywhere; an evenly stippled painting has none, dabs on a plain ground do."""
    ground = painted_blue(calm_photo(), stipple=6.0)
    assert painting_blobs(ground) == []
    dabbed = with_streak(with_streak(ground), centre=(60, 200), colour=(250, 80, 40))
    assert len(painting_blobs(dabbed)) == 2
