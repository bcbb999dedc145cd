"""Tiny end-to-end training runs (a few steps on generated pictures): from scratch, resume,
Ctrl-C, add-a-style, W&B offline, and `clipmorph eval` on the result."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from clipmorph.training.penalties import STYLE_PENALTIES

from conftest import TINY, run_cli
from media_factory import gradient_frame, make_video


def tiny_config(pictures, checkpoint_dir, steps, **extra):
    from clipmorph.training.config import StyleSource, TrainConfig

    styles = [StyleSource("stripes", pictures / "stripes.png"), StyleSource("checks", pictures / "checks.png")]
    options = dict(width="lite", image_size=32, style_size=64, batch_size=2, workers=0, wandb=False)
    return TrainConfig(styles, pictures / "photos", checkpoint_dir, steps=steps, **(options | extra))


def test_resumed_training_matches_an_uninterrupted_run(pictures, vgg_env, tmp_path, monkeypatch):
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    straight = train(tiny_config(pictures, tmp_path / "a", steps=4), show_bar=False)
    first = train(tiny_config(pictures, tmp_path / "b", steps=2), show_bar=False)
    assert first.step == 2 and (tmp_path / "b" / "checkpoint.pt").is_file()
    resumed = train(tiny_config(pictures, tmp_path / "b", steps=4), resume=True, show_bar=False)
    assert straight.finished and resumed.finished and resumed.step == 4
    (a_backbone,) = straight.library.backbones.values()
    (b_backbone,) = resumed.library.backbones.values()
    for key, value in a_backbone.state.items():
        assert torch.allclose(value, b_backbone.state[key], atol=1e-5), key
    initial = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert initial["step"] == 4 and initial["optimizer"]["state"]  # Adam moments travel too
    # The training moved the weights and recorded how the styles were made.
    meta = straight.library.styles["stripes"].metadata
    assert meta["training"]["steps"] == 4 and meta["training"]["mode"] == "from-scratch"
    assert meta["training"]["device"].startswith("cpu") and meta["style_image"] == "stripes.png"
    assert {"style", "content", "tv", "noise", "warp"} <= set(meta["final_losses"])
    assert (tmp_path / "a" / "samples").is_dir()


def test_resume_refuses_a_checkpoint_of_other_styles(pictures, vgg_env, tmp_path, monkeypatch):
    from clipmorph.errors import BadInput
    from clipmorph.training.config import StyleSource
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    train(tiny_config(pictures, tmp_path, steps=1), show_bar=False)
    other = tiny_config(pictures, tmp_path, steps=2)
    other.styles = [StyleSource("mirror", pictures / "mirror.png"), *other.styles[1:]]
    with pytest.raises(BadInput, match="different styles"):
        train(other, resume=True, show_bar=False)


def test_resume_refuses_a_checkpoint_trained_with_other_loss_weights_and_names_them(
    pictures, vgg_env, tmp_path, monkeypatch
):
    from dataclasses import replace

    from clipmorph.errors import BadInput
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    train(tiny_config(pictures, tmp_path, steps=1), show_bar=False)
    heavier = tiny_config(pictures, tmp_path, steps=2)
    heavier.styles[1] = replace(heavier.styles[1], style_weight=4.0)
    with pytest.raises(BadInput, match=r"checks style_weight: 1\.0 -> 4\.0"):
        train(heavier, resume=True, show_bar=False)
    with pytest.raises(BadInput, match=r"tv_weight: 1000\.0 -> 0\.0.*move the checkpoint's folder away"):
        train(tiny_config(pictures, tmp_path, steps=2, tv_weight=0.0), resume=True, show_bar=False)
    # More steps, minutes or another learning rate are what a later chunk may ask for.
    assert train(tiny_config(pictures, tmp_path, steps=2, lr=5e-4), resume=True, show_bar=False).step == 2


def test_a_run_started_from_an_exported_catalogue_begins_at_its_weights_and_keeps_its_history(
    pictures, vgg_env, tmp_path, monkeypatch
):
    from clipmorph.errors import BadInput
    from clipmorph.styles import catalogue
    from clipmorph.training.config import StyleSource
    from clipmorph.training.trainer import Trainer, train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    first = train(tiny_config(pictures, tmp_path / "first", steps=2), show_bar=False)
    catalogue.write_catalogue(first.library, tmp_path / "exported")
    exported = catalogue.read_catalogue(tmp_path / "exported")
    (backbone,) = exported.backbones.values()
    # A new style joins the known ones: it starts at their mean, the known ones where they were.
    styles = [StyleSource("checks", pictures / "checks.png"), StyleSource("mirror", pictures / "mirror.png")]
    config = tiny_config(pictures, tmp_path / "second", steps=3, init_from=tmp_path / "exported", style_weight=1.0)
    config.styles = styles
    net = Trainer(config).net
    start = net.state_dict()
    for key, value in backbone.state.items():
        assert torch.allclose(start[key], value.float()), key
    checks, stripes = exported.styles["checks"].params, exported.styles["stripes"].params
    for key, value in checks.items():
        assert torch.allclose(net.style_state(0)[key], value.float()), key
        assert torch.allclose(net.style_state(1)[key], (value.float() + stripes[key].float()) / 2), key
    second = train(config, show_bar=False)
    record = second.library.styles["mirror"].metadata["training"]
    assert record["steps"] == 3 and record["total_steps"] == 5 and record["style_weight"] == 1.0
    assert record["started_from"]["training"]["steps"] == 2 and record["started_from"]["training"]["style_weight"] == 5
    with pytest.raises(BadInput, match="pick one"):
        tiny_config(pictures, tmp_path / "x", steps=1, init_from=tmp_path / "exported", add_to="catalogue-full")


def test_a_run_can_move_an_instance_norm_catalogue_to_mean_norm_and_keeps_each_styles_history(
    pictures, vgg_env, tmp_path, monkeypatch
):
    from clipmorph.styles import catalogue
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    first = train(tiny_config(pictures, tmp_path / "first", steps=2), show_bar=False)
    catalogue.write_catalogue(first.library, tmp_path / "exported")
    config = tiny_config(pictures, tmp_path / "second", steps=2, init_from=tmp_path / "exported", norm="mean")
    second = train(config, show_bar=False)
    (backbone,) = second.library.backbones.values()
    assert backbone.spec.norm == "mean" and backbone.metadata["training"]["norm"] == "mean"
    record = second.library.styles["checks"].metadata["training"]
    assert record["total_steps"] == 4 and record["started_from"]["training"]["steps"] == 2
    catalogue.write_catalogue(second.library, tmp_path / "moved")
    assert catalogue.read_catalogue(tmp_path / "moved").backbones[backbone.key].spec.norm == "mean"


def test_a_stopped_run_records_the_steps_it_took_and_a_resume_keeps_where_it_started(
    pictures, vgg_env, tmp_path, monkeypatch
):
    from clipmorph.styles import catalogue
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    catalogue.write_catalogue(
        train(tiny_config(pictures, tmp_path / "a", steps=1), show_bar=False).library, tmp_path / "x"
    )
    asked = iter(range(100))
    config = tiny_config(pictures, tmp_path / "b", steps=50, init_from=tmp_path / "x")
    stopped = train(config, should_stop=lambda: next(asked) >= 2, show_bar=False)
    record = stopped.library.styles["checks"].metadata["training"]
    assert not stopped.finished and record["steps"] == 2 and record["planned_steps"] == 50
    # Reading the checkpoint back without --init-from (as `finish` does) still says where it began.
    again = train(tiny_config(pictures, tmp_path / "b", steps=2), resume=True, show_bar=False)
    record = again.library.styles["checks"].metadata["training"]
    assert record["started_from"]["catalogue"] == str(tmp_path / "x") and record["total_steps"] == 3


def test_a_style_is_added_to_a_backbone_held_in_hand_without_the_store(pictures, vgg_env, tmp_path, monkeypatch):
    from clipmorph.training.config import StyleSource
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    base = train(tiny_config(pictures, tmp_path / "a", steps=1), show_bar=False).library
    (backbone,) = base.backbones.values()
    monkeypatch.setattr("clipmorph.styles.store.backbone_library", lambda name: pytest.fail("the store was asked"))
    config = tiny_config(pictures, tmp_path / "b", steps=2, add_to=backbone.name)
    config.styles = [StyleSource("mirror", pictures / "mirror.png")]
    result = train(config, base=base, show_bar=False)
    (added,) = result.library.styles.values()
    assert added.id == "mirror" and added.backbone == backbone.key
    (kept,) = result.library.backbones.values()
    assert kept.state is backbone.state  # the backbone in hand, frozen


def test_refining_a_style_the_backbone_has_starts_from_its_vectors_and_continues_its_record(
    pictures, vgg_env, tmp_path, monkeypatch
):
    from clipmorph.training.trainer import Trainer, train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    base = train(tiny_config(pictures, tmp_path / "a", steps=2), show_bar=False).library
    (backbone,) = base.backbones.values()
    config = tiny_config(pictures, tmp_path / "b", steps=3, add_to=backbone.name, style_weight=20.0, lr=0.02)
    config.styles = [replace(config.styles[0], style_weight=8.0)]  # stripes only, with its own multiplier
    before = base.styles["stripes"].params
    start = Trainer(config, base=base).net.style_state(0)
    for key, value in before.items():
        assert torch.equal(start[key], value.float()), key
    result = train(config, base=base, show_bar=False)
    (refined,) = result.library.styles.values()
    assert refined.id == "stripes" and refined.backbone == backbone.key
    assert any(not torch.equal(refined.params[k], before[k]) for k in before)  # it learned
    record = refined.metadata["training"]
    assert record["mode"] == "refine" and record["steps"] == 3 and record["total_steps"] == 5
    assert record["style_weight"] == 20.0 and record["started_from"]["training"]["style_weight"] == 5
    # each run on record keeps the style's multiplier of that run (the REPORT multiplies them)
    assert record["style_loss_weight"] == 8.0 and record["started_from"]["training"]["style_loss_weight"] == 1.0
    base.merge(result.library)  # the catalogue's way: the other style is untouched
    assert base.styles["stripes"] is refined and base.styles["checks"].metadata["training"]["mode"] == "from-scratch"


@pytest.fixture
def cleanup_styles():
    """Styles a test trains into the session store are removed again (the session server serves it)."""
    from clipmorph.styles import index

    created: list[str] = []
    yield created
    for style_id in created:
        index.delete_style(style_id)


def test_cli_trains_into_the_store_then_adds_a_style_on_the_frozen_backbone(
    pictures, vgg_env, tmp_path, cleanup_styles
):
    from clipmorph.styles import store

    cleanup_styles += ["stripes", "checks", "mirror"]
    photos = str(pictures / "photos")
    stripes, checks = str(pictures / "stripes.png"), str(pictures / "checks.png")
    result = run_cli(
        "train", stripes, checks, "--content", photos, "--name", "tiny", "--steps", "3", "--no-wandb", "-q",
        "--checkpoint-dir", str(tmp_path / "scratch"), *TINY, env=vgg_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "trained 3 steps" in result.stdout and "+ clipmorph-backbone-tiny:" in result.stdout
    library = store.load_library(["stripes", "checks"])
    (backbone,) = library.backbones.values()
    import hashlib

    assert (
        library.styles["checks"].metadata["style_image_sha256"]
        == hashlib.sha256((pictures / "checks.png").read_bytes()).hexdigest()
    )

    started = time.monotonic()
    result = run_cli(
        "train", str(pictures / "mirror.png"), "--id", "mirror", "--add-to", "tiny", "--content", photos,
        "--steps", "3", "--lr", "0.01", "--no-wandb", "-q", "--checkpoint-dir", str(tmp_path / "add"), *TINY,
        env=vgg_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    print(f"add-a-style, 3 tiny steps, whole command: {time.monotonic() - started:.1f} s")
    added = store.load_library(["mirror", "stripes"])
    assert set(added.backbones) == {backbone.key}  # same backbone, bit for bit
    mirror = added.styles["mirror"]
    assert mirror.metadata["training"]["mode"] == "add-style"
    assert not torch.allclose(mirror.params["norm1.scale"], library.styles["stripes"].params["norm1.scale"])

    photo = tmp_path / "photo.png"
    Image.fromarray(gradient_frame(64, 48)).save(photo)
    out = tmp_path / "out.png"
    result = run_cli("stylize", str(photo), str(out), "--style", "mirror")
    assert result.returncode == 0, result.stderr

    result = run_cli(
        "eval", "--style", "stripes", "--style", "mirror", "--photos", photos, "--styles-dir", str(pictures),
        "--video", str(make_video(tmp_path / "clip.mp4", frames=6, audio_codec=None)), "--frames", "6",
        "--out", str(tmp_path / "eval"), env=vgg_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    rows = {row["style"]: row for row in report["styles"]}
    assert set(rows) == {"stripes", "mirror"} and report["run"]["video_frames"] == 6
    for row in rows.values():
        assert row["style_distance_ratio"] > 0 and row["content_distance"] > 0
        assert row["warping_error_ratio"] > 0 and np.isfinite(row["warping_error"])
        assert isinstance(row["droplets"], int) and row["droplets"] >= 0
    table = (tmp_path / "eval" / "eval.md").read_text()
    assert "| stripes | 3 | cpu" in table and "| droplets |" in table
    with Image.open(tmp_path / "eval" / "contact-sheet.jpg") as sheet:
        assert sheet.height == 3 * 256  # photos row + two styles


def test_ctrl_c_saves_a_checkpoint_to_resume_from(pictures, vgg_env, tmp_path):
    command = [
        sys.executable, "-m", "clipmorph.cli", "train", str(pictures / "stripes.png"), "--content",
        str(pictures / "photos"), "--steps", "100000", "--no-wandb", "--checkpoint-dir", str(tmp_path),
        "--sample-every", "1", *TINY,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env={**os.environ, **vgg_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "samples").is_dir() and time.monotonic() < deadline:  # the first step is done
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "--resume" in stderr
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert 1 <= state["step"] < 100000


def test_wandb_offline_without_a_key_logs_losses_and_sample_grids(pictures, vgg_env, tmp_path, monkeypatch):
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc credentials either
    result = train(tiny_config(pictures, tmp_path, steps=2, wandb=True, sample_every=1, log_every=1), show_bar=False)
    assert result.finished
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))
    assert list((runs[0] / "files" / "media" / "images").glob("samples_*.png"))


def test_distilling_a_backbone_gives_a_lite_student_with_its_own_record(pictures, vgg_env, tmp_path, monkeypatch):
    from clipmorph.inference.engine import Engine
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.model.network import WIDTHS
    from clipmorph.training.distill import distill, rename_styles
    from clipmorph.training.record import total_steps
    from clipmorph.training.trainer import train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    teacher = train(tiny_config(pictures, tmp_path / "t", steps=2, width="full"), show_bar=False).library
    result = distill(teacher, [pictures / "photos"], steps=3, batch_size=2, image_size=32, workers=0)
    lite = rename_styles(result.library, "-lite")
    assert result.steps == 3 and sorted(lite.styles) == ["checks-lite", "stripes-lite"]
    record = lite.styles["checks-lite"].metadata["training"]
    assert record["mode"] == "distilled" and total_steps(record) == 3 and record["width"] == "lite"
    assert record["teacher_training"]["steps"] == 2 and record["teacher"] in teacher.backbones
    (backbone,) = lite.backbones.values()
    assert backbone.spec == WIDTHS["lite"] and backbone.key not in teacher.backbones
    [out] = Engine(lite).stylize_frames(
        [np.zeros((40, 48, 3), np.uint8)], StylizeOptions(StyleMix.single("checks-lite"))
    )
    assert out.shape == (40, 48, 3)

    # A later distillation goes on from this student (the shipped lite), not from scratch.
    frame = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    options = StylizeOptions(StyleMix.single("checks-lite"))
    again = rename_styles(distill(teacher, [pictures / "photos"], steps=0, workers=0, start=lite).library, "-lite")
    assert np.array_equal(
        Engine(again).stylize_frames([frame], options)[0], Engine(lite).stylize_frames([frame], options)[0]
    )
    more = distill(teacher, [pictures / "photos"], steps=2, batch_size=2, image_size=32, workers=0, start=lite)
    record = next(iter(more.library.backbones.values())).metadata["training"]
    assert record["continued_from_steps"] == 3 and total_steps(record) == 5


def test_a_style_with_its_own_painting_size_gets_gram_targets_and_a_record_of_that_size(
    pictures, vgg_env, tmp_path, monkeypatch
):
    """catalogue.toml's per-style ``style_size``: the smaller a painting, the larger its marks
    come out; the other styles keep the run's size."""
    from clipmorph.training.trainer import Trainer, train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    config = tiny_config(pictures, tmp_path, steps=1, style_size=64)
    config.styles = [replace(config.styles[0], style_size=32), config.styles[1]]
    stripes, checks = Trainer(config)._paintings()
    assert max(stripes.shape[-2:]) == 32 and max(checks.shape[-2:]) == 64
    result = train(config, show_bar=False)
    assert result.library.styles["stripes"].metadata["training"]["style_size"] == 32
    assert result.library.styles["checks"].metadata["training"]["style_size"] == 64


