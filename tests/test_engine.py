import numpy as np
import pytest
import torch

from clipmorph.errors import BadInput, UnknownStyle
from clipmorph.inference.engine import Engine, pick_dtype
from clipmorph.inference.options import PAINT_SIDE, StyleMix, StylizeOptions, work_size
from clipmorph.model.color import rgb_to_ycc
from clipmorph.styles.library import Style, StyleLibrary

from conftest import random_library
from media_factory import gradient_frame


@pytest.fixture(scope="module")
def engine(library):
    return Engine(library, device="cpu", dtype="float32", batch_size=3)


def opts(style="rand-0", **kwargs):
    return StylizeOptions(StyleMix.parse(style), **kwargs)


def with_metadata(library: StyleLibrary, extra: dict[str, dict]) -> StyleLibrary:
    """The same networks, with ``extra[style_id]`` added to those styles' metadata."""
    changed = StyleLibrary()
    for backbone in library.backbones.values():
        changed.add_backbone(backbone)
    for style in library.styles.values():
        meta = style.metadata | extra.get(style.id, {})
        changed.add_style(Style(style.id, style.backbone, style.params, meta))
    return changed


def test_output_keeps_size_and_differs_per_style(engine):
    frame = gradient_frame(70, 45)
    a, b = engine.stylize_frames([frame, frame], [opts("rand-0"), opts("rand-1")])
    assert a.shape == b.shape == frame.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_mixed_batch_equals_one_by_one(engine):
    frames = [gradient_frame(64, 48, t) for t in range(5)] + [gradient_frame(40, 40)]
    options = [opts("rand-0"), opts("rand-1"), opts("rand-0=0.3,rand-1=0.7"), opts("rand-1", strength=0.5),
               opts("rand-0", preserve_color=True), opts("rand-1")]  # fmt: skip
    together = engine.stylize_frames(frames, options)
    for frame, option, out in zip(frames, options, together, strict=True):
        [alone] = engine.stylize_frames([frame], option)
        assert np.abs(alone.astype(int) - out.astype(int)).max() <= 1


def test_strength_zero_is_the_input_and_half_is_between(engine):
    frame = gradient_frame(48, 32)
    [same] = engine.stylize_frames([frame], opts(strength=0.0))
    assert np.array_equal(same, frame)
    [full] = engine.stylize_frames([frame], opts(strength=1.0))
    [half] = engine.stylize_frames([frame], opts(strength=0.5))
    expected = (frame.astype(float) + full.astype(float)) / 2
    assert np.abs(half - expected).max() <= 1.0


def test_preserve_color_keeps_the_input_chroma(engine):
    frame = gradient_frame(48, 48)
    [plain] = engine.stylize_frames([frame], opts())
    [kept] = engine.stylize_frames([frame], opts(preserve_color=True))
    to_ycc = lambda a: rgb_to_ycc(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255)  # noqa: E731
    original, plain_ycc, kept_ycc = to_ycc(frame), to_ycc(plain), to_ycc(kept)
    chroma_error = (kept_ycc[:, 1:] - original[:, 1:]).abs().mean()
    assert chroma_error < 0.02 < (plain_ycc[:, 1:] - original[:, 1:]).abs().mean()
    assert (kept_ycc[:, 0] - plain_ycc[:, 0]).abs().mean() < 0.02  # luminance is the stylized one


def test_max_side_shrinks_and_keep_size_scales_back(engine):
    frame = gradient_frame(200, 100)
    [kept] = engine.stylize_frames([frame], opts(max_side=64))
    [small] = engine.stylize_frames([frame], opts(max_side=64, keep_size=False))
    assert kept.shape == (100, 200, 3) and small.shape == (32, 64, 3)
    assert work_size(3000, 4000, 1920) == (1440, 1920) and work_size(10, 20, None) == (10, 20)


def test_a_large_picture_is_painted_at_the_paint_side_unless_asked(engine):
    """By default the marks keep their proportion to the picture: a picture larger than the
    paint side is painted at it and enlarged; ``max_side=None`` paints at the picture's own size."""
    frame = gradient_frame(PAINT_SIDE + 232, 500)
    [painted] = engine.stylize_frames([frame], opts(keep_size=False))
    [enlarged] = engine.stylize_frames([frame], opts())
    [own_size] = engine.stylize_frames([frame], opts(max_side=None))
    assert painted.shape == (384, PAINT_SIDE, 3) and enlarged.shape == own_size.shape == frame.shape
    assert np.abs(enlarged.astype(int) - own_size.astype(int)).mean() > 1  # painted at two sizes, not one


