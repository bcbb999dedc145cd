"""The scripts in training/: the content download (over file://, offline) and the catalogue list."""

import os
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest
from PIL import Image

from conftest import REPO
from media_factory import gradient_frame


def test_download_content_fetches_extracts_flattens_and_shrinks(tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for i in range(3):
            path = tmp_path / f"{i}.jpg"
            Image.fromarray(gradient_frame(400, 300, t=i)).save(path)
            bundle.write(path, f"val2017/../../evil/{i}.jpg")
        bundle.writestr("val2017/readme.txt", "not a photo")
    out = tmp_path / "content"
    result = subprocess.run(
        [sys.executable, str(REPO / "training" / "download_content.py"), str(out), "--url", archive.as_uri(),
         "--limit", "2", "--long-side", "100"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    photos = sorted(out.iterdir())
    assert [p.name for p in photos] == ["0.jpg", "1.jpg"]  # flat, limited, zip removed
    with Image.open(photos[0]) as image:
        assert image.size == (100, 75)
    assert not (tmp_path / "evil").exists()


def test_the_catalogue_lists_the_21_original_styles_with_their_facts():
    data = tomllib.loads((REPO / "training" / "catalogue.toml").read_text())
    styles = data["style"]
    assert len(styles) == 21 and len({s["id"] for s in styles}) == 21
    for style in styles:
        assert {"display_name", "artist", "title", "year", "public_domain", "source", "style_file"} <= set(style)
    public = {s["id"] for s in styles if s["public_domain"]}
    expected = {"ermine", "kanagawa", "kandinsky", "klee", "klimt", "monet", "scream", "starrynight", "turner"}
    assert public == expected  # as listed in ../shared/data/README.md
    assert data["backbone"] == {
        "name": "catalogue-full",
        "width": "full",
        "style_weight": 1.5,
        "norm": "mean-after-encoder",
        "teacher_weight": 3e6,
    }


def test_every_catalogue_style_image_is_in_the_shared_data(shared_data):
    from clipmorph.training.config import styles_from_toml

    _, sources = styles_from_toml(REPO / "training" / "catalogue.toml", shared_data / "styles")
    assert len(sources) == 21 and all(s.image.is_file() for s in sources)
    assert sources[0].metadata["artist"] == "Jean-Michel Basquiat" and "style_file" not in sources[0].metadata
    temporal = {s.id: s.temporal_weight for s in sources}
    assert temporal["basquiat"] == 8.0 and temporal["sketch"] == 1.0  # the busy styles weigh flicker more
    assert "temporal_weight" not in sources[0].metadata


def test_a_style_list_refuses_weights_that_are_not_positive_and_paintings_too_small(tmp_path):
    from clipmorph.errors import BadInput
    from clipmorph.training.config import styles_from_toml

    Image.fromarray(gradient_frame(64, 64)).save(tmp_path / "p.png")

    def one_style(setting: str):
        (tmp_path / "list.toml").write_text(f'[[style]]\nid = "p"\nstyle_file = "p.png"\n{setting}\n')
        [source] = styles_from_toml(tmp_path / "list.toml", tmp_path)[1]
        return source

    refused = {
        "temporal_weight = -1": "must be > 0",
        "style_size = 16": "style_size must be",
        **{f"coarse_scales = {bad}": "style p: coarse" for bad in ("0.5", "[1.5]", "[0.5, 0.5]")},
        'any_direction = "yes"': "any_direction must be true or false",
        **{f"calm_weight = {bad}": "calm_weight must be a number" for bad in ("-1.0", '"high"', "true")},
        **{f"line_weight = {bad}": "line_weight must be a number" for bad in ("-1.0", '"high"', "true")},
        **{f"mark_scale = {bad}": "mark_scale must be a number from 1 to 4" for bad in ("0.5", "5", '"big"')},
    }
    for setting, message in refused.items():
        with pytest.raises(BadInput, match=message):
            one_style(setting)
    kept = {"style_size = 256": 256, "coarse_scales = [0.5]": (0.5,), "any_direction = true": True}
    kept["calm_weight = 2e10"] = 2e10
    kept["line_weight = 3e7"] = 3e7
    for setting, value in kept.items():
        name = setting.split(" = ")[0]
        source = one_style(setting)
        assert getattr(source, name) == value and name not in source.metadata
    assert one_style("mark_scale = 1.5").metadata["mark_scale"] == 1.5  # shown, not trained: kept as metadata


def test_pack_for_device_shrinks_photos_keeps_paintings_and_halves_the_loss_network(tmp_path, vgg_assets):
    import torch
    from safetensors.torch import load_file

    from clipmorph.model.vgg import VGGFeatures, VGGWeightsMissing

    data = tmp_path / "data"
    for folder in ("bsds500", "imagenet-sample", "urban100", "coco2014-224", "sun-hays80"):
        (data / "content" / folder).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(gradient_frame(640, 480, t=i)).save(data / "content" / folder / f"{i}.png")
    (data / "styles").mkdir()
    Image.fromarray(gradient_frame(900, 700, t=9)).save(data / "styles" / "painting.jpg")
    out = tmp_path / "pack"
    result = subprocess.run(
        [sys.executable, str(REPO / "training" / "pack_for_device.py"), "--data", str(data), "--out", str(out),
         "--photos", "8", "--photo-side", "96"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CLIPMORPH_CACHE": str(vgg_assets[1].parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    photos = sorted((out / "data" / "content").rglob("*.jpg"))
    assert len(photos) == 8 and not (out / "data" / "content" / "sun-hays80").exists()  # held-out set stays home
    with Image.open(photos[0]) as image:
        assert min(image.size) == 96
    assert (out / "data" / "styles" / "painting.jpg").read_bytes() == (data / "styles" / "painting.jpg").read_bytes()
    packed, original = load_file(str(out / "vgg" / vgg_assets[1].name)), load_file(str(vgg_assets[1]))
    # Up to relu4_3, the deepest layer the objective uses: block4_conv4 and block5_conv1 stay home.
    assert set(packed) == set(original) - {"25.weight", "25.bias", "28.weight", "28.bias"}
    for key, value in packed.items():
        assert value.dtype == torch.float16 and torch.allclose(value.float(), original[key], rtol=1e-3, atol=1e-4)
    trimmed, full = VGGFeatures.from_file(out / "vgg" / vgg_assets[1].name), VGGFeatures.from_file(vgg_assets[1])
    x = torch.rand(1, 3, 48, 48)
    deep, reference = trimmed(x, ["relu4_3"])["relu4_3"], full(x, ["relu4_3"])["relu4_3"]
    assert (deep - reference).norm() / reference.norm() < 0.01  # the same network, weights in fp16
    with pytest.raises(VGGWeightsMissing, match="end before relu5_1"):
        trimmed(x, ["relu5_1"])


def stand_in_data(data, photos: int = 2) -> list[str]:
    """Generated photos in each training folder and a generated painting per catalogue style; the ids."""
    for folder in ("bsds500", "imagenet-sample", "urban100", "coco2014-224"):
        (data / "content" / folder).mkdir(parents=True)
        for i in range(photos):
            Image.fromarray(gradient_frame(96, 72, t=i)).save(data / "content" / folder / f"{i}.png")
    (data / "styles").mkdir()
    entries = tomllib.loads((REPO / "training" / "catalogue.toml").read_text())["style"]
    for i, entry in enumerate(entries):
        Image.fromarray(gradient_frame(80, 64, t=i)).save(data / "styles" / entry["style_file"])
    return [entry["id"] for entry in entries]


def training_script(name: str):
    """training/<name>.py as a module, to call its pieces directly."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_catalogue_module():
    """training/build_catalogue.py as a module, to call its stages' pieces directly."""
    return training_script("build_catalogue")


def test_refine_learns_named_styles_again_on_the_frozen_backbone_and_leaves_the_rest(tmp_path, vgg_assets):
    """`build_catalogue.py refine` on a tiny stand-in catalogue (generated paintings and photos)."""
    import torch

    from clipmorph.model.network import WIDTHS, TransformerNet
    from clipmorph.styles import catalogue
    from clipmorph.styles.library import StyleLibrary

    data = tmp_path / "data"
    ids = stand_in_data(data)
    torch.manual_seed(0)
    net = TransformerNet(WIDTHS["lite"], len(ids))
    catalogue.write_catalogue(StyleLibrary.from_network(net, "catalogue-full", ids), tmp_path / "models")
    result = subprocess.run(
        [sys.executable, str(REPO / "training" / "build_catalogue.py"), "refine", "--styles", "scream,turner",
         "--data", str(data), "--models", str(tmp_path / "models"), "--runs", str(tmp_path / "runs"),
         "--steps", "2", "--image-size", "32", "--style-size", "64", "--batch-size", "2", "--workers", "0",
         "--no-wandb", "--teacher-weight", "0", "--tv-weight", "5000", "--coarse-scales", "0.5",
         "--calm-weight", "1e9"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CLIPMORPH_CACHE": str(vgg_assets[1].parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    before = catalogue.read_catalogue(tmp_path / "models")
    after = catalogue.read_catalogue(tmp_path / "runs" / "refined")
    assert after.backbones.keys() == before.backbones.keys() and sorted(after.styles) == sorted(ids)
    for style_id in ids:
        old, new = before.styles[style_id], after.styles[style_id]
        same = all(torch.equal(old.params[k], new.params[k]) for k in old.params)
        assert same == (style_id not in ("scream", "turner")), style_id
    assert after.styles["scream"].metadata["training"]["mode"] == "add-style"  # the stand-in had no record
    refine_weights = tomllib.loads((REPO / "training" / "catalogue.toml").read_text())["refine"]["style_weight"]
    assert after.styles["scream"].metadata["style_loss_weight"] == refine_weights["scream"] > 1
    record = after.styles["scream"].metadata["training"]  # this run's own multipliers, for the REPORT
    assert record["style_loss_weight"] == refine_weights["scream"] and record["temporal_loss_weight"] == 1.0
    assert record["tv_weight"] == 5000.0  # --tv-weight reaches the objective
    assert record["coarse_scales"] == [0.5]  # and so does --coarse-scales, recorded for the REPORT
    listed = {s["id"]: s for s in tomllib.loads((REPO / "training" / "catalogue.toml").read_text())["style"]}
    assert "calm_weight" not in listed["turner"] and listed["scream"]["calm_weight"] != 1e9
    assert after.styles["turner"].metadata["training"]["calm_weight"] == 1e9  # --calm-weight where the list is silent
    assert record["calm_weight"] == listed["scream"]["calm_weight"]  # a style's own calm_weight in place of it
    # the refined styles' colour treatment is measured for their new vectors: the export looks as shipped
    assert {i for i in ids if "colour" in after.styles[i].metadata} == {"scream", "turner"}
    unknown = subprocess.run(
        [sys.executable, str(REPO / "training" / "build_catalogue.py"), "refine", "--styles", "nosuch",
         "--data", str(data), "--models", str(tmp_path / "models"), "--runs", str(tmp_path / "runs2")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CLIPMORPH_CACHE": str(vgg_assets[1].parent)},
    )  # fmt: skip
    assert unknown.returncode != 0 and "nosuch not in the catalogue" in unknown.stderr


def test_refine_width_lite_learns_named_lite_styles_again_and_nothing_else_moves(tmp_path, vgg_assets):
    """`refine --width lite`: the named styles of the distilled student learn again on its frozen
    backbone; the full styles and the other lite styles stay as they were, ids and names too."""
    import torch

    from clipmorph.model.network import WIDTHS, TransformerNet
    from clipmorph.styles import catalogue
    from clipmorph.styles.library import StyleLibrary
    from clipmorph.training.distill import rename_styles

    data = tmp_path / "data"
    ids = stand_in_data(data)
    torch.manual_seed(0)
    shipped = StyleLibrary.from_network(TransformerNet(WIDTHS["lite"], len(ids)), "catalogue-full", ids)
    lite = StyleLibrary.from_network(TransformerNet(WIDTHS["lite"], len(ids)), "catalogue-lite", ids)
    shipped.merge(rename_styles(lite, "-lite"))
    catalogue.write_catalogue(shipped, tmp_path / "models")
    result = subprocess.run(
        [sys.executable, str(REPO / "training" / "build_catalogue.py"), "refine", "--width", "lite",
         "--styles", "scream", "--data", str(data), "--models", str(tmp_path / "models"), "--runs",
         str(tmp_path / "runs"), "--steps", "2", "--image-size", "32", "--style-size", "64", "--batch-size", "2",
         "--workers", "0", "--no-wandb", "--teacher-weight", "0"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CLIPMORPH_CACHE": str(vgg_assets[1].parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    before = catalogue.read_catalogue(tmp_path / "models")
    after = catalogue.read_catalogue(tmp_path / "runs" / "refined")  # the whole catalogue: `report --full-from`
    assert after.backbones.keys() == before.backbones.keys() and sorted(after.styles) == sorted(before.styles)
    for style_id, old in before.styles.items():
        new = after.styles[style_id]
        same = all(torch.equal(old.params[k], new.params[k]) for k in old.params)
        assert same == (style_id != "scream-lite"), style_id
        assert new.metadata.get("full_id") == old.metadata.get("full_id")
        assert new.display_name == old.display_name or style_id == "scream-lite"  # it takes catalogue.toml's name
    refined = after.styles["scream-lite"]
    assert refined.display_name == "Munch: The Scream (lite)" and refined.metadata["training"]["mode"] == "add-style"


def test_the_report_names_each_refined_styles_own_temporal_and_teacher_weights():
    """A refinement's line in the REPORT gives the weights each style was trained with, its own
    multipliers applied; a run recorded before they were kept names only the style weights."""
    from types import SimpleNamespace

    build = build_catalogue_module()
    run = {"mode": "refine", "finished_at": "2026-12-06T08:40:00", "steps": 500, "batch_size": 4,
           "image_size": 256, "style_size": 512, "seconds": 1680, "device": "cpu (test)", "style_weight": 1.5,
           "noise_weight": 2e6, "warp_weight": 4e6, "teacher_weight": 3e6}  # fmt: skip
    own = {
        "basquiat": {"style_loss_weight": 1.0, "temporal_loss_weight": 12.0, "teacher_loss_weight": 1.0},
        "okeeffe": {"style_loss_weight": 1.0, "temporal_loss_weight": 1.0, "teacher_loss_weight": 5.0},
    }
    library = SimpleNamespace(styles={i: SimpleNamespace(id=i, metadata={"training": run | m}) for i, m in own.items()})
    [line] = build.refinement_lines(library)
    assert "style weight basquiat 1.5, okeeffe 1.5" in line
    assert "noise and warp weights basquiat 2.4e+07 and 4.8e+07, okeeffe 2e+06 and 4e+06" in line
    assert line.endswith("teacher anchor basquiat 3e+06, okeeffe 1.5e+07.")
    smoother = {i: SimpleNamespace(id=i, metadata={"training": run | m | {"tv_weight": 1e5}}) for i, m in own.items()}
    [line] = build.refinement_lines(SimpleNamespace(styles=smoother))
    assert line.endswith("teacher anchor basquiat 3e+06, okeeffe 1.5e+07; TV 1e+05.")  # only a TV not the default
    for style in smoother.values():
        style.metadata["training"]["calm_weight"] = 2e10
    [line] = build.refinement_lines(SimpleNamespace(styles=smoother))
    assert line.endswith("; TV 1e+05; calm-area lattice penalty 2e+10.")
    smoother["basquiat"].metadata["training"]["calm_weight"] = 0.0  # a style's own: none
    [line] = build.refinement_lines(SimpleNamespace(styles=smoother))
    assert line.endswith("; TV 1e+05; calm-area lattice penalty okeeffe 2e+10.")
    assert "paintings at 512 px" in line
    coarse = {
        i: SimpleNamespace(id=i, metadata={"training": run | m | {"coarse_scales": [0.5]}}) for i, m in own.items()
    }
    [line] = build.refinement_lines(SimpleNamespace(styles=coarse))
    assert line.endswith("teacher anchor basquiat 3e+06, okeeffe 1.5e+07; style term also at 0.5x size.")
    coarse["basquiat"].metadata["training"]["coarse_scales"] = []  # a style's own: none
    [line] = build.refinement_lines(SimpleNamespace(styles=coarse))
    assert line.endswith("; style term also at okeeffe 0.5x size.")
    coarse["okeeffe"].metadata["training"]["any_direction"] = True
    [line] = build.refinement_lines(SimpleNamespace(styles=coarse))
    assert line.endswith("; style term also at okeeffe 0.5x size; strokes in any direction (okeeffe).")
    own["okeeffe"]["style_size"] = 256
    sized = {i: SimpleNamespace(id=i, metadata={"training": run | m}) for i, m in own.items()}
    [line] = build.refinement_lines(SimpleNamespace(styles=sized))
    assert "paintings at basquiat 512, okeeffe 256 px" in line
    older = {"mode": "refine", **{k: v for k, v in run.items() if k != "teacher_weight"}, "style_loss_weight": 16.0}
    library = SimpleNamespace(styles={"scream": SimpleNamespace(id="scream", metadata={"training": older})})
    [line] = build.refinement_lines(library)
    assert line.endswith("style weight scream 24.") and "noise" not in line


def test_finish_can_learn_the_distilled_lite_styles_again_against_the_paintings(tmp_path, vgg_assets, monkeypatch):
    """`finish --lite-refine-minutes`: every lite style's vectors move on the frozen student, whose
    backbone stays as distilled, and each style's record says it was refined after distillation."""
    import argparse

    import torch

    from clipmorph.model.network import WIDTHS, TransformerNet
    from clipmorph.styles.library import StyleLibrary

    build = build_catalogue_module()
    data = tmp_path / "data"
    ids = stand_in_data(data, photos=1)
    torch.manual_seed(0)
    distilled = {"mode": "distilled", "steps": 5, "seconds": 1.0}
    lite = StyleLibrary.from_network(
        TransformerNet(WIDTHS["lite"], len(ids)), "catalogue-lite", ids, {"training": distilled},
        [{"training": distilled} for _ in ids],
    )  # fmt: skip
    before = {i: {k: v.clone() for k, v in lite.styles[i].params.items()} for i in ids}
    (backbone,) = lite.backbones.values()
    monkeypatch.setenv("CLIPMORPH_CACHE", str(vgg_assets[1].parent))
    args = build.main_parser().parse_args(
        ["finish", "--data", str(data), "--runs", str(tmp_path / "runs"), "--steps", "2", "--image-size", "32",
         "--style-size", "64", "--batch-size", "2", "--workers", "0", "--no-wandb", "--lite-refine-minutes", "5",
         "--teacher-weight", "0"]
    )  # fmt: skip
    assert isinstance(args, argparse.Namespace)
    refined = build.refine_lite(args, lite)
    assert list(refined.backbones) == [backbone.key]  # the student's backbone did not move
    moved = [i for i in ids if not all(torch.equal(before[i][k], refined.styles[i].params[k]) for k in before[i])]
    assert moved == ids[:4]  # 2 steps of batch 2, styles round-robin: the four that saw a photo
    record = refined.styles[ids[0]].metadata["training"]
    assert record["mode"] == "refine" and record["started_from"]["training"]["mode"] == "distilled"
    assert record["total_steps"] == 5 + 2
    # --styles: only the named lite styles learn again
    args.styles, args.runs = f"{ids[-1]},{ids[-2]}", tmp_path / "runs-named"
    before = {i: {k: v.clone() for k, v in refined.styles[i].params.items()} for i in ids}
    again = build.refine_lite(args, refined)
    moved = [i for i in ids if not all(torch.equal(before[i][k], again.styles[i].params[k]) for k in before[i])]
    assert sorted(moved) == sorted(ids[-2:])


def test_a_refined_style_that_collapsed_to_one_flat_colour_keeps_its_earlier_vectors(tmp_path):
    """Vectors that drive the last layer's sigmoid into saturation paint one colour everywhere, and no
    loss has a gradient left to bring them back: `refine` must not ship them."""
    import torch

    from clipmorph.styles.library import Style, StyleLibrary

    from conftest import random_network

    build = build_catalogue_module()
    (tmp_path / "content" / build.HELD_OUT).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(gradient_frame(96, 72, t=i)).save(tmp_path / "content" / build.HELD_OUT / f"{i}.png")
    before = StyleLibrary.from_network(random_network("lite", 2), "catalogue-lite", ["a", "b"])
    refined = StyleLibrary()
    (backbone,) = before.backbones.values()
    refined.add_backbone(backbone)
    for style_id, style in before.styles.items():
        params = {k: v.clone() for k, v in style.params.items()}
        if style_id == "a":  # saturated: one flat colour
            params["norm5.shift"] = torch.full_like(params["norm5.shift"], 50.0)
        else:  # moved a little: a real refinement
            params["norm5.shift"] = params["norm5.shift"] + 0.1
        refined.add_style(Style(style_id, style.backbone, params, {"refined": True}))
    args = build.main_parser().parse_args(["refine", "--data", str(tmp_path)])
    kept = build.lively(refined, before, args)
    assert kept.styles["a"] is before.styles["a"]
    assert kept.styles["b"] is refined.styles["b"]


BLOCKED = "raise ModuleNotFoundError(f'{__name__} is blocked: the GPU machine has none', name=__name__)\n"


def without_av_and_bentoml(tmp_path) -> dict:
    """An environment where `import av` and `import bentoml` fail, as on the lent GPU machine."""
    blocker = tmp_path / "blocked-imports"
    blocker.mkdir(exist_ok=True)
    for name in ("av", "bentoml"):
        (blocker / f"{name}.py").write_text(BLOCKED)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}


def test_the_training_entry_points_import_neither_pyav_nor_bentoml(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'training'); import build_catalogue, pack_for_device; "
        "import clipmorph.training.trainer, clipmorph.training.distill, clipmorph.training.evaluate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('av', 'bentoml')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=without_av_and_bentoml(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    check = subprocess.run(  # the blocker itself works: the video half still needs PyAV
        [sys.executable, "-c", "from clipmorph.inference.media import VideoReader"],
        capture_output=True, text=True, cwd=REPO, env=without_av_and_bentoml(tmp_path),
    )  # fmt: skip
    assert check.returncode != 0 and "av is blocked" in check.stderr


def test_the_gpu_session_script_trains_with_the_teacher_and_exports_without_pyav_or_bentoml(tmp_path, vgg_assets):
    """training/gpu_session.sh end to end on the CPU with a tiny budget: pack (with teacher
    renderings), then the script, with PyAV and BentoML unimportable as on the GPU machine."""
    import numpy as np

    from clipmorph.styles import catalogue
    from clipmorph.training.pictures import load_rgb
    from clipmorph.training.teacher import render_missing

    data = tmp_path / "data"
    ids = stand_in_data(data, photos=2)
    photos = sorted((data / "content").rglob("*.png"))
    teacher = tmp_path / "teacher"
    render_missing(teacher, dict.fromkeys(ids), photos, lambda rgb, _: np.flipud(rgb).copy(), load_rgb)
    env = {**os.environ, "CLIPMORPH_CACHE": str(vgg_assets[1].parent)}
    pack = tmp_path / "pack"
    packed = subprocess.run(
        [sys.executable, str(REPO / "training" / "pack_for_device.py"), "--data", str(data), "--out", str(pack),
         "--photos", "8", "--photo-side", "64", "--teacher-dir", str(teacher)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    assert "168 teacher renderings" in packed.stdout  # 8 photos x 21 styles
    out = tmp_path / "out"
    env = without_av_and_bentoml(tmp_path) | {
        "OUT": str(out), "PACK": str(pack), "PYTHON": sys.executable, "RUNS": str(tmp_path / "runs"),
        "BATCH": "2", "WORKERS": "0", "IMAGE_SIZE": "32", "CROPS": "device",
    }  # fmt: skip
    session = subprocess.run(
        ["bash", str(REPO / "training" / "gpu_session.sh"), "1", "1e6", "--", "--steps", "3"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip
    log = (out / "session.log").read_text()
    assert session.returncode == 0, session.stderr + log
    assert "throughput:" in log and "crops/s" in log
    (archive,) = out.glob("full-teacher-1e6.tgz")
    subprocess.run(["tar", "xzf", str(archive), "-C", str(tmp_path)], check=True)
    exported = catalogue.read_catalogue(tmp_path / "export")
    assert sorted(exported.styles) == sorted(ids)
    trained = exported.styles["scream"].metadata["training"]
    assert trained["teacher_weight"] == 1e6 and trained["steps"] == 3


def test_report_measures_a_finished_catalogue_again_without_moving_a_weight(tmp_path, vgg_assets, monkeypatch):
    """`build_catalogue.py report`: full and lite evaluated again (stripes included), the REPORT,
    sheet and each style's evaluation rewritten, the weights untouched."""
    import torch

    from clipmorph.model.network import WIDTHS, TransformerNet
    from clipmorph.styles import catalogue
    from clipmorph.styles.library import StyleLibrary

    from media_factory import make_video

    data = tmp_path / "data"
    ids = stand_in_data(data, photos=1)[:2]  # two styles keep it short; the stage takes any catalogue
    (data / "content" / "sun-hays80").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(gradient_frame(64, 48, t=i)).save(data / "content" / "sun-hays80" / f"{i}.jpg")
    (data / "videos").mkdir()
    make_video(data / "videos" / "ski.mov", frames=4, audio_codec=None)
    run = {
        "mode": "from-scratch", "steps": 3, "batch_size": 2, "image_size": 32, "seconds": 6.0, "device": "cpu",
        "precision": "float32", "content_images": 4, "style_weight": 1.5, "content_weight": 1.0, "tv_weight": 1e3,
        "noise_weight": 0.0, "warp_weight": 0.0, "lr": 1e-3,
    }  # fmt: skip
    torch.manual_seed(0)
    shipped = StyleLibrary()
    for width, name, suffix in [("full", "catalogue-full", ""), ("lite", "catalogue-lite", "-lite")]:
        record = run | {"mode": "distilled"} if width == "lite" else run
        library = StyleLibrary.from_network(
            TransformerNet(WIDTHS[width], len(ids)), name, [i + suffix for i in ids], {"training": record},
            [{"training": record, "style_image": f"{i}.jpg", "mark_scale": 3.0}
             | ({"full_id": i} if width == "lite" else {}) for i in ids],
        )  # fmt: skip
        shipped.merge(library)
    models = tmp_path / "models"
    catalogue.write_catalogue(shipped, models)
    monkeypatch.setenv("CLIPMORPH_CACHE", str(vgg_assets[1].parent))
    build = build_catalogue_module()
    # The list names a mark scale for the first style only: shipping stamps it on full and lite
    # and takes the stale one off the other.
    listing = re.sub(r"(?m)^mark_scale = .*\n", "", (REPO / "training" / "catalogue.toml").read_text())
    listing = listing.replace(f'id = "{ids[0]}"\n', f'id = "{ids[0]}"\nmark_scale = 2.0\n', 1)
    (tmp_path / "catalogue.toml").write_text(listing)
    monkeypatch.setattr(build, "CATALOGUE", tmp_path / "catalogue.toml")
    assert build.main(["report", "--data", str(data), "--models", str(models), "--eval-photos", "2",
                       "--eval-frames", "3"]) == 0  # fmt: skip
    report = (models / "REPORT.md").read_text()
    assert "| blobs (painting's) | stripes (photos striped) | loops /100k px (painting's) |" in report
    assert "`lite` backbone: distilled from it, 3 steps" in report
    assert (models / "contact-sheet.jpg").is_file()
    again = catalogue.read_catalogue(models)
    for style_id, style in shipped.styles.items():
        measured = again.styles[style_id].metadata["evaluation"]
        wanted = {"stripes", "striped", "blobs", "painting_blobs", "loops", "warping_error_ratio"}
        assert wanted <= set(measured), style_id
        assert all(torch.equal(style.params[k], again.styles[style_id].params[k]) for k in style.params)
    scales = {style_id: style.metadata.get("mark_scale") for style_id, style in again.styles.items()}
    assert scales == {ids[0]: 2.0, f"{ids[0]}-lite": 2.0, ids[1]: None, f"{ids[1]}-lite": None}


def test_a_catalogue_written_into_models_updates_the_bentofiles_model_lists(tmp_path, monkeypatch):
    build = build_catalogue_module()
    calls = []
    monkeypatch.setattr(build.subprocess, "run", lambda command, check: calls.append(command))
    build.name_in_bentofiles(tmp_path / "models")  # a catalogue elsewhere is not what the bento packs
    assert calls == []
    build.name_in_bentofiles(REPO / "models")
    assert len(calls) == 1 and calls[0][-1] == str(REPO / "deploy" / "bento_models.py")


def test_a_catalogue_with_a_gallery_gets_it_drawn_again_when_written(tmp_path, monkeypatch, capsys):
    """`finish`/`report` redraw models/gallery from the networks they just wrote (a stale gallery
    showed the styles as they were); a catalogue without one draws none; a failed drawing says so."""
    from types import SimpleNamespace

    build = build_catalogue_module()
    calls = []
    monkeypatch.setattr(
        build.subprocess, "run", lambda command, check: calls.append(command) or SimpleNamespace(returncode=1)
    )
    build.redraw_gallery(tmp_path, tmp_path / "data")
    assert calls == []
    (tmp_path / "gallery").mkdir()
    (tmp_path / "gallery" / "monet.jpg").write_bytes(b"")
    build.redraw_gallery(tmp_path, tmp_path / "data")
    [command] = calls
    assert command[1].endswith("gallery.py") and command[command.index("--models") + 1] == str(tmp_path)
    assert command[command.index("--out") + 1] == str(tmp_path / "gallery")
    assert "could not be drawn again" in capsys.readouterr().out


def test_the_gallerys_detail_sheet_shows_the_middle_of_each_picture_at_one_to_one(tmp_path):
    """The gallery's cells are scaled down, which hides stripes; its detail sheet shows every
    picture's middle pixel for pixel (enlarged by repeating pixels, none smoothed away)."""
    import numpy as np

    gallery = training_script("gallery")
    side, zoom = gallery.DETAIL, gallery.ZOOM
    wide, small = gradient_frame(384, 256, t=0.3), gradient_frame(100, 90, t=0.7)
    sheet = np.asarray(gallery.detail_sheet([[(wide, "photo"), (small, "ours")], [(small, "photo")]]))
    cell = side * zoom
    assert sheet.shape == (2 * (cell + 18), 2 * cell, 3)
    top, left = (256 - side) // 2, (384 - side) // 2
    expected = wide[top : top + side, left : left + side].repeat(zoom, axis=0).repeat(zoom, axis=1)
    assert np.array_equal(sheet[:cell, :cell], expected)
    shown = sheet[: 90 * zoom, cell : cell + 100 * zoom]  # smaller than a cell: all of it
    assert np.array_equal(shown, small.repeat(zoom, axis=0).repeat(zoom, axis=1))
    assert (sheet[cell + 18 :, cell:] == 255).all()  # a shorter row leaves the rest blank


def test_the_lite_refinement_takes_its_own_style_weights_where_the_list_gives_them(tmp_path, monkeypatch):
    """[refine.lite_style_weight] replaces [refine.style_weight] for the lite student's styles
    only; a style it does not name keeps the shared multiplier."""
    build = build_catalogue_module()
    listing = tmp_path / "catalogue.toml"
    listing.write_text(
        "[refine.style_weight]\nklimt = 16.0\nscream = 16.0\n\n[refine.lite_style_weight]\nklimt = 6.0\n"
    )
    monkeypatch.setattr(build, "CATALOGUE", listing)
    assert build.refine_weights() == {"klimt": 16.0, "scream": 16.0}
    assert build.refine_weights(lite=True) == {"klimt": 6.0, "scream": 16.0}
