"""The service's domain pieces without a server: settings, request models, the model runtime's
reload, a video job's life cycle, style-job submission, GET routes and the bento's requirements."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from clipmorph.errors import BadInput
from clipmorph.inference import media
from clipmorph.inference.media import DecodeLimits
from clipmorph.serving.get_routes import ReadOnlyGets
from clipmorph.serving.jobs.store import JobCancelled, JobStore
from clipmorph.serving.jobs.style_creation import create_style_job
from clipmorph.serving.jobs.video import check_video, run_video
from clipmorph.serving.remote import RemoteStylizer
from clipmorph.serving.requests import BatchRequest, ImageRequest, VideoRequest, safe_stem
from clipmorph.serving.settings import ServiceSettings, SettingsError, gpu_count

from conftest import REPO, random_library
from media_factory import gradient_frame, make_video

# --- settings ---


def test_default_settings_parse_and_hide_the_token(monkeypatch):
    monkeypatch.setenv("CLIPMORPH_ADMIN_TOKEN", "secret")
    settings = ServiceSettings.from_env()
    assert settings.max_side == 1920 and settings.batch_size is None and settings.backend == "auto"
    assert settings.paint_side == 768
    assert settings.describe()["admin_token"] == "set" and "secret" not in json.dumps(settings.describe())


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CLIPMORPH_MAX_SIDE", "big", "expected a whole number >= 16"),
        ("CLIPMORPH_MAX_SIDE", "8", "expected a whole number >= 16"),
        ("CLIPMORPH_PAINT_SIDE", "8", "expected a whole number >= 16"),
        ("CLIPMORPH_MAX_UPLOAD_MB", "-1", "megabytes > 0"),
        ("CLIPMORPH_COMPILE", "maybe", "1 or 0"),
        ("CLIPMORPH_BACKEND", "tensorrt", "unknown backend 'tensorrt'"),
        ("CLIPMORPH_DEVICE", "gpu", "auto, cpu, cuda or cuda:N"),
        ("CLIPMORPH_TRAIN_NICE", "40", "0-19"),
        ("CLIPMORPH_MAX_REQUESTS_PER_CLIENT", "-1", "0: no cap"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(f"{name}={value!r}")) as raised:
        ServiceSettings.from_env()
    assert says in str(raised.value)


def test_no_visible_gpus_means_cpu_serving(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_count() == 0


# --- request models ---


def test_every_stylizing_request_takes_the_same_blend(tmp_path):
    upload = tmp_path / "x"
    for model, field in ((ImageRequest, "image"), (VideoRequest, "video")):
        request = model(**{field: upload}, style="a", blend_with="b", blend=0.25, strength=0.5)
        options = request.options(paint_side=768, max_side_limit=1024)
        assert dict(options.style.weights) == {"a": 0.75, "b": 0.25} and options.max_side == 768
    with pytest.raises(BadInput, match="over this server's limit"):
        ImageRequest(image=upload, style="a", max_side=4096).options(paint_side=768, max_side_limit=1024)


def test_a_batch_is_refused_when_empty_or_over_the_limit(tmp_path):
    with pytest.raises(BadInput, match="no images"):
        BatchRequest(images=[], style="a").check_count(4)
    with pytest.raises(BadInput, match="at most 2"):
        BatchRequest(images=[tmp_path / "a"] * 3, style="a").check_count(2)


def test_download_names_carry_no_path_or_odd_characters():
    assert safe_stem("../../etc/passwd=0.5,b=0.5", "style") == "passwd"
    assert safe_stem("monet", "style") == "monet" and safe_stem("", "style") == "style"


# --- a video job's life cycle, with an in-process stand-in for the model service ---


def inverting_stylizer(calls: list[int]) -> RemoteStylizer:
    def call(items):
        calls.append(len(items))
        return [255 - item.frame() for item in items]

    return RemoteStylizer(call, batch_size=4)


class FakeMetric:
    """Stands in for the metrics board and every metric on it: each call and attribute is a no-op."""

    def __getattr__(self, _name):
        return self

    def __call__(self, *args, **kwargs):
        return self


@pytest.fixture
def quiet_metrics(monkeypatch):
    from clipmorph.serving import metrics

    monkeypatch.setattr(metrics, "get", lambda: FakeMetric())
    monkeypatch.setattr(metrics, "sample_resources", lambda service: None)


def first_frame(path: Path) -> np.ndarray:
    reader = media.VideoReader(path)
    try:
        frame, _ = next(iter(reader))
        return frame
    finally:
        reader.close()


def test_a_video_job_records_progress_and_its_result_and_drops_the_upload(tmp_path, quiet_metrics):
    clip = make_video(tmp_path / "clip.mp4", frames=12, size=(64, 48))
    job = JobStore(tmp_path / "jobs", 3600).create("job-1")
    request = VideoRequest(video=clip, style="anything")
    calls: list[int] = []
    source = job.folder / "input.mp4"
    source.write_bytes(clip.read_bytes())
    limits = DecodeLimits(60, 10**7)
    result = run_video(
        job, source, request.options(768, 1920), "mp4", inverting_stylizer(calls), media.DEFAULT_ENCODING, limits, True
    )
    record = job.read()
    assert record["state"] == "succeeded" and record["result"] == result and result["frames"] == 12
    assert sum(calls) == 12 and not source.exists()
    source, painted = first_frame(clip).astype(int), first_frame(job.result_file()).astype(int)
    assert np.abs(painted - (255 - source)).mean() < 15 < np.abs(painted - source).mean()  # the stand-in inverts


def test_a_cancelled_video_job_ends_cancelled(tmp_path, quiet_metrics):
    clip = make_video(tmp_path / "clip.mp4", frames=12, size=(64, 48))
    job = JobStore(tmp_path / "jobs", 3600).create("job-2")
    job.request_cancel()
    options = VideoRequest(video=clip, style="x").options(768, 1920)
    with pytest.raises(JobCancelled):
        run_video(job, clip, options, "mp4", inverting_stylizer([]), media.DEFAULT_ENCODING, DecodeLimits(60, 10**7))
    assert job.read()["state"] == "cancelled" and not (job.folder / "input").exists()


def test_video_checks_refuse_images_long_and_large_clips(tmp_path):
    from PIL import Image

    picture = tmp_path / "still.png"
    Image.fromarray(gradient_frame(32, 32)).save(picture)
    with pytest.raises(BadInput, match="image, not a video"):
        check_video(picture, DecodeLimits(60, 10**7))
    clip = make_video(tmp_path / "clip.mp4", frames=50, size=(64, 48), fps=25)
    with pytest.raises(BadInput, match="limit here is 1 s"):
        check_video(clip, DecodeLimits(1, 10**7))
    with pytest.raises(BadInput, match="the limit is"):
        check_video(clip, DecodeLimits(60, 64 * 48 - 1))
    with pytest.raises(BadInput, match="frames/s; the limit is 20"):
        check_video(clip, DecodeLimits(60, 10**7, max_fps=20))
    assert check_video(clip, DecodeLimits(60, 10**7)).frames == 50


def test_decoding_enforces_the_limits_whatever_the_header_says(tmp_path):
    clip = make_video(tmp_path / "two-seconds.mp4", frames=50, size=(64, 48), fps=25, audio_codec=None)
    frames = list(media.VideoReader(clip, DecodeLimits(max_seconds=5, max_pixels=10**7, max_fps=30)))
    assert len(frames) == 50
    with pytest.raises(BadInput, match="longer than the limit here of 1 s") as by_time:
        list(media.VideoReader(clip, DecodeLimits(max_seconds=1)))  # by timestamps
    assert by_time.value.reason == "too_long"
    with pytest.raises(BadInput, match="more than 11 frames"):
        list(media.VideoReader(clip, DecodeLimits(max_seconds=1, max_fps=10)))  # by count, at the frame-rate cap
    with pytest.raises(BadInput, match="frame 1 is 64x48"):
        list(media.VideoReader(clip, DecodeLimits(max_pixels=64 * 48 - 1)))


# --- style creation: the checks before any training starts ---


class RefusingQueue:
    def submit(self, painting, spec):
        raise AssertionError("nothing may be queued")


def test_style_creation_without_training_photos_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPMORPH_ADMIN_TOKEN", raising=False)
    monkeypatch.setattr("clipmorph.serving.access.listening_only_on_loopback", lambda: True)
    from clipmorph.serving.requests import StyleCreationRequest

    settings = ServiceSettings.from_env()
    request = StyleCreationRequest(painting=tmp_path / "p.png", name="My Style")
    with pytest.raises(BadInput, match="CLIPMORPH_TRAIN_CONTENT") as raised:
        create_style_job(RefusingQueue(), request, settings, tmp_path, {})
    assert raised.value.reason == "unavailable"


def test_style_creation_needs_the_token_when_one_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPMORPH_ADMIN_TOKEN", "secret")
    from clipmorph.serving.requests import StyleCreationRequest

    request = StyleCreationRequest(painting=tmp_path / "p.png", name="x")
    with pytest.raises(BadInput, match="admin token") as raised:
        create_style_job(RefusingQueue(), request, ServiceSettings.from_env(), tmp_path, {"authorization": "Bearer no"})
    assert raised.value.reason == "forbidden"


# --- the model runtime picks up styles saved while it runs ---


def test_the_model_runtime_serves_new_styles_without_a_restart(stored_styles):
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.model_runtime import ModelRuntime
    from clipmorph.serving.schema import FrameItem
    from clipmorph.styles import index, store

    runtime = ModelRuntime(ServiceSettings.from_env(), warm_up=False)
    frame = gradient_frame(32, 24)
    [out] = runtime.stylize([FrameItem.of(frame, StylizeOptions(StyleMix.single("rand-0")))])
    assert out.shape == frame.shape and not np.array_equal(out, frame)
    assert "reload-0" not in runtime.info()["styles"]
    store.save_library(random_library("reload", num_styles=1, seed=5))
    try:
        assert "reload-0" in runtime.info()["styles"]
    finally:
        index.delete_style("reload-0")
    assert "reload-0" not in runtime.info()["styles"]


# --- GET beside POST ---


def test_get_of_a_listed_route_reaches_the_app_as_an_empty_json_post():
    seen = {}

    async def app(scope, receive, send):
        seen["method"], seen["body"] = scope["method"], (await receive())["body"]
        seen["type"] = dict(scope["headers"])[b"content-type"]

    wrapped = ReadOnlyGets(app, ["/styles"])
    scope = {"type": "http", "method": "GET", "path": "/styles", "headers": [(b"accept", b"*/*")]}
    asyncio.run(wrapped(scope, None, None))
    assert seen == {"method": "POST", "body": b"{}", "type": b"application/json"}
    other = {"type": "http", "method": "GET", "path": "/stylize", "headers": []}

    async def untouched(scope, receive, send):
        seen["other"] = scope["method"]

    asyncio.run(ReadOnlyGets(untouched, ["/styles"])(other, None, None))
    assert seen["other"] == "GET"


# --- one source of dependencies ---


def requirement_names(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")
            found[name] = line.replace(" ", "")
    return found


def test_the_bento_requirements_are_generated_from_pyproject_and_current():
    """requirements-bento.txt is pyproject.toml's dependencies plus its [serve] extra, written by
    deploy/bento_requirements.py: the committed file is what the script writes now."""
    check = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "bento_requirements.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bento = requirement_names((REPO / "requirements-bento.txt").read_text().splitlines())
    assert requirement_names(project["dependencies"]).items() <= bento.items()  # every one, pinned alike


def test_the_bento_can_open_every_bucket_its_deploy_files_name_and_take_the_openvino_path():
    """A deploy file that points a URL at a bucket (s3://, gs://, az://) needs that file system in
    the bento, or replicas quietly stop sharing styles and jobs; the default CPU backend, OpenVINO, needs onnx."""
    file_systems = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
    bento = requirement_names((REPO / "requirements-bento.txt").read_text().splitlines())
    named = set()
    for path in (REPO / "deploy").rglob("*.y*ml"):
        named |= set(re.findall(r"\b(s3|gs|az|abfs)://", path.read_text()))
    assert "s3" in named  # the deploy files do name buckets: the check looks at something
    assert {file_systems[scheme] for scheme in named} <= set(bento), named
    assert {"onnx", "openvino"} <= set(bento)


def test_every_third_party_import_of_the_served_code_is_declared():
    """What service.py and the package import at the top of their modules (and the style-job
    child imports) is in pyproject's runtime dependencies, or in the standard library."""
    import ast
    import sys

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = set(requirement_names(project["dependencies"]))
    provided_by = {"PIL": "pillow", "cv2": "opencv-python-headless", "yaml": "pyyaml", "_bentoml_impl": "bentoml"}
    # BentoML brings these; the optional training extra is imported only behind its flags
    via_bentoml = {"aiohttp", "psutil", "starlette", "pydantic", "multipart", "uvicorn"}
    optional = {"skimage"} | via_bentoml
    missing = set()
    for path in [REPO / "service.py", *sorted((REPO / "clipmorph").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("clipmorph", "service", "__future__") or top in optional:
                    continue
                package = provided_by.get(top, top).lower().replace("_", "-")
                if package not in declared:
                    missing.add(f"{path.relative_to(REPO)}: {top}")
    assert not missing, sorted(missing)


# --- one item's bad input never fails the other items of its batch ---


def test_the_model_answers_each_item_of_a_batch_on_its_own(stored_styles):
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.model_runtime import ModelRuntime
    from clipmorph.serving.schema import FrameItem, ItemError

    runtime = ModelRuntime(ServiceSettings.from_env(), warm_up=False)
    good = FrameItem.of(gradient_frame(32, 24), StylizeOptions(StyleMix.single("rand-0")))
    tiny = FrameItem.of(gradient_frame(8, 8), StylizeOptions(StyleMix.single("rand-1")))
    unknown = FrameItem.of(gradient_frame(32, 24), StylizeOptions(StyleMix.single("no-such-style")))
    lying = good.model_copy(update={"height": 30})  # its bytes do not fill the size it claims
    results = runtime.stylize([good, tiny, unknown, lying, good])
    assert [type(r).__name__ for r in results] == ["ndarray", "ItemError", "ItemError", "ItemError", "ndarray"]
    assert results[1].reason == "invalid" and "at least 16" in results[1].message
    assert results[2].reason == "unknown_style"
    assert np.array_equal(results[0], results[4])
    with pytest.raises(BadInput, match="unknown style"):
        results[2].throw()
    with pytest.raises(RuntimeError, match="stylizing failed"):  # the model's own failure: a 500 for that request
        ItemError("stylizing failed: ValueError", "internal").throw()


def test_a_bad_frame_fails_its_own_request_before_it_reaches_a_batch():
    calls: list[int] = []
    stylizer = inverting_stylizer(calls)
    from clipmorph.inference.options import StyleMix, StylizeOptions

    options = StylizeOptions(StyleMix.single("x"))
    with pytest.raises(BadInput, match="at least 16"):
        stylizer.stylize_frames([gradient_frame(8, 8)], options)
    assert calls == []  # never sent to the model


def test_an_item_error_from_the_model_fails_only_the_request_it_belongs_to():
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.schema import ItemError

    def call(items):
        return [ItemError("image is corrupt", "corrupt") if item.style == "bad" else item.frame() for item in items]

    stylizer = RemoteStylizer(call, batch_size=4)
    frame = gradient_frame(32, 24)
    assert stylizer.stylize_frames([frame], StylizeOptions(StyleMix.single("fine")))[0].shape == frame.shape
    with pytest.raises(BadInput, match="corrupt") as raised:
        stylizer.stylize_frames([frame], StylizeOptions(StyleMix.single("bad")))
    assert raised.value.reason == "corrupt"


# --- error texts say what was wrong with the upload, never where it lives ---


def test_client_messages_never_name_server_paths():
    from clipmorph.errors import MediaError, without_paths
    from clipmorph.serving.schema import http_errors

    leaked = "video encoding failed: Invalid argument: '/tmp/clipmorph-request-ab/.result.partial.mp4' returned 22"
    assert without_paths(leaked) == "video encoding failed: Invalid argument: '<file>' returned 22"
    assert without_paths("blend monet=0.7,scream=0.3 over 1/2 of http://host/x") == (
        "blend monet=0.7,scream=0.3 over 1/2 of http://host/x"
    )
    for error in (MediaError(leaked), BadInput(f"cannot read {leaked}")):
        with pytest.raises(Exception) as raised, http_errors():
            raise error
        assert "/tmp" not in str(raised.value) and "<file>" in str(raised.value)


def test_a_failed_video_job_records_no_server_path(tmp_path, quiet_metrics):
    clip = make_video(tmp_path / "clip.mp4", frames=4, size=(64, 48))
    job = JobStore(tmp_path / "jobs", 3600).create("job-3")

    def broken(items):
        raise RuntimeError(f"cannot write {tmp_path}/jobs/job-3/result.mp4")

    with pytest.raises(RuntimeError):
        run_video(job, clip, VideoRequest(video=clip, style="x").options(768, 1920), "mp4",
                  RemoteStylizer(broken, batch_size=4), media.DEFAULT_ENCODING, DecodeLimits(60, 10**7))  # fmt: skip
    record = job.read()
    assert record["state"] == "failed" and str(tmp_path) not in record["error"] and "<file>" in record["error"]


def test_pyproject_is_the_only_place_a_dependency_version_is_written():
    """The Makefile, the CI script, the bentofiles and the deploy files install from pyproject.toml
    (or the requirements file generated from it): none of them repeats a version of a dependency."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    every = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    names = set(requirement_names(every)) - {project["name"]}
    files = [REPO / "Makefile", *REPO.glob("bentofile*.yaml"), *(REPO / ".ci").rglob("*")]
    files += list((REPO / "deploy").rglob("*"))
    pinned = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(names))) + r")\s*(==|>=|~=)", re.I)
    repeated = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in files
        if path.is_file() and path.suffix not in {".pyc"}
        for match in pinned.finditer(path.read_text(errors="ignore"))
    ]
    assert repeated == []


def test_live_frames_run_on_openvino_by_default_on_a_cpu_and_paint_what_the_service_engine_paints(
    stored_styles, monkeypatch, tmp_path
):
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.model_runtime import ModelRuntime
    from clipmorph.serving.schema import FrameItem

    monkeypatch.setenv("CLIPMORPH_CACHE", str(tmp_path / "cache"))  # this test's own exports
    monkeypatch.delenv("CLIPMORPH_LIVE_BACKEND", raising=False)
    monkeypatch.setenv("CLIPMORPH_BACKEND", "torch")  # the service's engine asked for by name
    runtime = ModelRuntime(ServiceSettings.from_env(), warm_up=False)
    assert runtime.info()["backend"] == "torch" and runtime.info()["live_backend"] == "openvino"
    frame = gradient_frame(64, 48, t=1)
    options = StylizeOptions(StyleMix.single("rand-0"))
    image, live = runtime.stylize([FrameItem.of(frame, options), FrameItem.of(frame, options, "live")])
    assert runtime.live().backend == "openvino" and runtime.live() is not runtime.current()
    error = np.mean((image.astype(float) - live.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / max(error, 1e-9)) > 30  # the same picture, from another runtime
    assert list((tmp_path / "cache" / "openvino").glob("*.xml"))  # exported once, kept for the next start


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks PyTorch on a GPU")
def test_by_default_on_a_cpu_the_service_runs_openvino_uploads_through_one_any_size_model_warmed_at_start(
    stored_styles, monkeypatch, tmp_path
):
    """Uploads of every size share the any-size model, exported and compiled before the service is
    ready; video and live frames (one size per stream) run through their own shape, on the same engine."""
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.model_runtime import ModelRuntime
    from clipmorph.serving.schema import FrameItem

    monkeypatch.setenv("CLIPMORPH_CACHE", str(tmp_path / "cache"))
    for name in ("CLIPMORPH_BACKEND", "CLIPMORPH_LIVE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    runtime = ModelRuntime(ServiceSettings.from_env())
    assert runtime.info()["backend"] == runtime.info()["live_backend"] == "openvino"
    assert runtime.live() is runtime.current()
    exports = sum(network.exports for network in runtime.engine._compiled.values())
    assert exports == len(runtime.engine.networks)  # the warm-up: one any-size model per backbone
    options = StylizeOptions(StyleMix.single("rand-0"))
    sizes = [(64, 48), (50, 37), (90, 61), (33, 80)]
    items = [FrameItem.of(gradient_frame(w, h), options) for w, h in sizes]
    items += [FrameItem.of(gradient_frame(64, 48), options, kind) for kind in ("video", "live")]
    results = runtime.stylize(items)
    assert [r.shape[:2] for r in results] == [(h, w) for w, h in sizes] + [(48, 64)] * 2
    assert sum(network.exports for network in runtime.engine._compiled.values()) == exports + 1  # 64x48 alone
    reference = ModelRuntime(ServiceSettings.from_env(), warm_up=False)  # the same frames one by one
    for item, result in zip(items, results, strict=True):
        [alone] = reference.stylize([item])
        assert np.abs(alone.astype(int) - result.astype(int)).max() <= 1


def test_live_frames_fall_back_to_the_service_engine_when_their_own_cannot_be_built(stored_styles, monkeypatch):
    from clipmorph.inference import openvino
    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.model_runtime import ModelRuntime
    from clipmorph.serving.schema import FrameItem

    def missing():
        raise BadInput("the openvino backend needs `pip install clipmorph[openvino]` (onnx is missing)")

    monkeypatch.setattr(openvino, "_openvino", missing)
    monkeypatch.setenv("CLIPMORPH_LIVE_BACKEND", "openvino")
    monkeypatch.setenv("CLIPMORPH_BACKEND", "torch")
    runtime = ModelRuntime(ServiceSettings.from_env(), warm_up=False)
    frame = gradient_frame(32, 24)
    [live] = runtime.stylize([FrameItem.of(frame, StylizeOptions(StyleMix.single("rand-0")), "live")])
    assert isinstance(live, np.ndarray) and live.shape == frame.shape
    assert runtime.live() is runtime.current() and runtime.info()["live_backend"] == "torch"