def test_a_style_with_larger_marks_paints_large_pictures_smaller(library):
    """A style's ``mark_scale`` (2 here) divides the side a large picture is painted at: the
    default paint side, a caller's own ``max_side`` and a blend's share alike; a picture asked
    at its own size (``max_side=None``), and one already small enough, are painted as they are."""
    engine = Engine(with_metadata(library, {"rand-1": {"mark_scale": 2}}), device="cpu", dtype="float32")
    frame = gradient_frame(PAINT_SIDE + 232, 500)
    [plain, marked, asked, blend, own] = engine.stylize_frames(
        [frame] * 5,
        [opts("rand-0", keep_size=False), opts("rand-1", keep_size=False),
         opts("rand-1", max_side=400, keep_size=False), opts("rand-0=0.5,rand-1=0.5", keep_size=False),
         opts("rand-1", max_side=None, keep_size=False)],
    )  # fmt: skip
    assert plain.shape == (384, PAINT_SIDE, 3) and marked.shape == (192, PAINT_SIDE // 2, 3)
    assert asked.shape == (100, 200, 3) and blend.shape == (256, 512, 3) and own.shape == frame.shape
    [enlarged] = engine.stylize_frames([frame], opts("rand-1"))
    assert enlarged.shape == frame.shape  # enlarged back, as every picture painted smaller is
    [exact] = engine.stylize_frames([frame], opts("rand-1", max_side=400, keep_size=False, scale_marks=False))
    assert exact.shape == (200, 400, 3)  # a live stream's paced size is taken as it is
    small = gradient_frame(300, 200)
    [as_is] = engine.stylize_frames([small], opts("rand-1", keep_size=False))
    assert as_is.shape == small.shape


@pytest.mark.parametrize("value", [0.5, 5, "big", True])
def test_a_mark_scale_out_of_range_is_refused_when_the_styles_load(library, value):
    broken = with_metadata(library, {style_id: {"mark_scale": value} for style_id in library.styles})
    with pytest.raises(BadInput, match="mark_scale must be a number from 1 to 4"):
        Engine(broken, device="cpu")


def test_blend_is_between_its_parts(engine):
    frame = gradient_frame(48, 48)
    a, b, mix = engine.stylize_frames([frame] * 3, [opts("rand-0"), opts("rand-1"), opts("rand-0=1,rand-1=1")])
    distance = lambda x, y: np.abs(x.astype(int) - y.astype(int)).mean()  # noqa: E731
    assert distance(mix, a) < distance(a, b) and distance(mix, b) < distance(a, b)


def test_unknown_style_lists_the_available_ones(engine):
    with pytest.raises(UnknownStyle, match="rand-0, rand-1"):
        engine.stylize_frames([gradient_frame(32, 32)], opts("nope"))


def test_blending_across_backbones_is_refused(library):
    both = random_library("other", num_styles=1, seed=3)
    both.merge(library)
    engine = Engine(both, device="cpu", dtype="float32")
    assert engine.style_ids == ["other-0", "rand-0", "rand-1"]
    with pytest.raises(BadInput, match="different backbones"):
        engine.resolve(StyleMix.parse("other-0,rand-0"))
    # but one batch may still mix styles of different backbones
    outs = engine.stylize_frames([gradient_frame(32, 32)] * 2, [opts("other-0"), opts("rand-1")])
    assert len(outs) == 2


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8, 3), np.uint8), np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32)],
)
def test_bad_frames_are_refused(engine, bad):
    with pytest.raises(BadInput):
        engine.stylize_frames([bad], opts())


@pytest.mark.parametrize("text", ["", "a=x", "a=-1", "a=0,b=0", "a=inf"])
def test_bad_style_mixes_are_refused(text):
    with pytest.raises(BadInput):
        StyleMix.parse(text)


def test_bad_options_are_refused():
    with pytest.raises(BadInput):
        opts(strength=1.5)
    with pytest.raises(BadInput):
        opts(max_side=4)


def test_reduced_precision_stays_close_to_float32(library):
    frame = gradient_frame(96, 64)
    [exact] = Engine(library, device="cpu", dtype="float32").stylize_frames([frame], opts())
    fast_engine = Engine(library, device="cpu", dtype="bfloat16")
    [fast] = fast_engine.stylize_frames([frame], opts())
    assert fast_engine.channels_last
    assert np.abs(exact.astype(int) - fast.astype(int)).mean() < 4