def test_a_style_with_its_own_coarse_scales_takes_the_coarse_term_and_the_others_do_not(
    pictures, vgg_env, tmp_path, monkeypatch
):
    """catalogue.toml's per-style ``coarse_scales``: that style's painting is also matched at
    half size, the others (the run's default: none) only at theirs; both are recorded."""
    from clipmorph.training.trainer import Trainer, train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    config = tiny_config(pictures, tmp_path, steps=1, style_size=64)
    config.styles = [replace(config.styles[0], coarse_scales=(0.5,)), config.styles[1]]
    objective = Trainer(config).objective
    assert list(objective.coarse) == [0.5] and objective.coarse_users[0.5].tolist() == [1.0, 0.0]
    result = train(config, show_bar=False)
    assert result.library.styles["stripes"].metadata["training"]["coarse_scales"] == [0.5]
    assert "coarse_scales" not in result.library.styles["checks"].metadata["training"]


@pytest.mark.parametrize("penalty", STYLE_PENALTIES, ids=lambda p: p.loss)
def test_a_style_with_its_own_penalty_weight_takes_the_term_and_the_others_do_not(
    pictures, vgg_env, tmp_path, monkeypatch, penalty
):
    """catalogue.toml's per-style penalty weights (``calm_weight``, ``line_weight``, ...): only
    images of that style pay the term (the run's weight: none); the weight is in its record, not
    the other's; a negative weight is refused."""
    from clipmorph.errors import BadInput
    from clipmorph.training.trainer import Trainer, train

    setting, term, excess = penalty.setting, penalty.loss, penalty.excess
    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    config = tiny_config(pictures, tmp_path, steps=1, style_size=64)
    config.styles = [replace(config.styles[0], **{setting: 1e6}), config.styles[1]]
    trainer = Trainer(config)
    ramp = torch.linspace(0.2, 0.8, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32)  # calm all over
    content = (ramp * torch.tensor([1.0, 0.5, 1.0]).view(1, 3, 1, 1)).contiguous()
    content[..., 8:24, 12:14] = 0.05  # a dark line the photo draws: only the output's other lines cost
    with torch.no_grad():
        output = trainer.forward(content, torch.tensor([0, 1]))
        both = trainer.losses(content, torch.tensor([0, 1]), [0, 1])[term]
        others = trainer.losses(content, torch.tensor([1, 1]), [1, 3])[term]
    expected = 1e6 * excess(output, content)[0] / 2  # the batch mean, the second image weighing 0
    assert float(both) == pytest.approx(float(expected), rel=0.05) and float(both) > 0  # autocast: bf16 here
    assert float(others) == 0.0
    result = train(config, show_bar=False)
    assert result.library.styles["stripes"].metadata["training"][setting] == 1e6
    with pytest.raises(BadInput, match=f"{penalty.title}'s weight must be >= 0"):
        tiny_config(pictures, tmp_path, steps=1, **{setting: -1.0})
    assert setting not in result.library.styles["checks"].metadata["training"]


