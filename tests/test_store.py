import json

import pytest
import torch

from clipmorph.errors import BadInput, UnknownStyle
from clipmorph.styles import catalogue, index, store

from conftest import random_library, run_cli


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_store_round_trips_styles_with_metadata():
    library = random_library("roundtrip", num_styles=2, seed=5)
    library.styles["roundtrip-0"].metadata.update(
        style_image_sha256="ab" * 32, training={"steps": 10, "lr": 1e-3}, metrics={"style_distance": 0.5}
    )
    first = store.save_library(library)
    assert all(r.created for r in first)
    again = store.save_library(library)
    assert [r.tag for r in again] == [r.tag for r in first] and not any(r.created for r in again)

    loaded = store.load_library(["roundtrip-0", "roundtrip-1"])
    original, back = library.styles["roundtrip-0"], loaded.styles["roundtrip-0"]
    assert same_tensors(original.params, back.params) and back.version == original.version
    assert back.metadata["training"] == {"steps": 10, "lr": 1e-3}
    assert back.metadata["style_image_sha256"] == "ab" * 32 and back.display_name == "Random test style 0"
    [backbone] = loaded.backbones.values()
    assert same_tensors(backbone.state, next(iter(library.backbones.values())).state)

    model = index.style_models()["roundtrip-0"]
    assert model.info.labels[index.KIND_LABEL] == "style"
    assert model.info.metadata["backbone"].startswith(index.BACKBONE_PREFIX)


def test_unknown_style_in_store_lists_what_is_there(stored_styles):
    with pytest.raises(UnknownStyle, match="rand-0"):
        store.load_library(["missing"])


def test_styles_named_by_the_cli_are_read_without_listing_the_whole_store(stored_styles, monkeypatch):
    """A whole-store listing parses every model's YAML (seconds with the catalogue): a CLI run
    naming its style reads only that style's versions and its backbone."""
    import bentoml

    listed = []
    real_list = bentoml.models.list
    monkeypatch.setattr(bentoml.models, "list", lambda *args: listed.append(args) or real_list(*args))
    library = store.load_library(["rand-1"])
    assert list(library.styles) == ["rand-1"] and len(library.backbones) == 1
    assert listed and all(args and args[0] == f"{index.STYLE_PREFIX}rand-1" for args in listed)
    with pytest.raises(UnknownStyle, match="rand-0"):  # an unknown name still lists what there is
        store.load_library(["missing"])
    for impossible in ("Rand-1", "rand-1:latest", "rand 1", "x" * 70):  # never read as a BentoML tag
        with pytest.raises(UnknownStyle):
            store.load_library([impossible])


def test_delete_removes_every_version():
    library = random_library("deleteme", num_styles=1, seed=7)
    store.save_library(library)
    assert "deleteme-0" in index.style_models()
    assert index.delete_style("deleteme-0")
    assert "deleteme-0" not in index.style_models()
    with pytest.raises(UnknownStyle):
        index.delete_style("deleteme-0")


def test_catalogue_round_trip(tmp_path):
    library = random_library("cat", num_styles=3, seed=11)
    catalogue.write_catalogue(library, tmp_path)
    manifest = json.loads((tmp_path / catalogue.MANIFEST).read_text())
    assert [s["id"] for s in manifest["styles"]] == ["cat-0", "cat-1", "cat-2"]
    back = catalogue.read_catalogue(tmp_path)
    assert back.styles.keys() == library.styles.keys()
    assert all(same_tensors(back.styles[k].params, library.styles[k].params) for k in back.styles)


def test_catalogue_detects_tampering_and_path_tricks(tmp_path):
    catalogue.write_catalogue(random_library("tamper", num_styles=1, seed=2), tmp_path)
    manifest_path = tmp_path / catalogue.MANIFEST
    manifest = json.loads(manifest_path.read_text())

    style_file = tmp_path / manifest["styles"][0]["file"]
    data = bytearray(style_file.read_bytes())
    data[-1] ^= 1
    style_file.write_bytes(bytes(data))
    with pytest.raises(BadInput, match="sha256"):
        catalogue.read_catalogue(tmp_path)

    original_file = manifest["styles"][0]["file"]
    manifest["styles"][0]["file"] = "../../etc/passwd"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="outside"):
        catalogue.read_catalogue(tmp_path)

    data[-1] ^= 1
    style_file.write_bytes(bytes(data))
    manifest["styles"][0]["file"] = original_file
    manifest["styles"][0]["id"] = "../evil"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="invalid style id"):
        catalogue.read_catalogue(tmp_path)


def test_not_a_catalogue(tmp_path):
    with pytest.raises(BadInput, match=r"manifest\.json"):
        catalogue.read_catalogue(tmp_path)


def test_cli_import_export_list(tmp_path):
    source = tmp_path / "catalogue"
    catalogue.write_catalogue(random_library("cli", num_styles=2, seed=13), source)
    first = run_cli("styles", "import", str(source))
    assert first.returncode == 0, first.stderr
    assert "imported 3 new model(s)" in first.stdout
    second = run_cli("styles", "import", str(source))
    assert "imported 0 new model(s), 3 already in the store" in second.stdout

    listing = json.loads(run_cli("styles", "list", "--json").stdout)
    assert {"cli-0", "cli-1"} <= {row["id"] for row in listing}

    exported = tmp_path / "exported"
    result = run_cli("styles", "export", str(exported), "--style", "cli-1")
    assert result.returncode == 0, result.stderr
    assert list(catalogue.read_catalogue(exported).styles) == ["cli-1"]


def test_shipped_catalogue_is_valid():
    from conftest import REPO

    library = catalogue.read_catalogue(REPO / "models")
    for style in library.styles.values():
        assert not style.metadata.get("random_init"), f"{style.id}: random weights must never ship as a style"
        # Every shipped style says how it was made and how good it is, so it can be retrained.
        training = style.metadata["training"]
        assert training["steps"] > 0 and training["device"] and training["image_size"]
        assert len(style.metadata["style_image_sha256"]) == 64
        assert style.metadata["evaluation"]["warping_error_ratio"] > 0
        assert style.thumbnail and style.thumbnail[:2] == b"\xff\xd8"


def test_thumbnails_travel_through_the_catalogue_into_the_store(tmp_path):
    library = random_library(prefix="thumb", seed=5)
    library.styles["thumb-0"].thumbnail = b"\xff\xd8\xff picture"
    catalogue.write_catalogue(library, tmp_path)
    back = catalogue.read_catalogue(tmp_path)
    assert back.styles["thumb-0"].thumbnail == b"\xff\xd8\xff picture" and back.styles["thumb-1"].thumbnail is None
    store.save_library(back)
    assert index.thumbnail_path("thumb-0").read_bytes() == b"\xff\xd8\xff picture"
    assert index.thumbnail_path("thumb-1") is None
    (tmp_path / "thumbnails" / "thumb-0.jpg").write_bytes(b"swapped")
    with pytest.raises(BadInput, match="altered"):
        catalogue.read_catalogue(tmp_path)
    for style_id in ("thumb-0", "thumb-1"):
        index.delete_style(style_id)