def test_auto_dtype_is_a_supported_one():
    assert pick_dtype(torch.device("cpu")) in (torch.float32, torch.bfloat16)
    with pytest.raises(BadInput):
        pick_dtype(torch.device("cpu"), "int8")


@pytest.mark.slow
def test_fast_paths_match_float32_on_a_real_photo(library, shared_data):
    """bf16 + channels_last, torch.compile and OpenVINO must stay within 40 dB PSNR of fp32 eager."""
    from PIL import Image

    photo = sorted((shared_data / "content" / "set14").glob("*.jpg"))[0]
    frame = np.array(Image.open(photo).convert("RGB").resize((320, 180)))
    options = opts()
    [reference] = Engine(library, device="cpu", dtype="float32").stylize_frames([frame], options)
    for engine in (Engine(library, device="cpu", dtype="bfloat16"),
                   Engine(library, device="cpu", dtype="bfloat16", compile=True),
                   Engine(library, device="cpu", backend="openvino")):  # fmt: skip
        [fast] = engine.stylize_frames([frame], options)
        mse = np.mean((fast.astype(float) - reference.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / mse) >= 40.0, f"{engine.backend} {engine.dtype}"


def test_the_openvino_backend_is_refused_off_the_cpu_and_when_misnamed(library):
    with pytest.raises(BadInput, match="unknown backend 'tensorrt'"):
        Engine(library, device="cpu", backend="tensorrt")
    with pytest.raises(BadInput, match="computes in bfloat16 or float32"):
        Engine(library, device="cpu", dtype="float16", backend="openvino")
    if torch.cuda.is_available():
        with pytest.raises(BadInput, match="runs on the CPU"):
            Engine(library, device="cuda", backend="openvino")


def test_openvino_serves_mixed_sizes_and_style_mixes_like_the_fp32_network(library):
    """One compiled model per input shape; each frame keeps its own size and style weights."""
    frames = [gradient_frame(64, 40), gradient_frame(50, 33), gradient_frame(64, 40, t=1.0)]
    mixes = [opts("rand-0"), opts("rand-0=0.5,rand-1=0.5"), opts("rand-1")]
    reference = Engine(library, device="cpu", dtype="float32").stylize_frames(frames, mixes)
    engine = Engine(library, device="cpu", dtype="float32", backend="openvino")
    for got, want in zip(engine.stylize_frames(frames, mixes), reference, strict=True):
        assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1
    (network,) = engine._compiled.values()
    assert len(network._requests) == 2  # two shapes, each compiled once


def test_openvino_paints_plain_frames_as_uint8_in_its_graph_with_the_same_pixels(library, monkeypatch):
    """Frames needing no resize or blend go in and out of OpenVINO as uint8 (the conversions are
    compiled into its graph); they must be the pixels that the float path through PyTorch gives."""
    from clipmorph.inference import engine as engine_module
    from clipmorph.inference.openvino import OpenVinoNetwork

    frames = [gradient_frame(64, 40), gradient_frame(64, 40, t=1.0)]
    mixes = [opts("rand-0"), opts("rand-0=0.3,rand-1=0.7")]
    engine = Engine(library, device="cpu", backend="openvino")
    handed = []
    original = OpenVinoNetwork.pixels
    monkeypatch.setattr(
        OpenVinoNetwork, "pixels", lambda self, f, w, **sized: handed.append(f.dtype) or original(self, f, w, **sized)
    )
    plain = engine.stylize_frames(frames, mixes)
    assert handed == [np.uint8, np.uint8]
    blended = engine.stylize_frames(frames, [opts("rand-0", strength=0.5)] * 2)  # blends: the float path
    shrunk = engine.stylize_frames(frames, [opts("rand-0", max_side=32)] * 2)  # resizes: the float path
    assert len(handed) == 2 and blended[0].shape == frames[0].shape and shrunk[0].shape == frames[0].shape
    monkeypatch.setattr(engine_module, "_plain", lambda *args: False)
    through_torch = engine.stylize_frames(frames, mixes)
    for fast, slow in zip(plain, through_torch, strict=True):
        assert fast.dtype == np.uint8 and np.abs(fast.astype(int) - slow.astype(int)).max() <= 1


def test_frames_of_every_size_share_one_any_size_model_that_paints_what_each_exact_shape_paints(
    library, monkeypatch, tmp_path
):
    """Uploads come in every size: through the any-size model none of them exports or compiles
    anything new, and each gets the picture its own shape's model paints (bf16 on both sides)."""
    sizes = [(64, 40), (50, 33), (90, 61), (33, 80), (17, 16)]  # odd sides: padded to a multiple of 4 inside
    frames = [gradient_frame(width, height, t=index) for index, (width, height) in enumerate(sizes)]
    mixes = [opts("rand-0"), opts("rand-1", strength=0.6), opts("rand-0=0.5,rand-1=0.5"), opts("rand-1"),
             opts("rand-0", max_side=16)]  # fmt: skip
    monkeypatch.setenv("CLIPMORPH_CACHE", str(tmp_path))  # exports counted from an empty cache
    engine = Engine(library, device="cpu", backend="openvino")
    any_size = engine.stylize_frames(frames, mixes, any_size=True)
    (network,) = engine._compiled.values()
    assert network.exports == 1 and {key[0] for key in network._requests} == {("any",)}
    exact = engine.stylize_frames(frames, mixes)
    assert network.exports == 1 + len(sizes)  # one per shape, for comparison
    for got, want in zip(any_size, exact, strict=True):
        assert got.shape == want.shape
        assert 10 * np.log10(255**2 / max(np.mean((got.astype(float) - want) ** 2), 1e-9)) >= 40


def test_two_networks_exporting_at_once_in_two_threads_both_succeed():
    """torch's ONNX exporter refuses a second export while one runs; the service's threads and
    its backbones must never meet that (one export at a time per process)."""
    from concurrent.futures import ThreadPoolExecutor

    from clipmorph.inference.openvino import OpenVinoNetwork

    from conftest import random_network

    networks = [OpenVinoNetwork(random_network(seed=seed), bf16=False) for seed in (1, 2)]
    frame = np.stack([gradient_frame(48, 32)])
    weights = torch.tensor([[1.0, 0.0]])
    with ThreadPoolExecutor(2) as pool:
        painted = list(pool.map(lambda network: network.pixels(frame, weights, any_size=True), networks))
    assert [p.shape for p in painted] == [(1, 32, 48, 3)] * 2 and not np.array_equal(*painted)


OPENVINO_RUN = """
import sys
from pathlib import Path
import numpy as np
from clipmorph.inference.engine import Engine
from clipmorph.inference.options import StyleMix, StylizeOptions
from clipmorph.styles.catalogue import read_catalogue
from media_factory import gradient_frame
engine = Engine(read_catalogue(Path(sys.argv[1])), device="cpu", dtype="float32", backend="openvino")
[out] = engine.stylize_frames([gradient_frame(48, 40)], StylizeOptions(StyleMix.single("rand-0")))
np.save(sys.argv[2], out)
(network,) = engine._compiled.values()
print("exports", network.exports)
"""


def test_a_second_process_takes_the_openvino_model_from_the_cache_without_exporting(library, tmp_path):
    """The per-shape export is paid once per machine, not once per process (CLI runs, restarts)."""
    import os
    import subprocess
    import sys

    from clipmorph.styles.catalogue import write_catalogue

    from conftest import REPO

    write_catalogue(library, tmp_path / "catalogue")
    env = {**os.environ, "CLIPMORPH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "tests")}
    printed = []
    for run in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-c", OPENVINO_RUN, str(tmp_path / "catalogue"), str(tmp_path / f"{run}.npy")],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        printed.append(result.stdout.split()[-1])
    assert printed == ["1", "0"]  # exported by the first process only
    assert np.array_equal(np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy"))
    assert len(list((tmp_path / "cache" / "openvino").glob("*.xml"))) == 1
    assert list((tmp_path / "cache" / "openvino" / "compiled").glob("*.blob"))  # OpenVINO's own compiled cache


def test_the_openvino_cache_keeps_the_most_recently_used_shapes(tmp_path):
    import os

    from clipmorph.inference.openvino import prune

    (tmp_path / "compiled").mkdir()
    for age, name in enumerate(["new", "mid", "old"]):
        for path in (tmp_path / f"{name}.xml", tmp_path / f"{name}.bin", tmp_path / "compiled" / f"{name}.blob"):
            path.write_text(name)
            os.utime(path, (1000 - age, 1000 - age))
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["mid.bin", "mid.xml", "new.bin", "new.xml"]
    assert sorted(p.name for p in (tmp_path / "compiled").iterdir()) == ["mid.blob", "new.blob"]