def test_a_style_taken_in_any_direction_gets_turned_targets_and_a_record_of_it(
    pictures, vgg_env, tmp_path, monkeypatch
):
    """catalogue.toml's per-style ``any_direction``: that painting's Gram targets are the mean
    over it turned every 45 degrees (they differ from its own), the other style's are its own."""
    from clipmorph.training.objective import STYLE_LAYERS, painting_grams
    from clipmorph.training.trainer import Trainer, train

    monkeypatch.setenv("CLIPMORPH_CACHE", vgg_env["CLIPMORPH_CACHE"])
    config = tiny_config(pictures, tmp_path, steps=1, style_size=64)
    config.styles = [replace(config.styles[0], any_direction=True), config.styles[1]]
    trainer = Trainer(config)
    stripes, checks = trainer._paintings()
    own = painting_grams(trainer.objective.vgg, [stripes, checks])
    for layer in STYLE_LAYERS:
        assert not torch.allclose(trainer.objective.targets[layer][0], own[layer][0])
        assert torch.allclose(trainer.objective.targets[layer][1], own[layer][1])
    result = train(config, show_bar=False)
    assert result.library.styles["stripes"].metadata["training"]["any_direction"] is True
    assert "any_direction" not in result.library.styles["checks"].metadata["training"]


@pytest.mark.parametrize("penalty", STYLE_PENALTIES, ids=lambda p: p.loss)
def test_a_negative_penalty_weight_is_refused_the_runs_as_well_as_a_styles_own(tmp_path, penalty):
    """The run's weight is checked even where every style has its own (it is recorded with the run)."""
    from clipmorph.errors import BadInput
    from clipmorph.training.config import StyleSource, TrainConfig

    own = StyleSource("own", tmp_path / "painting.jpg", **{penalty.setting: 1.0})
    settings = {"content": [tmp_path], "checkpoint_dir": tmp_path / "run"}
    with pytest.raises(BadInput, match=f"{penalty.title}'s weight must be >= 0"):
        TrainConfig(styles=[own], **settings, **{penalty.setting: -1.0})
    with pytest.raises(BadInput, match=f"{penalty.title}'s weight must be >= 0"):
        TrainConfig(styles=[replace(own, **{penalty.setting: -1.0})], **settings)
    assert TrainConfig(styles=[own], **settings).penalty_weight_of(own, penalty.setting) == 1.0
