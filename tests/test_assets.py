"""The loss network and the training photos as store models: stored once per content,
found by training and style creation when neither a cache nor a photo folder is there."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from clipmorph.errors import BadInput
from clipmorph.styles import assets, index

from conftest import run_cli
from media_factory import gradient_frame


@pytest.fixture
def empty_store(tmp_path):
    """This process reads and writes a fresh store (what ``index.use_store`` gives the child)."""
    before = index.store_folder()
    index.use_store(tmp_path / "models")
    yield tmp_path / "models"
    index.use_store(before)


def photo_folder(folder, count: int):
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(gradient_frame(40, 30, t=i)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_the_training_photos_are_stored_once_per_set_of_photos(empty_store, tmp_path):
    assert assets.content_folder() is None and assets.stored_tags() == []
    folder = photo_folder(tmp_path / "photos", 3)
    tag, count, new = assets.import_content([folder])
    assert new and count == 3 and tag.startswith("clipmorph-content:")
    assert assets.import_content([folder]) == (tag, 3, False)  # the same photos: nothing added
    stored = sorted(assets.content_folder().iterdir())
    assert [p.read_bytes() for p in stored] == [(folder / f"{i}.png").read_bytes() for i in range(3)]
    assert index.store_folder() in assets.content_folder().parents  # in the store this process uses
    fewer, count, new = assets.import_content([folder], limit=2)
    assert new and count == 2 and fewer != tag
    assert len(list(assets.content_folder().iterdir())) == 2  # the newest set is the one used
    assert assets.stored_tags() == [fewer]
    with pytest.raises(BadInput, match="no photos"):
        assets.import_content([photo_folder(tmp_path / "empty", 0)])
    with pytest.raises(BadInput, match="not a folder"):
        assets.import_content([tmp_path / "missing"])


def test_training_finds_the_loss_network_in_the_store_when_the_cache_has_none(
    empty_store, vgg_assets, tmp_path, monkeypatch
):
    from clipmorph.model.vgg import VGGWeightsMissing
    from clipmorph.training.loss_network import load_vgg

    monkeypatch.setenv("CLIPMORPH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(VGGWeightsMissing, match="clipmorph vgg fetch"):
        load_vgg()
    tag, new = assets.save_loss_network(vgg_assets[1])
    assert new and assets.save_loss_network(vgg_assets[1]) == (tag, False)
    assert tag == assets.RELEASED_LOSS_NETWORK  # the conversion is byte-reproducible: a release's bento names it
    assert assets.loss_network_file().read_bytes() == vgg_assets[1].read_bytes()
    network = load_vgg()
    assert sum(p.numel() for p in network.parameters()) > 10_000_000  # VGG19 up to relu5_1
    assert assets.stored_tags() == [tag]


def test_the_cli_stores_photos_and_says_what_is_wrong(tmp_path):
    env = {"BENTOML_HOME": str(tmp_path / "home")}
    folder = photo_folder(tmp_path / "photos", 2)
    done = run_cli("content", "import", str(folder), env=env)
    assert done.returncode == 0 and done.stdout.startswith("+ clipmorph-content:") and ": 2 photos" in done.stdout
    assert run_cli("content", "import", str(folder), env=env).stdout.startswith("= clipmorph-content:")
    for args, message in ((["--limit", "0"], "--limit must be 1 or more"), ([], "no photos")):
        target = folder if args else photo_folder(tmp_path / "none", 0)
        failed = run_cli("content", "import", str(target), *args, env=env)
        assert failed.returncode == 1 and message in failed.stderr and "Traceback" not in failed.stderr


def test_a_style_deleted_while_the_styles_are_listed_is_left_out(empty_store, monkeypatch):
    from clipmorph.styles import store

    from conftest import random_library

    store.save_library(random_library())
    models = index.style_models()
    gone = sorted(models)[0]
    real_describe = index._describe

    def deleted_meanwhile(style_id, model):
        if style_id == gone:  # another process deletes it between the listing and the reading
            Path(model.path_of(index.WEIGHTS_FILE)).unlink()
        return real_describe(style_id, model)

    monkeypatch.setattr(index, "_describe", deleted_meanwhile)
    assert [row["id"] for row in index.describe_styles()] == sorted(models)[1:]


def test_the_loss_network_version_is_its_tensors_not_the_file_bytes(tmp_path):
    """safetensors writes metadata in an order that changes between processes: the version must not."""
    import numpy as np
    from safetensors.numpy import save_file

    weights = {"0.weight": np.arange(12, dtype=np.float32).reshape(3, 4), "0.bias": np.ones(3, np.float32)}
    save_file(weights, str(tmp_path / "a.safetensors"), metadata={"source": "x", "md5": "y"})
    save_file(weights, str(tmp_path / "b.safetensors"), metadata={"other": "header"})
    changed = weights | {"0.bias": np.zeros(3, np.float32)}
    save_file(changed, str(tmp_path / "c.safetensors"))
    assert (tmp_path / "a.safetensors").read_bytes() != (tmp_path / "b.safetensors").read_bytes()
    digests = [assets.tensors_digest(tmp_path / f"{name}.safetensors") for name in "abc"]
    assert digests[0] == digests[1] != digests[2]
